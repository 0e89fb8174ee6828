"""Wrong answers to notebook 05's exercises."""

from __future__ import annotations

WRONG: dict = {}
