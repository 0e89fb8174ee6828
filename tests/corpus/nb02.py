"""Wrong answers to notebook 02's exercises."""

from __future__ import annotations

WRONG: dict = {}
