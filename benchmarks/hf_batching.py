"""HF backend: batched generation against one request at a time (the reference's way), same prompts.

    python benchmarks/hf_batching.py --n 32 --batch 16        # SmolLM2 de-quantized from its GGUF, free decoding
    python benchmarks/hf_batching.py --n 48 --batch 16 --max-new-tokens 128 --constrained \\
        --adapter plugins/kgc_backends/adapters/smollm2-ie       # kgc's default path; on a GPU add --dtype bfloat16

Both loops use the same backend instance, greedy decoding and the same max_new_tokens; the prompts are
CoNLL-2003 NER test instructions. Each loop's answers are scored (entity F1), and the warnings of
constrained decoding that lost track of its schema are counted.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import conll_test_instructions, machine  # noqa: E402

import kgcore  # noqa: E402
from kgcore.backend import GenerationParams, load_backend  # noqa: E402
from kgcore.jsonl import read_jsonl  # noqa: E402
from kgcore.prediction import RecordRequests  # noqa: E402


def timed(run) -> tuple[list, float, int]:
    """``(generations, seconds, lost-track warnings)`` of ``run()``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        generations = run()
        seconds = time.perf_counter() - start
    return generations, seconds, sum("lost track" in str(w.message) for w in caught)


def entity_f1(records: list[dict], generations: list) -> float:
    path = Path(tempfile.mkdtemp(prefix="kgc-bench-")) / "pred.json"
    path.write_text("".join(json.dumps({**r, "output": g.text}, ensure_ascii=False) + "\n"
                            for r, g in zip(records, generations)), encoding="utf-8")
    return kgcore.evaluate(path, progress=False)["metrics"]["entity"]["F1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--model", default=None, help="transformers checkpoint (default: SmolLM2 de-quantized)")
    parser.add_argument("--adapter", default="", help="PEFT adapter directory (default: none)")
    parser.add_argument("--dtype", default="auto", help="auto, float32, bfloat16 or float16")
    parser.add_argument("--constrained", action="store_true",
                        help="Answers constrained to the task's JSON Schema and quoting the text (kgc's default)")
    args = parser.parse_args()
    model = args.model
    if model is None:
        from kgc_backends.default_model import base_checkpoint

        model = str(base_checkpoint())
    to_request = RecordRequests(constrained=args.constrained, quote=args.constrained)
    records = [r for _, r in read_jsonl(conll_test_instructions(args.n))]
    requests = [to_request(r) for r in records]
    params = GenerationParams(max_new_tokens=args.max_new_tokens, constrained=args.constrained, quote=args.constrained)
    backend = load_backend("hf", {"model": model, "adapter": args.adapter, "dtype": args.dtype,
                                  "batch_size": str(args.batch)})
    backend.generate(requests[:2], params)  # warm-up

    one_by_one, single, single_lost = timed(lambda: [backend.generate([r], params)[0] for r in requests])
    batched, together, batched_lost = timed(lambda: backend.generate(requests, params))
    same = sum(a.text == b.text for a, b in zip(one_by_one, batched))
    described = backend.describe()
    print(f"## HF backend, batched vs batch-1, {args.n} CoNLL-2003 prompts, max_new_tokens {args.max_new_tokens}, "
          f"{'constrained and quoting' if args.constrained else 'free decoding'}, adapter {args.adapter or 'none'} "
          f"({machine()}, {described.get('device')}, {described.get('model_dtype')})")
    print("| loop | seconds | completion tokens | tokens/s | entity F1 | lost track |\n|---|---:|---:|---:|---:|---:|")
    for name, run, seconds, lost in (("batch 1 (one request at a time)", one_by_one, single, single_lost),
                                     (f"batch {args.batch}", batched, together, batched_lost)):
        tokens = sum(g.completion_tokens for g in run)
        print(f"| {name} | {seconds:.1f} | {tokens} | {tokens / seconds:.1f} | {entity_f1(records, run):.2f} | "
              f"{lost} |")
    print(f"\nspeed-up **{single / together:.2f}×**; identical answers {same}/{args.n}")
    backend.close()


if __name__ == "__main__":
    main()
