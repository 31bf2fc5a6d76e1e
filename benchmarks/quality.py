"""Extraction quality of the default model on every test split of ../shared/datasets.

    python benchmarks/quality.py                       # all splits, all three configurations
    python benchmarks/quality.py --limit 50            # the first 50 test records of each split
    python benchmarks/quality.py --datasets conll2003 --configs adapter --limit 2   # smoke run

Configurations, all through the llama.cpp backend on SmolLM2-135M-Instruct (Q4_1 GGUF), greedy:
  zero-shot       no adapter, free decoding
  zero-shot+json  no adapter, answers constrained to the task's JSON Schema
  adapter+json    kgc's shipped IE adapter, constrained
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
from kgcore.prediction import load_backend, predict  # noqa: E402

#: dataset -> (task, language, split_num, metrics to report)
DATASETS = {
    "conll2003": ("NER", "en", 6, ("entity",)),
    "conll04": ("RE", "en", 4, ("triple",)),
    "webnlg": ("RE", "en", 8, ("triple",)),
    "phee": ("EE", "en", 4, ("event", "argument")),
    "msra_ner": ("NER", "zh", 6, ("entity",)),
    "resume_ner": ("NER", "zh", 6, ("entity",)),
}
CONFIGS = {
    "zero-shot": {"lora": "none", "constrained": False},
    "zero-shot+json": {"lora": "none", "constrained": True},
    "adapter+json": {"lora": "", "constrained": True},
}


def run(dataset: str, config: str, limit: int | None, max_new_tokens: int, backends: dict) -> dict:
    task, language, split_num, metrics = DATASETS[dataset]
    folder = SHARED / "datasets" / dataset
    work = Path(tempfile.mkdtemp(prefix=f"kgc-quality-{dataset}-"))
    kgcore.convert(folder / "test.json", work / "test.json", task=task, schema=folder / "schema.json",
                   options=kgcore.ConvertOptions(split="test", language=language, split_num=split_num),
                   limit=limit, progress=False)
    settings = CONFIGS[config]
    backend = backends.setdefault(settings["lora"], load_backend("llamacpp", {"lora": settings["lora"], "n_ctx": "4096"}))
    start = time.perf_counter()
    predict(work / "test.json", work / "pred.json", backend, progress=False,
            params=GenerationParams(max_new_tokens=max_new_tokens, constrained=settings["constrained"]))
    seconds = time.perf_counter() - start
    report = kgcore.evaluate(work / "pred.json", progress=False)
    return {"dataset": dataset, "config": config, "task": task, "language": language,
            "records": report["records"], "instructions": report["outputs"], "seconds": round(seconds, 1),
            "records_per_s": round(report["records"] / seconds, 3), "parse_failure_rate": report["parse_failure_rate"],
            "f1": {m: round(report["metrics"][m]["F1"], 2) for m in metrics}}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--limit", type=int, default=None, help="First N test records per split.")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--json", type=Path, default=None, help="Also write the rows as JSON here.")
    args = parser.parse_args(argv)
    backends: dict = {}
    rows = []
    print(f"Quality of SmolLM2-135M-Instruct through kgc ({machine()}; limit {args.limit or 'none'})\n")
    print("| dataset | task | lang | configuration | records | F1 | parse failures % | records/s |")
    print("|---|---|---|---|---:|---|---:|---:|")
    for dataset in args.datasets:
        for config in args.configs:
            row = run(dataset, config, args.limit, args.max_new_tokens, backends)
            rows.append(row)
            f1 = ", ".join(f"{m} {v:.2f}" for m, v in row["f1"].items())
            print(f"| {dataset} | {row['task']} | {row['language']} | {config} | {row['records']} | {f1} | "
                  f"{row['parse_failure_rate']:.1f} | {row['records_per_s']:.2f} |", flush=True)
    for backend in backends.values():
        backend.close()
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return rows


if __name__ == "__main__":
    main()
