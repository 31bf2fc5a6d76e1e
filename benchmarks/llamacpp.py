"""llama.cpp backend: framework overhead, constrained vs unconstrained, and a full CoNLL-2003 run.

    python benchmarks/llamacpp.py overhead --n 40      # kgc predict vs a bare llama-cpp loop, same prompts,
                                                       # one request at a time (extract_speed.py: batched)
    python benchmarks/llamacpp.py constrained --n 60   # wall time and parse failures with/without grammar
    python benchmarks/llamacpp.py conll                # all 300 test sentences, constrained
    python benchmarks/llamacpp.py lora                 # tokens/s per llama_decode call with and without the adapter

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
from kgcore.backend import GenerationParams, Request
from kgcore.jsonl import read_jsonl
from kgcore.backend import load_backend
from kgcore.prediction import RecordRequests, predict, record_key

MAX_NEW = 128


def _backend(parallel: int = 8):
    return load_backend("llamacpp", {"model": str(base_gguf()), "n_ctx": "2048", "parallel": str(parallel)})


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
    backend = _backend(parallel=0)  # one request at a time, as the bare loop; extract_speed.py: the batched path
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


def lora(rounds: int) -> None:
    """What applying the IE adapter at run time costs: tokens/s of one llama_decode call of 1 (one sequence's
    next token), 8 (one token of each of 8 sequences) and 128 tokens, with and without the adapter."""
    from llama_cpp import llama_memory_seq_rm

    text = " ".join(["The quick brown fox jumps over the lazy dog near the river bank."] * 20)
    rows = {}
    for name, options in (("base GGUF", {"lora": "none"}), ("base GGUF + IE adapter (LoRA)", {})):
        backend = load_backend("llamacpp", {**options, "parallel": "8"})
        backend.generate([Request(messages=({"role": "user", "content": "hi"},))], GenerationParams(max_new_tokens=2))
        decoder, ids = backend._decoder, backend.llm.tokenize(text.encode())
        rows[name] = []
        for size in (1, 8, 128):
            best = float("inf")
            for _ in range(rounds):
                entries = ([(1 + k, ids[k:k + 1], 0, True) for k in range(size)] if size <= 8
                           else [(1, ids[:size], 0, True)])
                start = time.perf_counter()
                decoder._decode(entries)
                best = min(best, time.perf_counter() - start)
                for seq, *_ in entries:
                    llama_memory_seq_rm(decoder.memory, seq, -1, -1)
            rows[name].append(size / best)
        backend.close()
    print(f"## llama.cpp tokens/s per llama_decode call, SmolLM2-135M Q4_1, best of {rounds} ({machine()})")
    print("| model | 1 token | 8 tokens (8 sequences) | 128 tokens |\n|---|---:|---:|---:|")
    for name, speeds in rows.items():
        print(f"| {name} | " + " | ".join(f"{v:.0f}" for v in speeds) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    o = sub.add_parser("overhead")
    o.add_argument("--n", type=int, default=40)
    o.add_argument("--rounds", type=int, default=3)
    c = sub.add_parser("constrained")
    c.add_argument("--n", type=int, default=60)
    sub.add_parser("conll")
    la = sub.add_parser("lora")
    la.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    if args.what == "overhead":
        overhead(args.n, args.rounds)
    elif args.what == "constrained":
        constrained(args.n)
    elif args.what == "lora":
        lora(args.rounds)
    else:
        conll()


if __name__ == "__main__":
    main()
