"""``kgc extract --engine ray`` against plain ``kgc extract`` on the same documents, in one run.

    python benchmarks/scale_out.py --docs 80

The first ``--docs`` CoNLL-2003 test sentences (NER, the default model on llama.cpp) go through plain
``kgc extract`` and Ray with one actor, each with every core and with one thread (Ray's overhead), and
Ray with one actor per core (its scaling, set against plain with every core). Each run is the whole
command a user runs, start-up included, in network and PID namespaces of its own with only loopback
(``unshare``), like the tests. The Ray runs' results are compared with the plain run's. OpenMP keeps
its default wait policy (``PASSIVE`` slows llama.cpp several times here).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CONLL, machine  # noqa: E402

KGC = [sys.executable, "-m", "kgcore.cli"]
LABELS = ["-t", "NER", "-l", "person,location,organization,miscellaneous"]
KEYS = ("id", "result", "triples", "spans", "parse_failures")


def isolated(command: list[str]) -> list[str]:
    return ["unshare", "-rnpfm", "--mount-proc", "--kill-child", "sh", "-c", 'ip link set lo up && exec "$@"',
            "sh", *command]


def timed(command: list[str], cwd: Path) -> tuple[float, str]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | {"RAY_USAGE_STATS_ENABLED": "0"}
    start = time.perf_counter()
    done = subprocess.run(isolated(command), cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        sys.exit(done.stderr[-3000:])
    return seconds, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=120)
    parser.add_argument("--shard-size", type=int, default=8)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    work = Path(tempfile.mkdtemp(prefix="kgc-scale-"))
    with (CONLL / "test.json").open(encoding="utf-8") as fh:
        texts = [json.loads(line)["text"] for line, _ in zip(fh, range(args.docs))]
    (work / "docs.txt").write_text("".join(t + "\n" for t in texts), encoding="utf-8")

    plain_runs = {}
    for threads in (cores, 1):
        seconds, stdout = timed([*KGC, "extract", "-i", "docs.txt", *LABELS, "-O", f"n_threads={threads}"], work)
        plain_runs[threads] = (seconds, [{k: line[k] for k in KEYS} for line in map(json.loads, stdout.splitlines())])
    plain = plain_runs[cores][1]
    rows = [(f"plain kgc extract, 1 process x {cores} threads", plain_runs[cores][0], cores, len(plain))]
    for actors, cpus in ((1, cores), (1, 1), (cores, 1)):
        out = f"ray-{actors}x{cpus}"
        seconds, _ = timed([*KGC, "extract", "--engine", "ray", "-q", "-i", "docs.txt", *LABELS, "-o", out,
                            "--actors", str(actors), "--cpus-per-actor", str(cpus), "--shard-size",
                            str(args.shard_size)], work)
        lines = [json.loads(line) for part in sorted((work / out).glob("part-*.jsonl")) for line in part.open()]
        same = sum({k: a[k] for k in KEYS} == b for a, b in zip(lines, plain, strict=True))
        if (actors, cpus) == (1, 1):
            rows.append(("plain kgc extract, 1 process x 1 thread", plain_runs[1][0], 1,
                         sum(a == b for a, b in zip(plain_runs[1][1], plain))))
        rows.append((f"ray, {actors} actor{'s' * (actors > 1)} x {cpus} thread{'s' * (cpus > 1)}", seconds, cpus,
                     same))

    print(f"{args.docs} CoNLL-2003 test sentences, NER, default model (llama.cpp); {machine()}\n")
    print("| run | seconds | docs/s | time vs plain with the same threads per model | results equal to plain |")
    print("|---|---:|---:|---:|---:|")
    for name, seconds, threads, same in rows:
        base = plain_runs[threads][0] if "actors" not in name else plain_runs[cores][0]
        print(f"| {name} | {seconds:.1f} | {args.docs / seconds:.2f} | {seconds / base:.2f}x | {same}/{args.docs} |")


if __name__ == "__main__":
    main()
