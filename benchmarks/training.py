"""Training speed and peak memory of LoRA, QLoRA and full fine-tuning on CPU, same data and steps.

    python benchmarks/training.py --steps 6

Each method runs `kgc train` (the kgc_trainers plugin) in its own process on SmolLM2-135M-Instruct
(de-quantized, fp32) with CoNLL-2003 training instructions; tokens/s is the mean of the logged steps
after the first, peak memory the process's maximum RSS.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import CONLL, machine  # noqa: E402

import kgcore  # noqa: E402
from kgc_trainers.logs import LOG_FILE, read_log  # noqa: E402

CODE = ("import resource, sys\nfrom kgcore.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
        "    code = e.code\nprint('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--methods", nargs="+", default=["lora", "qlora", "full"])
    args = parser.parse_args()
    from kgc_backends.default_model import base_checkpoint

    model = base_checkpoint()
    work = Path(tempfile.mkdtemp(prefix="kgc-train-bench-"))
    kgcore.convert(CONLL / "train.json", work / "train.json", task="NER", schema=CONLL / "schema.json",
                   options=kgcore.ConvertOptions(split="train", language="en"), limit=64, progress=False)
    print(f"## Training on CPU, SmolLM2-135M, {args.steps} steps of 4 x <=256 tokens ({machine()})")
    print("| method | tokens/s | peak RSS MB | first loss | last loss |\n|---|---:|---:|---:|---:|")
    for method in args.methods:
        out = work / method
        done = subprocess.run([sys.executable, "-c", CODE, "train", "--model", str(model), "--train-file",
                               str(work / "train.json"), "--output-dir", str(out), "--method", method,
                               "--max-steps", str(args.steps), "--batch-size", "4", "--cutoff-len", "256",
                               "--logging-steps", "1", "--learning-rate", "2e-4", "--save-strategy", "no"],
                              capture_output=True, text=True)
        if done.returncode != 0 or not (out / LOG_FILE).exists():
            print(f"| {method} | failed: {done.stderr.strip().splitlines()[-1:]} | | | |")
            continue
        peak = int(next(l for l in done.stderr.splitlines() if l.startswith("PEAK")).split()[1]) / 1024
        steps = [r for r in read_log(out / LOG_FILE) if r.get("loss") is not None]
        speed = statistics.mean(r["tokens_per_s"] for r in steps[1:] if r.get("tokens_per_s"))
        print(f"| {method} | {speed:.0f} | {peak:.0f} | {steps[0]['loss']:.3f} | {steps[-1]['loss']:.3f} |",
              flush=True)


if __name__ == "__main__":
    main()
