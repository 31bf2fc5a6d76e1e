"""HF backend, constrained batches on the CPU: llguidance's batched bitmask (fill in parallel, apply in
place) against the per-row loop kgc used before (one ``compute_logit_bias`` and one boolean mask per row).

    cd benchmarks && python hf_masks.py --n 32 --batch 16

Same backend, prompts (CoNLL-2003 NER test instructions, answers quoting the text) and greedy
decoding; the two processors run interleaved for ``--rounds`` rounds. Besides wall time it reports
the time spent inside the logits processor alone.
"""

from __future__ import annotations

import argparse
import statistics
import time

from common import conll_test_instructions, machine
from kgc_backends import hf

from kgcore.backend import GenerationParams, load_backend
from kgcore.jsonl import read_jsonl
from kgcore.prediction import RecordRequests


class PerRowProcessor(hf._GrammarProcessor):
    """The loop kgc used before: each row's allowed tokens from ``compute_logit_bias``, one row at a time."""

    def __call__(self, input_ids, scores):
        import torch

        step = input_ids.shape[1] - self.prompt_width
        for row, matcher in enumerate(self.matchers):
            if self.done[row]:
                continue
            if step > 0:
                token = int(input_ids[row, -1])
                if token in self.eos_ids or not matcher.consume_token(token):
                    self.done[row] = True
                    continue
            allowed = torch.zeros(scores.shape[-1], dtype=torch.bool)
            if matcher.is_stopped():
                allowed[self.eos_ids] = True
            else:
                bias = torch.frombuffer(bytearray(matcher.compute_logit_bias()), dtype=torch.uint8)
                n = min(scores.shape[-1], bias.numel())
                allowed[:n] = bias[:n] > 0
            scores[row] = scores[row].masked_fill(~allowed.to(scores.device), float("-inf"))
        return scores


def timed_processor(cls, seconds: list[float]):
    class Timed(cls):
        def __call__(self, input_ids, scores):
            start = time.perf_counter()
            try:
                return super().__call__(input_ids, scores)
            finally:
                seconds.append(time.perf_counter() - start)
    return Timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    from kgc_backends.default_model import ADAPTER_DIR, base_checkpoint

    requests = [RecordRequests()(r) for _, r in read_jsonl(conll_test_instructions(args.n))]
    params = GenerationParams(max_new_tokens=args.max_new_tokens)
    backend = load_backend("hf", {"model": str(base_checkpoint()), "adapter": str(ADAPTER_DIR),
                                  "batch_size": str(args.batch)})
    backend.generate(requests[:2], params)  # warm-up
    kept = hf._GrammarProcessor
    runs: dict[str, dict[str, list]] = {name: {"wall": [], "masks": [], "texts": []}
                                        for name in ("per-row loop (before)", "llguidance bitmask (now)")}
    for _ in range(args.rounds):
        for name, cls in zip(runs, (PerRowProcessor, kept)):
            inside: list[float] = []
            hf._GrammarProcessor = timed_processor(cls, inside)
            start = time.perf_counter()
            answers = backend.generate(requests, params)
            runs[name]["wall"].append(time.perf_counter() - start)
            runs[name]["masks"].append(sum(inside))
            runs[name]["texts"] = [a.text for a in answers]
    hf._GrammarProcessor = kept
    backend.close()
    print(f"## HF backend, constrained batch of {args.batch}, {args.n} CoNLL-2003 prompts, max_new_tokens "
          f"{args.max_new_tokens}, CPU ({machine()}), median of {args.rounds}")
    print("| logits processor | wall seconds | seconds in the processor |\n|---|---:|---:|")
    for name, run in runs.items():
        print(f"| {name} | {statistics.median(run['wall']):.1f} | {statistics.median(run['masks']):.2f} |")
    before, now = (runs[name]["texts"] for name in runs)
    print(f"\nidentical answers {sum(a == b for a, b in zip(before, now))}/{args.n}")


if __name__ == "__main__":
    main()
