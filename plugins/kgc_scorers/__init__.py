"""Built-in scorers."""

from kgcore import hookimpl


@hookimpl
def kgc_register_scorers(register):
    register("f1", "kgc_scorers.f1:F1Scorer", summary="exact-match precision, recall and F1 (multiset or set)")
