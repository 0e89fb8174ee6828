"""Wrong answers to notebook 04's exercises."""

from __future__ import annotations

WRONG: dict = {}
