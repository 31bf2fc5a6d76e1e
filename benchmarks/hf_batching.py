"""HF backend: batched generation against one request at a time (the reference's way), same prompts.

    python benchmarks/hf_batching.py --n 32 --batch 16        # SmolLM2 de-quantized from its GGUF

Both loops use the same backend instance, greedy decoding, free (unconstrained) answers and the
same max_new_tokens; the prompts are CoNLL-2003 NER test instructions.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import conll_test_instructions, machine  # noqa: E402

from kgcore.backend import GenerationParams  # noqa: E402
from kgcore.jsonl import read_jsonl  # noqa: E402
from kgcore.backend import load_backend  # noqa: E402
from kgcore.prediction import RecordRequests  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--model", default=None, help="transformers checkpoint (default: SmolLM2 de-quantized)")
    args = parser.parse_args()
    model = args.model
    if model is None:
        from kgc_backends.default_model import base_checkpoint

        model = str(base_checkpoint())
    to_request = RecordRequests(constrained=False)
    requests = [to_request(r) for _, r in read_jsonl(conll_test_instructions(args.n))]
    params = GenerationParams(max_new_tokens=args.max_new_tokens, constrained=False)
    backend = load_backend("hf", {"model": model, "batch_size": str(args.batch)})
    backend.generate(requests[:2], params)  # warm-up

    start = time.perf_counter()
    one_by_one = [backend.generate([r], params)[0] for r in requests]
    single = time.perf_counter() - start
    start = time.perf_counter()
    batched = backend.generate(requests, params)
    together = time.perf_counter() - start
    same = sum(a.text == b.text for a, b in zip(one_by_one, batched))
    single_tokens, batched_tokens = (sum(g.completion_tokens for g in run) for run in (one_by_one, batched))
    print(f"## HF backend, batched vs batch-1, {args.n} CoNLL-2003 prompts, max_new_tokens {args.max_new_tokens} "
          f"({machine()}, {backend.describe().get('device_map') or 'cpu'})")
    print("| loop | seconds | completion tokens | tokens/s |\n|---|---:|---:|---:|")
    print(f"| batch 1 (one request at a time) | {single:.1f} | {single_tokens} | {single_tokens / single:.1f} |")
    print(f"| batch {args.batch} | {together:.1f} | {batched_tokens} | {batched_tokens / together:.1f} |")
    print(f"\nspeed-up **{single / together:.2f}×**; identical answers {same}/{args.n}")
    backend.close()


if __name__ == "__main__":
    main()
