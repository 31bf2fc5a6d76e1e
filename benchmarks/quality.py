"""Extraction quality of the default model on every test split of ../shared/datasets.

    python benchmarks/quality.py                       # all splits, all four configurations
    python benchmarks/quality.py --limit 50            # the first 50 test records of each split
    python benchmarks/quality.py --limit 10 --limit webnlg=3   # ... and 3 of WebNLG (27 instructions each)
    python benchmarks/quality.py --datasets conll2003 --configs adapter+json --limit 2   # smoke
    python benchmarks/quality.py --datasets webnlg --work runs/   # resumable: rerun after a stop

    python benchmarks/quality.py --backend hf --model DIR --adapter DIR   # transformers (a GPU when present)

Configurations, on SmolLM2-135M-Instruct, greedy:
  zero-shot       no adapter, free decoding
  zero-shot+json  no adapter, answers constrained to the task's JSON Schema
  adapter+json    kgc's IE adapter, constrained
  adapter+json+quote  ... and every answer string a span of the text (what `kgc extract` runs by default)
The default backend is llama.cpp with the Q4_1 GGUF and the shipped GGUF LoRA (what `kgc extract` uses).
With --backend hf, --model is the de-quantized checkpoint and --adapter the PEFT adapter, in batches.
Writes a Markdown table (stdout) and the full reports as JSON (--json).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import SHARED, machine  # noqa: E402

import kgcore  # noqa: E402
from kgcore.backend import GenerationParams  # noqa: E402
from kgcore import load_backend, predict  # noqa: E402

#: dataset -> (task, language, split_num, metrics to report, answer tokens: above the longest training answer)
DATASETS = {
    "conll2003": ("NER", "en", 6, ("entity",), 192),
    "wnut17": ("NER", "en", 6, ("entity",), 192),
    "conll04": ("RE", "en", 4, ("triple",), 256),
    "nyt": ("RE", "en", 4, ("triple",), 256),
    "webnlg": ("RE", "en", 8, ("triple",), 256),
    "phee": ("EE", "en", 4, ("event", "argument"), 768),
    "msra_ner": ("NER", "zh", 6, ("entity",), 384),
    "resume_ner": ("NER", "zh", 6, ("entity",), 512),
}
CONFIGS = {
    "zero-shot": {"adapter": False, "constrained": False, "quote": False},
    "zero-shot+json": {"adapter": False, "constrained": True, "quote": False},
    "adapter+json": {"adapter": True, "constrained": True, "quote": False},
    "adapter+json+quote": {"adapter": True, "constrained": True, "quote": True},
}


def backend_options(args: argparse.Namespace, adapter: bool) -> dict[str, str]:
    if args.backend == "llamacpp":
        return {"lora": "" if adapter else "none", "merge": args.merge, "n_ctx": "4096", "n_threads": str(args.threads)}
    return {"model": args.model, "adapter": args.adapter if adapter else "", "batch_size": str(args.batch_size)}


def parse_limits(values: list[str]) -> dict[str | None, int]:
    """``["10", "webnlg=3"]`` -> ``{None: 10, "webnlg": 3}``: a default and per-dataset record limits."""
    limits: dict[str | None, int] = {}
    for value in values:
        name, _, number = value.rpartition("=")
        if name and name not in DATASETS or not number.isdigit() or int(number) < 1:
            raise argparse.ArgumentTypeError(f"--limit {value}: expected N or DATASET=N (N >= 1)")
        limits[name or None] = int(number)
    return limits


def run(dataset: str, config: str, args: argparse.Namespace, backends: dict) -> dict:
    task, language, split_num, metrics, max_new_tokens = DATASETS[dataset]
    folder = SHARED / "datasets" / dataset
    work = args.work / f"{dataset}.{config}" if args.work else Path(tempfile.mkdtemp(prefix=f"kgc-quality-{dataset}-"))
    work.mkdir(parents=True, exist_ok=True)
    kgcore.convert(folder / "test.json", work / "test.json", task=task, schema=folder / "schema.json",
                   options=kgcore.ConvertOptions(split="test", language=language, split_num=split_num),
                   limit=args.limits.get(dataset, args.limits.get(None)), progress=False)
    settings = CONFIGS[config]
    if settings["adapter"] not in backends:
        backends[settings["adapter"]] = load_backend(args.backend, backend_options(args, settings["adapter"]))
    start = time.perf_counter()
    params = GenerationParams(max_new_tokens=args.max_new_tokens or max_new_tokens, constrained=settings["constrained"],
                              quote=settings["quote"])
    meta = predict(work / "test.json", work / "pred.json", backends[settings["adapter"]], progress=False,
                   batch_size=args.batch_size, params=params)
    seconds = time.perf_counter() - start
    report = kgcore.evaluate(work / "pred.json", progress=False)
    answered_now = 1 - meta["resumed_from"] / meta["records"]  # the share of instructions this run answered
    speed = round(report["records"] * answered_now / seconds, 3) if answered_now else None
    return {"dataset": dataset, "config": config, "task": task, "language": language,
            "records": report["records"], "instructions": report["outputs"], "resumed_from": meta["resumed_from"],
            "seconds": round(seconds, 1), "records_per_s": speed,
            "parse_failure_rate": report["parse_failure_rate"],
            "truncated": report["truncated"],
            "f1": {m: round(report["metrics"][m]["F1"], 2) for m in metrics}}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--limit", action="append", default=[], metavar="[DATASET=]N",
                        help="First N test records per split, or of one dataset (repeatable).")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="Answer tokens (default: per dataset).")
    parser.add_argument("--backend", choices=["llamacpp", "hf"], default="llamacpp")
    parser.add_argument("--model", help="hf: the de-quantized SmolLM2 checkpoint directory.")
    parser.add_argument("--adapter", help="hf: the PEFT adapter directory.")
    parser.add_argument("--batch-size", type=int, default=8, help="Instructions per backend call.")
    parser.add_argument("--merge", default="auto", choices=["auto", "off", "q8_0", "f16"],
                        help="llamacpp: the adapter applied at run time (off) or merged into the model once.")
    parser.add_argument("--threads", type=int, default=0, help="llamacpp: CPU threads (0: all cores).")
    parser.add_argument("--json", type=Path, default=None, help="Also write the rows as JSON here.")
    parser.add_argument("--work", type=Path, default=None,
                        help="Keep each run's instructions and answers in WORK/DATASET.CONFIG and resume a stopped "
                             "run there (same --limit); records/s then counts only what this run answered.")
    args = parser.parse_args(argv)
    try:
        args.limits = parse_limits(args.limit)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    if args.backend == "hf" and not (args.model and args.adapter):
        parser.error("--backend hf needs --model and --adapter")
    backends: dict = {}
    rows = []
    print(f"Quality of SmolLM2-135M-Instruct through kgc's {args.backend} backend "
          f"({machine()}; limit {' '.join(args.limit) or 'none'})\n")
    print("| dataset | task | lang | configuration | records | F1 | parse failures % | records/s |")
    print("|---|---|---|---|---:|---|---:|---:|")
    for dataset in args.datasets:
        for config in args.configs:
            row = run(dataset, config, args, backends)
            rows.append(row)
            f1 = ", ".join(f"{m} {v:.2f}" for m, v in row["f1"].items())
            speed = "—" if row["records_per_s"] is None else f"{row['records_per_s']:.2f}"
            print(f"| {dataset} | {row['task']} | {row['language']} | {config} | {row['records']} | {f1} | "
                  f"{row['parse_failure_rate']:.1f} | {speed} |", flush=True)
    print("\nBackends:", json.dumps([backend.describe() for backend in backends.values()]))
    for backend in backends.values():
        backend.close()
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return rows


if __name__ == "__main__":
    main()
