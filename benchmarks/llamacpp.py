"""llama.cpp backend: framework overhead, constrained vs unconstrained, and a full CoNLL-2003 run.

    python benchmarks/llamacpp.py overhead --n 40      # kgc predict vs a bare llama-cpp loop, same prompts
    python benchmarks/llamacpp.py constrained --n 60   # wall time and parse failures with/without grammar
    python benchmarks/llamacpp.py conll                # all 300 test sentences, constrained

Every comparison runs side by side in one process on the same model and prompts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from common import conll_test_instructions, machine
from kgc_backends.default_model import base_gguf

import kgcore
from kgcore.backend import GenerationParams
from kgcore.jsonl import read_jsonl
from kgcore.backend import load_backend
from kgcore.prediction import RecordRequests, predict, record_key

MAX_NEW = 128


def _backend():
    return load_backend("llamacpp", {"model": str(base_gguf()), "n_ctx": "2048"})


def _predict(backend, src: Path, constrained: bool) -> tuple[float, dict]:
    out = Path(tempfile.mkdtemp()) / "pred.json"
    start = time.perf_counter()
    predict(src, out, backend, params=GenerationParams(max_new_tokens=MAX_NEW, constrained=constrained), progress=False)
    seconds = time.perf_counter() - start
    return seconds, kgcore.evaluate(out, progress=False)


def overhead(n: int, rounds: int) -> None:
    """kgc predict (read, prompt, grammar, generate, write, fsync) against llama-cpp alone, on the same
    distinct records (predict answers a repeated record once), each loop compiling its own grammars."""
    from llama_cpp import LlamaGrammar

    src = conll_test_instructions(n)
    backend = _backend()
    to_request = RecordRequests()
    records = list({record_key(r): r for _, r in read_jsonl(src)}.values())
    prompts = [(*backend._tokens(request), request.json_schema) for request in map(to_request, records)]
    llm = backend.llm

    def bare() -> float:
        start = time.perf_counter()
        grammars = {}
        for tokens, stop, schema in prompts:
            key = json.dumps(schema, sort_keys=True)
            if key not in grammars:
                grammars[key] = LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
            llm.create_completion(tokens, max_tokens=MAX_NEW, temperature=0.0, seed=42, stop=stop or None,
                                  grammar=grammars[key])
        return time.perf_counter() - start

    def kgc() -> float:
        backend._grammars.clear()  # compiled anew, as in the bare loop
        return _predict(backend, src, constrained=True)[0]

    bare(), kgc()  # warm-up
    bare_times, kgc_times = [], []
    for _ in range(rounds):  # interleaved, so drift hits both alike
        bare_times.append(bare())
        kgc_times.append(kgc())
    b, k = statistics.median(bare_times), statistics.median(kgc_times)
    print(f"## Framework overhead, llama.cpp, {len(records)} distinct CoNLL-2003 prompts (of the first {n}), "
          f"constrained, {rounds} rounds after a warm-up ({machine()})")
    print("| loop | median seconds | records/s | all rounds |\n|---|---:|---:|---|")
    print(f"| bare llama-cpp-python | {b:.2f} | {len(records) / b:.2f} | {', '.join(f'{t:.2f}' for t in bare_times)} |")
    print(f"| kgc predict | {k:.2f} | {len(records) / k:.2f} | {', '.join(f'{t:.2f}' for t in kgc_times)} |")
    print(f"\nratio kgc / bare = **{k / b:.3f}**")
    backend.close()


def constrained(n: int) -> None:
    src = conll_test_instructions(n)
    backend = _backend()
    rows = []
    for flag in (False, True):
        seconds, report = _predict(backend, src, flag)
        rows.append((flag, seconds, report))
    print(f"## Constrained vs unconstrained decoding, llama.cpp, SmolLM2, {n} CoNLL-2003 prompts ({machine()})")
    print("| decoding | seconds | records/s | parse failures | failure rate % | entity F1 |\n|---|---|---|---|---|---|")
    for flag, seconds, r in rows:
        print(f"| {'JSON-schema grammar' if flag else 'free'} | {seconds:.1f} | {r['outputs'] / seconds:.2f} | "
              f"{r['parse_failures']} | {r['parse_failure_rate']:.1f} | {r['metrics']['entity']['F1']:.2f} |")
    backend.close()


def conll() -> None:
    src = conll_test_instructions()
    backend = _backend()
    seconds, report = _predict(backend, src, True)
    print(f"## All CoNLL-2003 test sentences, llama.cpp, SmolLM2 zero-shot, constrained ({machine()})")
    print(json.dumps({k: report[k] for k in ("records", "outputs", "parse_failures", "parse_failure_rate")}
                     | {"entity": report["metrics"]["entity"], "seconds": round(seconds, 1),
                        "records_per_s": round(report["outputs"] / seconds, 2)}, indent=2))
    backend.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    o = sub.add_parser("overhead")
    o.add_argument("--n", type=int, default=40)
    o.add_argument("--rounds", type=int, default=3)
    c = sub.add_parser("constrained")
    c.add_argument("--n", type=int, default=60)
    sub.add_parser("conll")
    args = parser.parse_args()
    if args.what == "overhead":
        overhead(args.n, args.rounds)
    elif args.what == "constrained":
        constrained(args.n)
    else:
        conll()


if __name__ == "__main__":
    main()
