"""Training data: converted records to token ids, with the prompts ``kgc predict`` sends.

Data follow the reference (DeepKE/IEPile ``finetune.py``) with its bugs fixed:

* records are converted ``train.json``/``dev.json`` lines (``instruction``, ``output``); rows with an
  empty instruction or answer are dropped; a dev file without ``output`` is an error naming it;
* the prompt is **exactly the token ids ``kgc predict --backend hf`` sends** for that instruction
  (the model's own chat template for ``auto``; a named template's rendered text otherwise), then the
  answer and eos; the loss covers the answer tokens (and eos) only;
* sequences longer than ``cutoff_len`` are cut with the reference's allocation rule
  (:func:`infer_max_len`), tails truncated.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kgc_backends.tokens import IGNORE_INDEX, encode_supervised, encode_text, request_token_ids
from kgcore.prompt import AUTO
from kgcore.errors import InputError
from kgcore.jsonl import read_jsonl
from kgcore.plugins import PluginHost
from kgcore.prompt import PromptStyle, RequestBuilder

from .config import TrainConfig


def read_records(path: str | os.PathLike[str], *, role: str = "train_file") -> tuple[list[dict[str, str]], int]:
    """``(records, dropped)``: ``{"instruction", "output"}`` of a converted file (JSON lines or a
    JSON list); rows with an empty instruction or output are dropped and counted. A record without
    ``output`` is an error naming the file and line (a test split cannot be learned or evaluated)."""
    path = Path(path)
    with path.open(encoding="utf-8-sig") as fh:
        head = fh.read(4096).lstrip()
    if head.startswith("["):
        try:
            items = list(enumerate(json.loads(path.read_text(encoding="utf-8-sig")), 1))
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON: {exc.msg} at line {exc.lineno}", path=str(path)) from None
    else:
        items = list(read_jsonl(path))
    split = "dev" if role == "dev_file" else "training"
    records, dropped = [], 0
    for line, record in items:
        if not isinstance(record, dict):
            raise InputError("expected a JSON object", path=str(path), line=line)
        if "output" not in record:
            what = "dev records need the expected answer" if role == "dev_file" else "training records need the answer"
            raise InputError(f"record has no 'output': {what}. This looks like a test split; convert the {split} "
                             f"data with `kgc convert --split train`", path=str(path), line=line, field="output")
        instruction, output = record.get("instruction"), record["output"]
        if instruction is not None and not isinstance(instruction, str):
            raise InputError("'instruction' must be a string", path=str(path), line=line, field="instruction")
        if output is not None and not isinstance(output, str):
            output = json.dumps(output, ensure_ascii=False)
        if not instruction or not instruction.strip() or not output or not output.strip():
            dropped += 1
            continue
        records.append({"instruction": instruction, "output": output})
    if not records:
        raise InputError(f"no usable records ({dropped} empty rows dropped)", path=str(path))
    return records, dropped


def hold_out(records: list[dict[str, str]], size: float, seed: int) -> tuple[list, list]:
    """``(train, held out)``: ``size`` records (a number < 1 is a share) drawn with ``seed``."""
    n_eval = int(size) if size >= 1 else max(1, round(len(records) * size))
    if n_eval >= len(records):
        raise InputError(f"val_set_size {size} leaves no training records (only {len(records)})", field="val_set_size")
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    held = set(order[:n_eval])
    return [r for i, r in enumerate(records) if i not in held], [records[i] for i in sorted(held)]


def infer_max_len(source_len: int, target_len: int, cutoff_len: int, max_target_length: int) -> tuple[int, int]:
    """The reference's allocation rule: ``(max_source, max_target)`` for a sequence of
    ``source_len + target_len`` tokens: ``max_target = max(int(cutoff * tgt / (src + tgt)),
    max_target_length)``, ``max_source = cutoff - max_target``."""
    total = source_len + target_len
    max_target = max(int(cutoff_len * (target_len / total)) if total else 0, max_target_length)
    return cutoff_len - max_target, max_target


def fit_lengths(source_len: int, target_len: int, cutoff_len: int, max_target_length: int,
                max_source_length: int | None = None) -> tuple[int, int]:
    """How many prompt and answer tokens to keep (tails are cut).

    A sequence that fits in ``cutoff_len`` is kept whole. A longer one is cut with
    :func:`infer_max_len`; answer tokens the rule reserved but the answer does not use go back to
    the prompt (the reference left them unused). ``max_source_length`` caps the prompt first.
    """
    if max_source_length:
        source_len = min(source_len, max_source_length)
    if source_len + target_len <= cutoff_len:
        return source_len, target_len
    _, max_target = infer_max_len(source_len, target_len, cutoff_len, max_target_length)
    keep_target = min(target_len, max_target)
    return min(source_len, cutoff_len - keep_target), keep_target


class PromptEncoder:
    """Token ids of training examples whose prompts equal what ``kgc predict --backend hf`` sends.

    The prompt is built by :class:`kgcore.prompt.RequestBuilder` (as ``kgc predict`` builds it) and
    tokenized by :func:`kgc_backends.tokens.request_token_ids` (as the hf backend tokenizes it). The
    answer is the template's supervised encoding (answer + the template's eos, ``efficient_eos``
    handled), or the answer + the tokenizer's eos for ``auto``.
    """

    def __init__(self, tokenizer: Any, template: str = AUTO, system: str | None = None,
                 host: PluginHost | None = None):
        self.tokenizer, self.system = tokenizer, system
        self.builder = RequestBuilder(PromptStyle(template, system), constrained=False, host=host)
        if self.builder.template is None:
            if not getattr(tokenizer, "chat_template", None):
                raise InputError("template 'auto' needs a model with its own chat template; this tokenizer has "
                                 "none: pick a named template", field="template")
            if tokenizer.eos_token_id is None:
                raise InputError("the tokenizer has no eos token to end answers with", field="template")
        #: prompts whose per-segment encoding (the reference's) differs from the sent text's tokens
        self.segment_mismatches = 0

    def encode(self, instruction: str, output: str) -> tuple[list[int], list[int], list[int]]:
        """``(prompt_ids, answer_ids, answer_labels)`` before any length cut."""
        prompt = request_token_ids(self.tokenizer, self.builder(instruction))
        template = self.builder.template
        if template is None:
            answer = encode_text(self.tokenizer, output) + [self.tokenizer.eos_token_id]
            return prompt, answer, list(answer)
        try:
            ids, labels = encode_supervised(template, self.tokenizer, instruction, output, system=self.system)
        except ValueError as exc:
            raise InputError(str(exc), field="template") from None
        start = next((i for i, label in enumerate(labels) if label != IGNORE_INDEX), len(labels))
        if ids[:start] != prompt:
            self.segment_mismatches += 1
        return prompt, ids[start:], labels[start:]


@dataclass
class DataStats:
    """Counts and lengths of a run's data (``kgc_train_meta.json``'s ``data``)."""

    train_records: int = 0
    eval_records: int = 0
    dropped_empty: int = 0
    truncated: int = 0
    max_len: int = 0
    mean_len: float = 0.0
    segment_mismatches: int = 0


def encode_records(records: Sequence[Mapping[str, str]], encoder: PromptEncoder, config: TrainConfig,
                   stats: DataStats | None = None) -> list[dict[str, list[int]]]:
    """Training examples (``input_ids``, ``attention_mask``, ``labels``) cut to ``cutoff_len``."""
    examples = []
    for record in records:
        prompt, answer, answer_labels = encoder.encode(record["instruction"], record["output"])
        keep_prompt, keep_answer = fit_lengths(len(prompt), len(answer), config.cutoff_len,
                                               config.resolved_max_target_length, config.max_source_length)
        if stats is not None and (keep_prompt, keep_answer) != (len(prompt), len(answer)):
            stats.truncated += 1
        prompt, answer, answer_labels = prompt[:keep_prompt], answer[:keep_answer], answer_labels[:keep_answer]
        labels = (list(prompt) if config.train_on_prompt else [IGNORE_INDEX] * len(prompt)) + answer_labels
        ids = prompt + answer
        examples.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels})
    if stats is not None and examples:
        lengths = [len(e["input_ids"]) for e in examples]
        stats.max_len = max(stats.max_len, max(lengths))
        stats.mean_len = round(sum(lengths) / len(lengths), 1)
        stats.segment_mismatches = encoder.segment_mismatches
    return examples


class Examples:
    """A map-style dataset of encoded examples (what ``Trainer`` iterates)."""

    def __init__(self, examples: list[dict[str, list[int]]]):
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        return self.examples[index]


class PadCollator:
    """Pads a batch on the right (positions then start at 0 as at prediction time); labels with -100."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, batch: Sequence[Mapping[str, list[int]]]) -> dict[str, Any]:
        import torch

        width = max(len(b["input_ids"]) for b in batch)

        def pad(key: str, value: int) -> Any:
            return torch.tensor([list(b[key]) + [value] * (width - len(b[key])) for b in batch], dtype=torch.long)

        return {"input_ids": pad("input_ids", self.pad_token_id), "attention_mask": pad("attention_mask", 0),
                "labels": pad("labels", IGNORE_INDEX)}
