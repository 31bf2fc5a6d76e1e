"""Peak memory and speed of `kgc convert` as the input grows (streaming check).

    python benchmarks/convert_stream.py            # 10k, 100k, 1M records
    python benchmarks/convert_stream.py 1000 10000 # custom sizes

Each size runs `kgc convert` in its own process; peak RSS comes from getrusage of that child.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCHEMA = ["人物", "地理位置", "组织机构"]


def make_input(path: Path, n: int) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(json.dumps({"text": f"第{i}号记者张三在北京的新华社工作。", "entity": [
                {"entity": "张三", "entity_type": "人物"}, {"entity": "北京", "entity_type": "地理位置"},
                {"entity": "新华社", "entity_type": "组织机构"}]}, ensure_ascii=False) + "\n")


def run(n: int, folder: Path) -> tuple[float, float, float]:
    src = folder / f"in{n}.json"
    make_input(src, n)
    (folder / "schema.json").write_text(json.dumps(SCHEMA, ensure_ascii=False), encoding="utf-8")
    code = ("import resource, sys; from kgcore.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, "convert", "-q", "-t", "NER", "-i", str(src),
                           "-s", str(folder / "schema.json"), "-o", str(folder / "out.json")],
                          check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    peak_mb = int(done.stderr.strip().splitlines()[-1]) / 1024
    size_mb = src.stat().st_size / 1e6
    src.unlink()
    return seconds, peak_mb, size_mb


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [10_000, 100_000, 1_000_000]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores")
    print(f"{'records':>10} {'input MB':>9} {'seconds':>8} {'records/s':>10} {'peak RSS MB':>12}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            seconds, peak, size = run(n, Path(tmp))
            print(f"{n:>10} {size:>9.1f} {seconds:>8.1f} {n / seconds:>10.0f} {peak:>12.1f}")


if __name__ == "__main__":
    main()
