"""``kgc train`` on CPU with the real SmolLM2-135M-Instruct (and a tiny random Llama where only the
mechanics matter). No mocks: every run goes through transformers' Trainer and peft."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from kgc_trainers import train
from kgc_trainers.config import CONFIG_FILE, ConfigError, LoraOptions, TrainConfig, json_schema, load_config, setting
from kgc_trainers.data import PromptEncoder, encode_records, fit_lengths, infer_max_len
from kgc_trainers.logs import LOG_FILE, PLOT_FILE, read_log
from kgcore.errors import InputError

import torch  # noqa: E402
import peft  # noqa: E402,F401


# -- data and models ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def conll(tmp_path_factory) -> dict[str, Path]:
    """CoNLL-2003 converted to IEPile instructions: 48 training, 8 dev, 2 test records."""
    from conftest import DATASETS as datasets

    import kgcore
    from kgcore import ConvertOptions

    root = tmp_path_factory.mktemp("conll")
    files = {}
    for name, split, count in (("train", "train", 48), ("dev", "train", 8), ("test", "test", 2)):
        full = root / f"{name}_full.json"
        kgcore.convert(datasets / "conll2003" / f"{name}.json", full, task="NER",
                       schema=datasets / "conll2003" / "schema.json",
                       options=ConvertOptions(split=split, language="en"), progress=False)
        lines = full.read_text(encoding="utf-8").splitlines()[:count]
        files[name] = root / f"{name}.json"
        files[name].write_text("\n".join(lines) + "\n", encoding="utf-8")
    return files


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, smollm2_hf) -> Path:
    """A 2-layer random Llama with SmolLM2's tokenizer and chat template (fast; only mechanics matter)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    path = tmp_path_factory.mktemp("tiny") / "tiny-llama"
    tokenizer = AutoTokenizer.from_pretrained(smollm2_hf)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _base(model: Path, data: dict[str, Path], out: Path, **values) -> dict:
    config = {"model": str(model), "train_file": str(data["train"]), "output_dir": str(out), "cutoff_len": 256,
              "batch_size": 4, "max_train_samples": 16, "logging_steps": 1, "save_strategy": "no",
              "plot_loss": False, "lora": {"dropout": 0.0}, "seed": 7}
    config.update(values)
    return config


def _weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(path / "adapter_model.safetensors")


def _losses(out: Path) -> list[float]:
    return [r["loss"] for r in read_log(out / LOG_FILE) if r.get("loss") is not None]


# -- config, data rules (no model) ------------------------------------------------------------------------

def test_config_errors_name_file_and_field(tmp_path, conll):
    run = tmp_path / "run.yaml"
    run.write_text(yaml.safe_dump({"model": "m", "train_file": str(conll["train"]), "output_dir": "o",
                                   "lora_r": -1, "lora_rank": 8, "quantization": {"bits": 3}}))
    with pytest.raises(ConfigError) as info:
        load_config(run)
    text = str(info.value)
    assert str(run) in text and "'lora_r'" in text and "minimum" in text
    assert "'lora_rank'" in text and "did you mean 'lora_r'" in text
    assert "quantization.bits" in text

    good = {"model": "m", "train_file": str(conll["train"]), "output_dir": "o"}
    _write(run, good)
    with pytest.raises(ConfigError, match="command line: field '--batch-size'"):
        load_config(run, {"batch_size": 0})
    with pytest.raises(ConfigError, match=r"run.yaml: field 'method': unknown trainer 'lorra'.*lora"):
        load_config(_write(run, good, method="lorra"))
    with pytest.raises(ConfigError, match=r"run.yaml: field 'dev_file': no such file"):
        load_config(_write(run, good, dev_file=str(tmp_path / "missing.json")))
    with pytest.raises(ConfigError, match=r"field 'output_dir': required; set it in .*run.yaml or pass --output-dir"):
        load_config(_write(run, good, output_dir=None))
    with pytest.raises(ConfigError, match="run.yaml: field 'eval_strategy'.*needs dev data"):
        load_config(_write(run, good, eval_strategy="steps"))
    with pytest.raises(ConfigError, match="run.yaml: field 'max_target_length'.*cutoff_len 256"):
        load_config(_write(run, good, cutoff_len=256, max_target_length=300))
    with pytest.raises(InputError, match="run.yaml: training config is not valid YAML"):
        run.write_text("model: [unclosed")
        load_config(run)
    # flags override file values; the result is complete and typed
    config = load_config(_write(run, good, lora={"r": 4}), {"lora_r": 16, "quantization": {"bits": 8}})
    assert config.lora.r == 16 and config.lora.resolved_alpha == 32 and config.quantization.bits == 8
    with pytest.raises(ConfigError, match=r"field 'lora.rank': unknown field; valid fields: r, alpha"):
        load_config(_write(run, good, lora={"rank": 4}))
    with pytest.raises(ConfigError, match=r"field 'lora_r': given twice, also as 'lora.r'"):
        load_config(_write(run, good, lora={"r": 4}, lora_r=8))


def test_the_json_schema_comes_from_the_dataclasses():
    @dataclasses.dataclass
    class MoreLora(LoraOptions):  # an option added to a section shows in the schema, typed and constrained
        use_dora: bool = setting(False, "Weight-decomposed LoRA.")
        layers_to_transform: list[int] | None = setting(None, "Layer indices.", minItems=1, items={"minimum": 0})

    schema = json_schema(MoreLora)
    assert schema["properties"]["use_dora"] == {"type": "boolean"}
    assert schema["properties"]["layers_to_transform"] == {"type": ["array", "null"], "minItems": 1,
                                                           "items": {"type": "integer", "minimum": 0}}
    assert schema["properties"]["r"] == {"type": "integer", "minimum": 1}
    assert schema["additionalProperties"] is False
    config = json_schema(TrainConfig)
    assert set(config["properties"]) == {f.name for f in dataclasses.fields(TrainConfig)}
    assert config["properties"]["lora"] == json_schema(LoraOptions)
    assert config["properties"]["quantization"]["properties"]["bits"] == {"enum": [4, 8]}
    assert config["properties"]["eval_strategy"] == {"enum": ["no", "steps", "epoch", None]}
    assert config["properties"]["max_train_samples"] == {"type": ["integer", "null"], "minimum": 1}


def test_a_flat_config_loads_like_the_nested_one(tmp_path, conll):
    common = {"model": "m", "train_file": str(conll["train"]), "output_dir": "o", "method": "qlora"}
    flat = {**common, "lora_r": 16, "lora_alpha": 32, "lora_target_modules": "all", "freeze_trainable_layers": 2,
            "freeze_modules": ["mlp", "self_attn"], "num_virtual_tokens": 4, "prefix_projection": True,
            "bits": 8, "double_quant": False}
    nested = {**common, "lora": {"r": 16, "alpha": 32, "target_modules": "all"},
              "freeze": {"trainable_layers": 2, "modules": ["mlp", "self_attn"]},
              "prompt_learning": {"num_virtual_tokens": 4, "prefix_projection": True},
              "quantization": {"bits": 8, "double_quant": False}}
    config = load_config(_write(tmp_path / "flat.yaml", flat))
    assert config == load_config(_write(tmp_path / "nested.yaml", nested))
    assert config.lora.r == 16 and config.freeze.trainable_layers == 2 and config.quantization.bits == 8
    assert config.to_dict()["lora"]["target_modules"] == "all"  # saved in the nested form
    recipe = Path(__file__).resolve().parents[1] / "docs" / "recipes" / "smollm2-ie" / "train.yaml"
    config = load_config(recipe, {"train_file": str(conll["train"]), "dev_file": str(conll["dev"])})
    assert (config.lora.r, config.lora.alpha, config.lora.target_modules) == (16, 32, "all")


def _write(path: Path, data: dict, **changes) -> Path:
    data = dict(data)
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path.write_text(yaml.safe_dump(data))
    return path


def test_dev_file_without_output_is_an_error_naming_it(tmp_path, conll, smollm2_hf):
    dev = tmp_path / "dev_test_split.json"
    records = [json.loads(line) for line in conll["test"].read_text().splitlines()]
    dev.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "output"}) + "\n" for r in records))
    with pytest.raises(InputError) as info:
        train(_base(smollm2_hf, conll, tmp_path / "out", dev_file=str(dev)))
    assert str(dev) in str(info.value) and "'output'" in str(info.value) and "--split train" in str(info.value)
    assert not (tmp_path / "out" / CONFIG_FILE).exists()  # failed before anything was written


def test_allocation_rule_matches_the_reference():
    # the reference's infer_max_len, literally
    assert infer_max_len(600, 200, 512, 256) == (256, 256)
    assert infer_max_len(900, 100, 1000, 50) == (900, 100)
    assert infer_max_len(100, 900, 512, 64) == (52, 460)
    # a sequence that fits stays whole; a long one gets the rule, unused answer room goes to the prompt
    assert fit_lengths(300, 100, 512, 256) == (300, 100)
    assert fit_lengths(600, 200, 512, 256) == (312, 200)
    assert fit_lengths(100, 900, 512, 64) == (52, 460)
    assert fit_lengths(300, 100, 512, 256, max_source_length=120) == (120, 100)


# -- prompts: training == prediction ------------------------------------------------------------------------

@pytest.mark.parametrize("template", ["auto", "alpaca", "qwen"])
def test_training_prompt_equals_prediction_prompt(smollm2_hf, conll, template):
    from kgc_backends.tokens import IGNORE_INDEX
    from kgcore import PromptStyle, load_backend
    from kgcore.prompt import RequestBuilder

    backend = load_backend("hf", {"model": str(smollm2_hf)})
    try:
        builder = RequestBuilder(PromptStyle(template), constrained=False)
        encoder = PromptEncoder(backend.tokenizer, template)
        records = [json.loads(line) for line in conll["train"].read_text().splitlines()[:5]]
        config = TrainConfig(model="m", train_file="t", output_dir="o", cutoff_len=1024, template=template)
        examples = encode_records(records, encoder, config)
        for record, example in zip(records, examples):
            sent = backend._encode(builder(record["instruction"]))  # what kgc predict --backend hf feeds the model
            n = example["labels"].index(next(x for x in example["labels"] if x != IGNORE_INDEX))
            assert example["input_ids"][:n] == sent
            assert example["labels"][:n] == [IGNORE_INDEX] * n
            answer = example["input_ids"][n:]
            assert example["labels"][n:] == answer
            assert answer[-1] == backend.tokenizer.convert_tokens_to_ids("<|im_end|>")  # eos ends the answer
            assert backend.tokenizer.decode(answer[:-1]) == record["output"]
        if template == "alpaca":  # the reference's segment-by-segment encoding differs here; we send the text's
            assert encoder.segment_mismatches == len(records)
    finally:
        backend.close()


# -- LoRA on the real model ------------------------------------------------------------------------------

@pytest.mark.slow
def test_lora_lowers_loss_saves_reloads_and_predicts(smollm2_hf, conll, tmp_path):
    from click.testing import CliRunner
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from kgcore.cli import cli

    out = tmp_path / "lora"
    result = train(_base(smollm2_hf, conll, out, dev_file=str(conll["dev"]), max_eval_samples=4, max_train_samples=8,
                         max_steps=4, learning_rate=1e-3, plot_loss=True))
    losses = _losses(out)
    assert len(losses) == 4 and losses[-1] < losses[0] * 0.8, losses
    assert result.last_eval_loss < result.first_eval_loss  # eval before training vs after
    log = read_log(out / LOG_FILE)
    assert log[0]["step"] == 0 and log[0]["eval_loss"] is not None
    assert all(r["tokens_per_s"] > 0 and r["lr"] > 0 for r in log if r["loss"] is not None)
    assert (out / PLOT_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = load_config(out / CONFIG_FILE)
    assert saved.max_steps == 4 and saved.family == "llama" and saved.template == "auto"
    assert saved.lora.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

    # reload: identical logits
    ids = torch.tensor([result.tokenizer.encode("EU rejects German call to boycott British lamb .")])
    trained = result.model.eval()
    with torch.no_grad():
        expected = trained(input_ids=ids).logits
        reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(smollm2_hf), out).eval()
        assert torch.allclose(reloaded(input_ids=ids).logits, expected, atol=1e-5)
        base = AutoModelForCausalLM.from_pretrained(smollm2_hf).eval()
        assert not torch.allclose(base(input_ids=ids).logits, expected, atol=1e-2)  # the adapter matters

    # kgc predict --backend hf -O adapter=<out> uses it
    pred = tmp_path / "pred.json"
    res = CliRunner().invoke(cli, ["predict", "-i", str(conll["test"]), "-o", str(pred), "--backend", "hf",
                                   "-m", str(smollm2_hf), "-O", f"adapter={out}", "--no-constrained",
                                   "--max-new-tokens", "24", "-q"])
    assert res.exit_code == 0, res.output
    answers = [json.loads(line)["output"] for line in pred.read_text().splitlines()]
    assert len(answers) == 2 and all(answers)


# -- the other methods ---------------------------------------------------------------------------------------

@pytest.mark.slow
def test_qlora_on_cpu_lowers_loss(smollm2_hf, conll, tmp_path):
    import bitsandbytes  # noqa: F401
    out = tmp_path / "qlora"
    # the same 4 records every step: the loss must fall
    result = train(_base(smollm2_hf, conll, out, method="qlora", max_steps=3, max_train_samples=4, learning_rate=2e-3,
                         cutoff_len=192))
    losses = _losses(out)
    assert len(losses) == 3 and losses[-1] < losses[0] * 0.9, losses
    kinds = {type(m).__name__ for m in result.model.modules()}
    assert "Linear4bit" in kinds  # really trained on 4-bit weights
    assert (out / "adapter_model.safetensors").is_file()


@pytest.mark.parametrize("method, peft_type", [("prefix", "PREFIX_TUNING"), ("ptuning", "P_TUNING")])
def test_prompt_learning_runs(smollm2_hf, conll, tmp_path, method, peft_type):
    from kgcore import GenerationParams, PromptStyle, load_backend
    from kgcore.prompt import RequestBuilder

    out = tmp_path / method
    result = train(_base(smollm2_hf, conll, out, method=method, max_steps=2, batch_size=2, max_train_samples=4,
                         learning_rate=1e-2, cutoff_len=192, prompt_learning={
                             "num_virtual_tokens": 8, "prefix_projection": True, "encoder_hidden_size": 64}))
    assert len(_losses(out)) == 2
    assert json.loads((out / "adapter_config.json").read_text())["peft_type"] == peft_type
    assert "-O merge_adapters=false" in result.predict_command  # prompt-learning adapters cannot be merged
    backend = load_backend("hf", {"model": str(smollm2_hf), "adapter": str(out), "merge_adapters": "false"})
    try:
        request = RequestBuilder(PromptStyle(), constrained=False)(json.loads(conll["test"].read_text().split("\n")[0])
                                                                   ["instruction"])
        [generation] = backend.generate([request], GenerationParams(max_new_tokens=4, constrained=False))
        assert generation.completion_tokens > 0
    finally:
        backend.close()


@pytest.mark.slow
def test_freeze_trains_only_the_chosen_modules(smollm2_hf, conll, tmp_path):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "freeze"
    result = train(_base(smollm2_hf, conll, out, method="freeze", max_steps=1, batch_size=2, learning_rate=1e-3,
                         freeze={"trainable_layers": 1, "modules": ["mlp"]}, cutoff_len=192))
    assert result.produces == "model"
    before = dict(AutoModelForCausalLM.from_pretrained(smollm2_hf).named_parameters())
    after = dict(AutoModelForCausalLM.from_pretrained(out).named_parameters())
    last = len([n for n in before if n.endswith("mlp.down_proj.weight")]) - 1
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed == {f"model.layers.{last}.mlp.{p}.weight" for p in ("gate_proj", "up_proj", "down_proj")}


def test_full_fine_tuning_on_a_tiny_llama(tiny, conll, tmp_path):
    from transformers import AutoModelForCausalLM

    from kgcore import load_backend

    out = tmp_path / "full"
    result = train(_base(tiny, conll, out, method="full", max_steps=2, learning_rate=1e-2))
    assert result.produces == "model" and len(_losses(out)) == 2
    before = dict(AutoModelForCausalLM.from_pretrained(tiny).named_parameters())
    after = dict(AutoModelForCausalLM.from_pretrained(out).named_parameters())
    assert all(not torch.equal(before[n], after[n]) for n in before if "norm" not in n)
    # the saved model predicts, through kgc's hf backend, the greedy tokens of the trained model in memory
    from kgcore import GenerationParams, Request

    messages = [{"role": "user", "content": "EU rejects German call to boycott British lamb ."}]
    backend = load_backend("hf", {"model": str(out), "dtype": "float32"})
    try:
        [answer] = backend.generate([Request(tuple(messages))], GenerationParams(max_new_tokens=8, constrained=False))
    finally:
        backend.close()
    ids = result.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                               return_dict=True)["input_ids"]
    with torch.no_grad():
        tokens = result.model.eval().generate(ids, max_new_tokens=8, do_sample=False)[0, ids.shape[1]:]
    assert answer.completion_tokens == len(tokens) > 0
    assert answer.text == result.tokenizer.decode(tokens, skip_special_tokens=True)


def test_freeze_first_layers_and_unknown_modules(tiny, conll, tmp_path):
    result = train(_base(tiny, conll, tmp_path / "f", method="freeze", max_steps=1,
                         freeze={"trainable_layers": -1, "modules": ["self_attn"]}))
    trainable = {n for n, p in result.model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("model.layers.0.self_attn.") for n in trainable)
    with pytest.raises(InputError, match="match no parameter.*mlp"):
        train(_base(tiny, conll, tmp_path / "g", method="freeze", max_steps=1,
                    freeze={"trainable_layers": 1, "modules": ["ffn"]}))


# -- continuing, resuming, reproducibility (tiny model: fast) ----------------------------------------------------

def test_continue_from_adapter_starts_from_its_weights(tiny, conll, tmp_path):
    first = tmp_path / "first"
    train(_base(tiny, conll, first, max_steps=3, learning_rate=1e-2, lora_r=4))
    start = _weights(first)
    assert any(k.endswith("lora_B.weight") and v.abs().sum() > 0 for k, v in start.items())
    # learning rate 0: one step changes nothing, so the saved adapter is exactly where training started
    cont = tmp_path / "cont"
    result = train(_base(tiny, conll, cont, max_steps=1, learning_rate=0.0, adapters=[str(first)]))
    end = _weights(cont)
    assert end.keys() == start.keys() and all(torch.equal(end[k], start[k]) for k in start)
    assert result.predict_adapters == [str(cont.resolve())]
    # all merged, then a new adapter: it starts from zero (lora_B), and prediction stacks both
    fresh = tmp_path / "fresh"
    result = train(_base(tiny, conll, fresh, max_steps=1, learning_rate=0.0, adapters=[str(first)],
                         continue_last_adapter=False))
    assert all(v.abs().sum() == 0 for k, v in _weights(fresh).items() if k.endswith("lora_B.weight"))
    assert result.predict_adapters == [str(first.resolve()), str(fresh.resolve())]


def test_resume_continues_from_the_last_checkpoint_and_is_reproducible(tiny, conll, tmp_path):
    common = {"learning_rate": 5e-3, "lr_scheduler": "constant", "batch_size": 2}
    straight = tmp_path / "straight"
    train(_base(tiny, conll, straight, max_steps=6, **common))
    again = tmp_path / "again"
    train(_base(tiny, conll, again, max_steps=6, **common))
    assert _losses(straight) == _losses(again)  # seeded: the same run twice is the same

    out = tmp_path / "interrupted"
    train(_base(tiny, conll, out, max_steps=4, save_strategy="steps", save_steps=2, **common))
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    with pytest.raises(InputError, match="--resume"):
        train(_base(tiny, conll, out, max_steps=6, save_strategy="steps", save_steps=2, **common))
    before = read_log(out / LOG_FILE)
    result = train(_base(tiny, conll, out, max_steps=6, save_strategy="steps", save_steps=2, resume=True, **common))
    assert result.resumed_from == str(out / "checkpoint-4")
    log = read_log(out / LOG_FILE)
    assert log[:4] == before  # steps 1-4 were not run again (their log lines, times included, are kept)
    assert [r["step"] for r in log if r["loss"] is not None] == [1, 2, 3, 4, 5, 6]
    assert _losses(out) == pytest.approx(_losses(straight), rel=1e-5)
    end, reference = _weights(out), _weights(straight)
    assert all(torch.allclose(end[k], reference[k], atol=1e-6) for k in reference)


def _complete(checkpoint: Path) -> bool:
    """The Trainer writes a checkpoint's trainer_state.json last: without it, the save was cut."""
    return (checkpoint / "trainer_state.json").is_file()


def test_resume_passes_over_a_checkpoint_cut_while_saving(tiny, conll, tmp_path, capsys):
    out = tmp_path / "cut"
    run = _base(tiny, conll, out, max_steps=4, batch_size=2, save_strategy="steps", save_steps=2)
    train(run)
    log, adapter = read_log(out / LOG_FILE), _weights(out)
    # what a kill while checkpoint-4 was being saved leaves: all its files but the one written last
    (out / "checkpoint-4" / "trainer_state.json").unlink()
    capsys.readouterr()
    result = train({**run, "resume": True})
    assert result.resumed_from == str(out / "checkpoint-2")
    assert "passing over checkpoint-4: incomplete" in capsys.readouterr().err
    assert _complete(out / "checkpoint-4")  # saved again, whole
    again = read_log(out / LOG_FILE)
    assert again[:2] == log[:2] and [r["step"] for r in again] == [1, 2, 3, 4]
    assert [r["loss"] for r in again] == pytest.approx([r["loss"] for r in log], rel=1e-5)
    end = _weights(out)
    assert all(torch.allclose(end[k], adapter[k], atol=1e-6) for k in adapter)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["lora", "full"])
def test_resume_after_kill_9_matches_an_uninterrupted_run(tiny, conll, tmp_path, method):
    """``kgc train`` killed with SIGKILL while it saves its second checkpoint, then rerun with --resume:
    the same steps, losses and weights as a run never interrupted (linear decay: the scheduler resumes too)."""
    from safetensors.torch import load_file

    common = {"method": method, "max_steps": 8, "batch_size": 2, "learning_rate": 5e-3}
    straight = tmp_path / "straight"
    train(_base(tiny, conll, straight, **common))
    out = tmp_path / "killed"
    run = _write(tmp_path / "run.yaml", _base(tiny, conll, out, save_strategy="steps", save_steps=2, **common))
    command = [sys.executable, "-m", "kgcore.cli", "train", "--config", str(run)]
    with (tmp_path / "killed.err").open("w") as err:
        job = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err)
        try:
            deadline = time.monotonic() + 240
            for _ in range(50_000):  # until checkpoint-2 is complete and checkpoint-4 is being written (or just was)
                if (out / "checkpoint-4").is_dir() or job.poll() is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.005)
            job.send_signal(signal.SIGKILL)
            assert job.wait(30) == -signal.SIGKILL, "kgc train ended before it could be killed"
        finally:
            job.kill()
    assert (out / "checkpoint-4").is_dir(), (tmp_path / "killed.err").read_text()[-3000:]
    assert not (out / "kgc_train_meta.json").exists()  # the run did not finish
    last = max((c for c in out.glob("checkpoint-*") if _complete(c)), key=lambda c: int(c.name[11:]))
    done = int(last.name[11:])
    cut = sorted((c for c in out.glob("checkpoint-*") if not _complete(c)), key=lambda c: int(c.name[11:]))
    before = read_log(out / LOG_FILE)
    assert [r["step"] for r in before][:done] == list(range(1, done + 1))

    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {last}" in resumed.stderr
    # a half-written checkpoint (the usual case: killed as checkpoint-4 appeared) is named, never resumed from
    assert ("passing over " + ", ".join(c.name for c in cut) in resumed.stderr) == bool(cut)
    assert all(_complete(out / f"checkpoint-{s}") for s in range(2, 9, 2))
    log = read_log(out / LOG_FILE)
    assert log[:done] == before[:done]  # lines up to the checkpoint kept as written, those past it are the rerun's
    assert all(new["time"] > old["time"] for new, old in zip(log[done:], before[done:]))
    assert [r["step"] for r in log] == list(range(1, 9))  # none lost, none twice: lines past it were dropped
    assert _losses(out) == pytest.approx(_losses(straight), rel=1e-5)
    name = "adapter_model.safetensors" if method == "lora" else "model.safetensors"
    end, reference = load_file(out / name), load_file(straight / name)
    assert end.keys() == reference.keys() and all(torch.allclose(end[k], reference[k], atol=1e-5) for k in reference)


def test_unknown_family_falls_back_to_all_linear(tiny, conll, tmp_path):
    out = tmp_path / "generic"
    with pytest.warns(UserWarning, match="unknown model family 'mystery'"):
        result = train(_base(tiny, conll, out, max_steps=1, family="mystery"))
    assert result.family == "generic"
    targets = set(json.loads((out / "adapter_config.json").read_text())["target_modules"])
    assert targets == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def test_the_run_hooks_see_a_training(tiny, conll, tmp_path):
    from kgcore import hookimpl
    from kgcore.plugins import get_host

    seen = []

    class Recorder:
        @hookimpl
        def kgc_run_end(self, command, options, result, error):
            seen.append((command, options["lora"]["r"], result, error))

    host, recorder = get_host(), Recorder()
    host.register(recorder, name="run-recorder")
    try:
        train(_base(tiny, conll, tmp_path / "hooks", max_steps=1, lora_r=2))
    finally:
        host.pm.unregister(recorder)
        host.plugins.pop("run-recorder")
    [(command, r, meta, error)] = seen
    assert (command, r, error) == ("train", 2, None)
    assert meta["method"] == "lora" and meta["last_loss"] is not None  # the result is the run's metadata


def test_cli_train_flags_override_the_config_file(tiny, conll, tmp_path):
    from click.testing import CliRunner

    from kgcore.cli import cli
    from kgcore.plugins import get_host

    get_host().add_commands(cli)  # kgc train comes from the kgc_trainers plugin
    out = tmp_path / "cli"
    run = tmp_path / "run.yaml"
    run.write_text(yaml.safe_dump({**_base(tiny, conll, out, max_steps=50, plot_loss=True), "lora_r": 4}))
    res = CliRunner().invoke(cli, ["train", "--config", str(run), "--max-steps", "2", "--lora-r", "2",
                                   "--lora-target-modules", "q_proj,v_proj"])
    assert res.exit_code == 0, res.output
    saved = load_config(out / CONFIG_FILE)
    assert (saved.max_steps, saved.lora.r, saved.lora.alpha) == (2, 2, 4)
    assert saved.lora.target_modules == ["q_proj", "v_proj"]
    assert [r["step"] for r in read_log(out / LOG_FILE)] == [1, 2]
    assert (out / PLOT_FILE).stat().st_size > 1000
    assert "Predict with: kgc predict --backend hf" in res.output
    bad = CliRunner().invoke(cli, ["train", "--config", str(run), "--lora-dropout", "1.5"])
    assert bad.exit_code != 0 and "--lora-dropout" in bad.output


def test_options_checkpointing_neftune_and_a_held_out_split(tiny, conll, tmp_path):
    out = tmp_path / "options"
    result = train(_base(tiny, conll, out, max_steps=2, max_train_samples=None, val_set_size=4, max_eval_samples=None,
                         gradient_checkpointing=True, neftune_alpha=5.0, warmup_steps=0.5, lr_scheduler="cosine",
                         eval_strategy="steps", eval_steps=1))
    assert result.stats.train_records == 44 and result.stats.eval_records == 4  # 48 records, 4 held out
    assert result.model.base_model.model.is_activation_checkpointing
    log = read_log(out / LOG_FILE)
    assert [r["step"] for r in log if r["eval_loss"] is not None] == [0, 1, 2]
    assert [r["lr"] for r in log if r["loss"] is not None][0] < 5e-5  # warming up


def test_output_dir_is_never_reused_silently(tiny, conll, tmp_path):
    done = tmp_path / "done"
    train(_base(tiny, conll, done, max_steps=1, save_strategy="steps", save_steps=1))
    with pytest.raises(InputError, match="checkpoints \\(checkpoint-1 last\\): pass --resume"):
        train(_base(tiny, conll, done, max_steps=1))
    train(_base(tiny, conll, done, max_steps=2, overwrite_output_dir=True))  # starts over: old checkpoints go
    assert not list(done.glob("checkpoint-*")) and [r["step"] for r in read_log(done / LOG_FILE)] == [1, 2]
    with pytest.raises(InputError, match="finished run without checkpoints"):
        train(_base(tiny, conll, done, max_steps=2, resume=True))
    crashed = tmp_path / "crashed"  # killed before its first checkpoint: only the log and config exist
    crashed.mkdir()
    (crashed / LOG_FILE).write_text('{"step": 1, "loss": 9.0}\n')
    with pytest.raises(InputError, match="stopped before its first checkpoint"):
        train(_base(tiny, conll, crashed, max_steps=1))
    result = train(_base(tiny, conll, crashed, max_steps=1, resume=True))
    assert result.resumed_from is None and len(read_log(crashed / LOG_FILE)) == 1
