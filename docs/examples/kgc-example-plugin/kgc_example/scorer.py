"""Lenient P/R/F1: strings compare case-insensitively with whitespace collapsed (percent units)."""

from __future__ import annotations

from typing import Any

from kgc_scorers.f1 import F1Scorer


def normalise(value: Any) -> Any:
    """Casefold strings and collapse their whitespace, recursively inside tuples."""
    if isinstance(value, str):
        return " ".join(value.casefold().split())
    if isinstance(value, tuple):
        return tuple(normalise(v) for v in value)
    return value


class LenientF1Scorer(F1Scorer):
    """kgc's ``f1`` scorer on normalised tuples; one instance per metric."""

    def update(self, gold: list[tuple], pred: list[tuple]) -> None:
        super().update([normalise(t) for t in gold], [normalise(t) for t in pred])
