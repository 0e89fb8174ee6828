"""Wrong answers to notebook 03's exercises."""

from __future__ import annotations

WRONG: dict = {}
