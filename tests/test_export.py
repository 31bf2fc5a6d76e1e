"""Merging PEFT LoRA adapters and exporting GGUF files, on the real SmolLM2-135M-Instruct. No mocks.

The adapters are made here with peft (LoRA on every projection, B weights drawn at random so that the
adapter really changes the model); GGUF files are written by llama.cpp's own converters (fetched once
by ``python -m kgc_trainers.export fetch-converters``) and loaded by the ``llamacpp`` backend.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

# OpenMP threads that spin while waiting (the default) make llama.cpp and torch in one process crawl on
# shared, oversubscribed CPUs: 3 short generations took 1-97 s here, 1-2.5 s with passive waiting.
# Read when the OpenMP runtime loads, so before torch or llama_cpp is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import pytest

from kgcore.backend import GenerationParams, Request, load_backend
from kgcore.errors import InputError, MissingDependencyError, UnknownComponentError

pytestmark = pytest.mark.slow

import torch  # noqa: E402
import transformers  # noqa: E402

from kgc_trainers import export  # noqa: E402

PROMPTS = ["What is the capital of France?", "Name three colours, please.",
           "Write one short sentence about the sea."]
MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
#: fp32 merge vs. base + adapter: max abs logit difference allowed. Logits reach about 30; (W + BA)x and
#: Wx + B(Ax) differ by fp32 rounding through 30 layers: 1.2e-4 measured, i.e. 4e-6 relative.
MERGE_TOL = 5e-4
#: Tokens of greedy output that must agree between transformers (fp32) and llama.cpp (f16 GGUF).
AGREE_TOKENS = 5


def make_adapter(base: Path, out: Path, modules: list[str], r: int, sigma: float, seed: int) -> Path:
    """A real PEFT LoRA adapter whose B weights are random (a fresh adapter's B is zero: no effect)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, target_modules=modules, lora_dropout=0.0))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, sigma)
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def converters():
    return export.converters_dir()  # fails with the one command that fetches them


@pytest.fixture(scope="module")
def adapter(smollm2_hf, tmp_path_factory) -> Path:
    return make_adapter(smollm2_hf, tmp_path_factory.mktemp("adapters") / "a", MODULES, 8, 0.05, 0)


@pytest.fixture(scope="module")
def tokenizer(smollm2_hf):
    return transformers.AutoTokenizer.from_pretrained(smollm2_hf)


@pytest.fixture(scope="module")
def prompt_texts(tokenizer) -> list[str]:
    return [tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False)
            for p in PROMPTS]


def kgc_cli():
    """The kgc command group with plugin commands registered, as ``kgc`` itself does (``kgc merge``
    comes from the kgc_trainers plugin)."""
    from kgcore.cli import cli
    from kgcore.plugins import get_host

    get_host().add_commands(cli)
    return cli


@pytest.fixture(scope="module")
def cli_run(smollm2_hf, adapter, converters, tmp_path_factory):
    """``kgc merge`` with every output: merged folder (named template), q8_0 GGUF and LoRA GGUF."""
    from click.testing import CliRunner

    out = tmp_path_factory.mktemp("cli")
    args = ["merge", "--base", str(smollm2_hf), "--adapter", str(adapter), "--out", str(out / "merged"),
            "--dtype", "float32", "--template", "default", "--gguf", str(out / "merged-q8_0.gguf"),
            "--gguf-type", "q8_0", "--lora-gguf", str(out / "lora.gguf")]
    result = CliRunner().invoke(kgc_cli(), args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def merged(cli_run) -> Path:
    return cli_run / "merged"


def hf_logits(model, tokenizer, texts: list[str]) -> list[np.ndarray]:
    out = []
    with torch.no_grad():
        for text in texts:
            ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
            out.append(model(ids).logits[0].numpy())
    return out


def hf_greedy(model, tokenizer, text: str, n: int = 16) -> list[int]:
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        return model.generate(ids, max_new_tokens=n, do_sample=False)[0, ids.shape[1]:].tolist()


# -- merging --------------------------------------------------------------------------------------

def test_merged_logits_equal_base_plus_adapter(smollm2_hf, adapter, merged, tokenizer, prompt_texts):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(smollm2_hf, dtype=torch.float32).eval()
    base_logits = hf_logits(base, tokenizer, prompt_texts)
    with_adapter = PeftModel.from_pretrained(base, adapter).eval()
    expected = hf_logits(with_adapter, tokenizer, prompt_texts)
    got = hf_logits(AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32).eval(), tokenizer, prompt_texts)
    for e, g, b in zip(expected, got, base_logits):
        assert np.abs(e - b).max() > 0.5  # the adapter really changes the model ...
        assert np.abs(e - g).max() < MERGE_TOL  # ... and the merged weights reproduce it


def test_two_adapters_merge_to_the_sum_of_their_deltas(smollm2_hf, adapter, converters, tmp_path):
    from safetensors.torch import load_file

    second = make_adapter(smollm2_hf, tmp_path / "b", ["q_proj", "v_proj"], 4, 0.05, 1)
    out = export.merge_adapters(smollm2_hf, [adapter, second], tmp_path / "merged2", "float32")
    base_w = load_file(next(Path(smollm2_hf).glob("*.safetensors")))
    merged_w = load_file(out / "model.safetensors")
    deltas: dict[str, torch.Tensor] = {}
    for folder in (adapter, second):
        config = json.loads((folder / "adapter_config.json").read_text())
        scale = config["lora_alpha"] / config["r"]
        weights = load_file(folder / "adapter_model.safetensors")
        for key, a in weights.items():
            if ".lora_A." in key:
                name = key.replace("base_model.model.", "").replace(".lora_A.weight", ".weight")
                b = weights[key.replace("lora_A", "lora_B")]
                deltas[name] = deltas.get(name, 0) + scale * (b @ a)
    assert len(deltas) == 30 * len(MODULES)
    assert set(merged_w) == set(base_w)
    for name, weight in merged_w.items():
        if name in deltas:
            torch.testing.assert_close(weight, base_w[name] + deltas[name], rtol=0, atol=1e-5)
        else:
            assert torch.equal(weight, base_w[name]), name
    assert json.loads((out / "kgc_merge.json").read_text())["adapters"] == [str(adapter), str(second)]


def test_merged_folder_reloads_with_tokenizer_and_templates(smollm2_hf, merged, tokenizer):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from kgcore.prompt import load_chat_template

    model = AutoModelForCausalLM.from_pretrained(merged)
    assert model.config.use_cache is True and model.config.model_type == "llama"
    assert not list(merged.glob("adapter_*"))  # a plain checkpoint, no PEFT left
    reloaded = AutoTokenizer.from_pretrained(merged)
    assert reloaded.chat_template == tokenizer.chat_template and reloaded.chat_template
    assert reloaded.padding_side == "left"
    messages = [{"role": "user", "content": "Hi"}]
    assert reloaded.apply_chat_template(messages, tokenize=False) == tokenizer.apply_chat_template(messages,
                                                                                                   tokenize=False)
    saved = load_chat_template(merged / "kgc_chat_template.yaml")
    assert saved.to_dict() == load_chat_template("default").to_dict()
    info = json.loads((merged / "kgc_merge.json").read_text())
    assert info["family"] == "llama" and info["chat_template"] == "kgc_chat_template.yaml"


def test_merge_refuses_bad_input(smollm2_hf, adapter, tmp_path):
    with pytest.raises(InputError, match="no adapter_config.json"):
        export.merge_adapters(smollm2_hf, [tmp_path], tmp_path / "out")
    prompt_tuning = tmp_path / "pt"
    prompt_tuning.mkdir()
    (prompt_tuning / "adapter_config.json").write_text(json.dumps({"peft_type": "PROMPT_TUNING"}))
    with pytest.raises(InputError, match="cannot be merged"):
        export.merge_adapters(smollm2_hf, [prompt_tuning], tmp_path / "out")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        export.merge_adapters(smollm2_hf, [adapter], tmp_path / "full")
    with pytest.raises(InputError, match="dtype"):
        export.merge_adapters(smollm2_hf, [adapter], tmp_path / "out", "int8")
    with pytest.raises(InputError, match="GGUF type"):
        export.export_gguf(smollm2_hf, tmp_path / "x.gguf", "q4_k")


def test_template_comes_from_the_training_run(tmp_path):
    import yaml

    from kgc_trainers.families import resolve_family
    from kgcore.prompt import load_chat_template

    def saved(template, *folders, model_type=None):
        text, source = export._template_yaml(template, list(folders), model_type)
        return (None if text is None else yaml.safe_load(text)), source

    def as_dict(name):
        return load_chat_template(name).to_dict()

    run = tmp_path / "run"
    run.mkdir()
    assert saved(None, run) == (None, "the tokenizer's own chat template")  # nothing known: the model's own
    (run / "kgc_train_config.yaml").write_text(yaml.safe_dump({"model": "m", "template": "vicuna"}))
    data, source = saved(None, run)
    assert data == as_dict("vicuna") and source.endswith("kgc_train_config.yaml)")
    assert saved("default", run)[0] == as_dict("default")  # an explicit template wins
    (run / "kgc_train_config.yaml").write_text(yaml.safe_dump({"model": "m", "template": "auto"}))
    assert saved(None, run)[0] is None
    (run / "kgc_train_config.yaml").write_text(yaml.safe_dump({"model": "m", "template": None}))
    family_default = resolve_family("llama").default_template
    expected = None if family_default == "auto" else as_dict(family_default)
    assert saved(None, run, model_type="llama")[0] == expected  # unset: the family's default, as kgc train does
    (run / "kgc_chat_template.yaml").write_text(yaml.safe_dump(as_dict("alpaca")))
    assert saved(None, tmp_path, run)[0] == as_dict("alpaca")  # the last adapter's own copy wins
    with pytest.raises(UnknownComponentError, match="unknown chat template 'no-such-template'"):
        saved("no-such-template", run)


def test_cli_merge_usage_errors(adapter, tmp_path):
    from click.testing import CliRunner

    cli = kgc_cli()
    runner = CliRunner()
    result = runner.invoke(cli, ["merge", "--base", "b", "--adapter", str(adapter)])
    assert result.exit_code == 2 and "give --out, --gguf or --lora-gguf" in result.output
    result = runner.invoke(cli, ["merge", "--base", "b", "--adapter", str(adapter), "--adapter", str(adapter),
                                 "--lora-gguf", str(tmp_path / "x.gguf")])
    assert result.exit_code == 2 and "exactly one --adapter" in result.output
    result = runner.invoke(cli, ["merge", "--base", "b", "--adapter", str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "no adapter_config.json" in result.output


# -- GGUF ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def merged_f16(merged, tmp_path_factory) -> Path:
    return export.export_gguf(merged, tmp_path_factory.mktemp("gguf") / "merged-f16.gguf", "f16")


def test_f16_gguf_answers_like_transformers(merged, merged_f16, tokenizer, prompt_texts):
    import gguf
    from llama_cpp import Llama
    from transformers import AutoModelForCausalLM

    assert gguf.GGUFReader(merged_f16).fields["tokenizer.chat_template"].contents() == tokenizer.chat_template
    model = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32).eval()
    # logits of the prompt's last position: llama.cpp f16 vs transformers fp32
    llm = Llama(model_path=str(merged_f16), n_ctx=512, logits_all=True, verbose=False)
    try:
        for text, logits in zip(prompt_texts, hf_logits(model, tokenizer, prompt_texts)):
            tokens = llm.tokenize(text.encode(), add_bos=True, special=True)
            assert tokens == tokenizer(text, add_special_tokens=False)["input_ids"]
            llm.reset()
            llm.eval(tokens)
            assert np.abs(np.asarray(llm.scores[len(tokens) - 1]) - logits[-1]).max() < 0.25
    finally:
        llm.close()
    backend = load_backend("llamacpp", {"model": str(merged_f16), "n_ctx": 512})
    try:
        params = GenerationParams(max_new_tokens=16)
        for prompt, text in zip(PROMPTS, prompt_texts):
            answer = backend.generate([Request((), prompt=text)], params)[0].text
            assert answer.strip()
            expected = tokenizer.decode(hf_greedy(model, tokenizer, text)[:AGREE_TOKENS])
            assert answer.startswith(expected), (answer, expected)
            # chat messages rendered with the chat template inside the GGUF: the same prompt, the same answer
            chat = backend.generate([Request(({"role": "user", "content": prompt},))], params)[0].text
            assert chat == answer
    finally:
        backend.close()


def test_q8_0_gguf_from_cli_loads_and_answers(cli_run, merged_f16, prompt_texts):
    import gguf

    q8 = cli_run / "merged-q8_0.gguf"
    assert q8.stat().st_size < 0.6 * merged_f16.stat().st_size
    reader = gguf.GGUFReader(q8)
    assert reader.fields["general.file_type"].contents() == gguf.LlamaFileType.MOSTLY_Q8_0
    assert reader.fields["general.architecture"].contents() == "llama"
    backend = load_backend("llamacpp", {"model": str(q8), "n_ctx": 512})
    try:
        answers = backend.generate([Request((), prompt=t) for t in prompt_texts], GenerationParams(max_new_tokens=8))
    finally:
        backend.close()
    assert all(a.text.strip() and a.completion_tokens > 0 for a in answers)
    assert "Paris" in answers[0].text


def test_lora_gguf_changes_the_base_like_merging(smollm2_hf, cli_run, merged, tokenizer, prompt_texts,
                                               tmp_path_factory):
    import gguf
    from transformers import AutoModelForCausalLM

    lora = cli_run / "lora.gguf"
    reader = gguf.GGUFReader(lora)
    assert reader.fields["general.type"].contents() == "adapter"
    assert reader.fields["adapter.type"].contents() == "lora"
    assert reader.fields["adapter.lora.alpha"].contents() == 16
    assert len(reader.tensors) == 2 * 30 * len(MODULES)  # an A and a B per adapted module
    base_gguf = export.export_gguf(smollm2_hf, tmp_path_factory.mktemp("base") / "base-f16.gguf", "f16")
    params = GenerationParams(max_new_tokens=8)  # base and adapted answers part within 7 tokens
    answers = {}
    for name, options in {"base": {}, "lora": {"lora": str(lora)}}.items():
        backend = load_backend("llamacpp", {"model": str(base_gguf), "n_ctx": 512, **options})
        try:
            answers[name] = [backend.generate([Request((), prompt=t)], params)[0].text for t in prompt_texts]
        finally:
            backend.close()
    assert all(a.strip() for a in answers["lora"])
    assert answers["lora"] != answers["base"]
    model = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32).eval()
    for text, answer in zip(prompt_texts, answers["lora"]):
        assert answer.startswith(tokenizer.decode(hf_greedy(model, tokenizer, text, 8)[:AGREE_TOKENS])), answer


def test_lora_gguf_from_relative_paths(smollm2_hf, adapter, converters, tmp_path, monkeypatch):
    """The converter runs in its own folder; paths given relative to the caller's must still work."""
    import os
    import shutil

    shutil.copytree(adapter, tmp_path / "adapter")
    monkeypatch.chdir(tmp_path)
    base = os.path.relpath(smollm2_hf, tmp_path)
    out = export.export_lora_gguf("adapter", base, "out/lora.gguf")
    assert out == tmp_path / "out" / "lora.gguf" and out.read_bytes()[:4] == b"GGUF"


# -- the converters' cache ----------------------------------------------------------------------------

def test_missing_converters_name_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("KGC_CACHE", str(tmp_path))
    monkeypatch.delenv("KGC_LLAMA_CPP_DIR", raising=False)
    with pytest.raises(MissingDependencyError, match="python -m kgc_trainers.export fetch-converters"):
        export.converters_dir("9.9.9")
    monkeypatch.setenv("KGC_LLAMA_CPP_DIR", str(tmp_path))
    with pytest.raises(MissingDependencyError, match="KGC_LLAMA_CPP_DIR"):
        export.converters_dir()


def test_fetch_converters_from_an_sdist_keeps_only_the_converters(tmp_path, monkeypatch):
    monkeypatch.setenv("KGC_CACHE", str(tmp_path / "cache"))
    sdist = tmp_path / "llama_cpp_python-9.9.9.tar.gz"
    top = "llama_cpp_python-9.9.9/vendor/llama.cpp/"
    files = {top + "convert_hf_to_gguf.py": "print('hf')", top + "convert_lora_to_gguf.py": "print('lora')",
             top + "LICENSE": "MIT", top + "conversion/__init__.py": "", top + "gguf-py/gguf/__init__.py": "",
             top + "src/llama.cpp": "int main;", "llama_cpp_python-9.9.9/llama_cpp/__init__.py": ""}
    with tarfile.open(sdist, "w:gz") as tar:
        for name, text in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    folder = export.fetch_converters("9.9.9", sdist=sdist)
    assert folder == tmp_path / "cache" / "llama.cpp-9.9.9" == export.converters_dir("9.9.9")
    kept = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert kept == ["KGC_SOURCE", "LICENSE", "conversion/__init__.py", "convert_hf_to_gguf.py",
                    "convert_lora_to_gguf.py", "gguf-py/gguf/__init__.py"]
    sdist.unlink()
    assert export.fetch_converters("9.9.9", sdist=sdist) == folder  # cached: the sdist is not read again
