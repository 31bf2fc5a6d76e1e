"""Lenient P/R/F1: strings compare case-insensitively with whitespace collapsed (percent units)."""

from __future__ import annotations

from collections import Counter
from typing import Any


def normalise(value: Any) -> Any:
    """Casefold strings and collapse their whitespace, recursively inside tuples."""
    if isinstance(value, str):
        return " ".join(value.casefold().split())
    if isinstance(value, tuple):
        return tuple(normalise(v) for v in value)
    return value


class LenientF1Scorer:
    """Same interface as kgc's ``f1`` scorer; one instance per metric."""

    def __init__(self, match: str = "multiset", reference_rounding: bool = False):
        if match not in {"multiset", "set"}:
            raise ValueError(f"match must be 'multiset' or 'set', not '{match}'")
        self.match, self.reference_rounding = match, reference_rounding
        self.tp = self.n_gold = self.n_pred = 0

    def update(self, gold: list[tuple], pred: list[tuple]) -> None:
        gold, pred = [normalise(t) for t in gold], [normalise(t) for t in pred]
        if self.match == "set":
            gold, pred = list(set(gold)), list(set(pred))
        self.tp += sum((Counter(gold) & Counter(pred)).values())
        self.n_gold += len(gold)
        self.n_pred += len(pred)

    def result(self) -> dict[str, float | int]:
        p = 100 * self.tp / self.n_pred if self.n_pred else 0.0
        r = 100 * self.tp / self.n_gold if self.n_gold else 0.0
        if self.reference_rounding:
            p, r = round(p, 2), round(r, 2)
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        if self.reference_rounding:
            f1 = round(f1, 2)
        return {"P": p, "R": r, "F1": f1, "tp": self.tp, "gold": self.n_gold, "pred": self.n_pred}
