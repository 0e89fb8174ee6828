"""Wrong answers to notebook 06's exercises."""

from __future__ import annotations

WRONG: dict = {}
