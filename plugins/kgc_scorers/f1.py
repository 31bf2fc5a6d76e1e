"""Exact-match P/R/F1 over tuples, as the IEPile evaluator counts them (percent units)."""

from __future__ import annotations

from collections import Counter

from kgcore import Scorer


class F1Scorer(Scorer):
    """Accumulates true positives over records; one instance per metric.

    ``match="multiset"`` lets each prediction consume one equal gold tuple (duplicates count);
    ``match="set"`` de-duplicates both sides of each record first. ``reference_rounding`` rounds
    P and R to two decimals before computing F1 from them, as the reference does.
    """

    def __init__(self, match: str = "multiset", reference_rounding: bool = False):
        if match not in {"multiset", "set"}:
            raise ValueError(f"match must be 'multiset' or 'set', not '{match}'")
        super().__init__(match, reference_rounding)
        self.tp = self.n_gold = self.n_pred = 0

    def update(self, gold: list[tuple], pred: list[tuple]) -> None:
        if self.match == "set":
            gold, pred = list(set(gold)), list(set(pred))
        overlap = Counter(gold) & Counter(pred)
        self.tp += sum(overlap.values())
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
