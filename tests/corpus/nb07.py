"""Wrong answers to notebook 07's exercises."""

from __future__ import annotations

WRONG: dict = {}
