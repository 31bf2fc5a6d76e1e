"""Schema sampling and batching algorithms of the IEPile converter, made deterministic."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import TypeVar

T = TypeVar("T")


def split_by_num(items: Sequence[T], split_num: int) -> list[list[T]]:
    """Cut ``items`` into chunks of ``split_num`` (the reference's remainder rule).

    A leftover of at least ``max(1, split_num // 2)`` items becomes its own chunk; a smaller
    one joins the last chunk. ``split_num == -1`` (or ``0``) keeps one chunk.
    """
    items = list(items)
    if not items:
        return [[]]
    if split_num <= 0 or len(items) <= split_num:
        return [items]
    n_full = (len(items) // split_num) * split_num
    chunks = [items[i:i + split_num] for i in range(0, n_full, split_num)]
    leftover = items[n_full:]
    if len(leftover) >= max(1, split_num // 2):
        chunks.append(leftover)
    elif leftover:
        chunks[-1].extend(leftover)
    return chunks


def bernoulli_count(rng: random.Random, n: int, p: float) -> int:
    """Number of successes in ``n`` Bernoulli(``p``) draws."""
    if p >= 1:
        return n
    if p <= 0:
        return 0
    return sum(rng.random() < p for _ in range(n))


def negative_sample(labels: Sequence[str], positives: Sequence[str], ratio: float,
                    rng: random.Random) -> list[str]:
    """Positives plus a random share of the negatives (``ratio`` 1 keeps them all).

    With no positive label at least one negative is kept, so every text yields an instruction;
    with ``ratio`` 0 and no positive the result is empty and the caller drops the text.
    """
    pos = set(positives) & set(labels)  # a positive outside the schema is no positive of this instruction
    negatives = [l for l in labels if l not in pos]
    if ratio <= 0:
        return [l for l in labels if l in pos]
    k = bernoulli_count(rng, len(labels), ratio)
    if not pos:
        k = max(k, 1)
    k = min(k, len(negatives))
    chosen = set(rng.sample(negatives, k)) | pos
    return [l for l in labels if l in chosen]


def hard_negative_sample(labels: Sequence[str], positives: Sequence[str], hard: Mapping[str, Sequence[str]],
                         ratio: float, split_num: int, rng: random.Random) -> list[str]:
    """The reference's "cluster" mode: positives, their confusable labels, and a few random ones.

    Unlike the reference, a positive label missing from ``hard`` simply has no hard negatives,
    and hard negatives outside the schema are ignored.
    """
    if len(labels) <= 1:
        return list(labels)
    pos = [l for l in labels if l in set(positives)]
    if not pos:
        k = max(1, bernoulli_count(rng, len(labels), ratio / 2))
        chosen = set(rng.sample(list(labels), min(k, len(labels))))
    else:
        known = set(labels)
        chosen = set(pos)
        for label in pos:
            chosen.update(h for h in hard.get(label, ()) if h in known)
        rest = [l for l in labels if l not in chosen]
        chosen.update(rng.sample(rest, min(len(rest), max(split_num, 1))))
    return [l for l in labels if l in chosen]


def order_labels(labels: Sequence[str], order: str, rng: random.Random) -> list[str]:
    """``sorted`` (code-point order, as the reference), ``file`` (schema order) or ``random``."""
    out = list(labels)
    if order == "sorted":
        out.sort()
    elif order == "random":
        rng.shuffle(out)
    elif order != "file":
        raise ValueError(f"unknown schema order '{order}' (sorted, file or random)")
    return out
