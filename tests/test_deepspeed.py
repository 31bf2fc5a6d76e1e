"""The shipped DeepSpeed configs: their content, name resolution, DeepSpeed's own validation, and a real
single-process ``deepspeed.initialize`` + training steps on DeepSpeed's CPU accelerator."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kgc_trainers import deepspeed as ds
from kgcore.errors import InputError, UnknownComponentError

ROOT = Path(__file__).resolve().parents[1]
AUTO_TRAINER_KEYS = ("gradient_accumulation_steps", "gradient_clipping", "train_batch_size",
                     "train_micro_batch_size_per_gpu")
#: Values a trainer would fill (``TrainingArguments`` does this for the HF Trainer).
FILL = {
    "bf16.enabled": True, "fp16.enabled": False,
    "optimizer.params.lr": 1e-2, "optimizer.params.betas": [0.9, 0.999], "optimizer.params.eps": 1e-8,
    "optimizer.params.weight_decay": 0.0,
    "scheduler.params.total_num_steps": 10, "scheduler.params.warmup_min_lr": 1e-3,
    "scheduler.params.warmup_max_lr": 1e-2, "scheduler.params.warmup_num_steps": 2,
    "gradient_accumulation_steps": 1, "gradient_clipping": 1.0, "train_batch_size": 4,
    "train_micro_batch_size_per_gpu": 4,
    "zero_optimization.stage3_prefetch_bucket_size": 1000, "zero_optimization.stage3_param_persistence_threshold": 10,
}


@pytest.mark.parametrize("name", ["zero2", "zero2_offload", "zero3", "zero3_offload"])
def test_shipped_config_content(name):
    path = ds.deepspeed_config(name)
    assert path.is_file() and path.parent == Path(ds.__file__).parent
    config = json.loads(path.read_text())
    assert config["bf16"] == {"enabled": "auto"}
    assert config["fp16"]["enabled"] == "auto"
    assert config["optimizer"] == {"type": "AdamW", "params": dict.fromkeys(["lr", "betas", "eps", "weight_decay"],
                                                                            "auto")}
    assert config["scheduler"] == {"type": "WarmupDecayLR", "params": dict.fromkeys(
        ["total_num_steps", "warmup_min_lr", "warmup_max_lr", "warmup_num_steps"], "auto")}
    assert all(config[key] == "auto" for key in AUTO_TRAINER_KEYS)
    zero = config["zero_optimization"]
    stage = int(name[4])
    assert zero["stage"] == stage == ds.CONFIGS[name]
    assert zero["reduce_bucket_size"] == 5e8 and zero["overlap_comm"] is True and zero["contiguous_gradients"] is True
    if stage == 2:
        assert zero["allgather_bucket_size"] == 5e8 and zero["allgather_partitions"] and zero["reduce_scatter"]
        assert "offload_param" not in zero  # ZeRO-2 cannot offload parameters
    else:
        assert zero["sub_group_size"] == zero["stage3_max_live_parameters"] == zero["stage3_max_reuse_distance"] == 1e9
        assert zero["stage3_prefetch_bucket_size"] == zero["stage3_param_persistence_threshold"] == "auto"
        assert zero["stage3_gather_16bit_weights_on_model_save"] is True
    pinned = {"device": "cpu", "pin_memory": True}
    if name.endswith("_offload"):
        assert zero["offload_optimizer"] == pinned
        assert ("offload_param" in zero) == (stage == 3)
        if stage == 3:
            assert zero["offload_param"] == pinned
    else:
        assert "offload_optimizer" not in zero and "offload_param" not in zero


def test_configs_are_package_data():
    import tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    setuptools = project["tool"]["setuptools"]
    assert "kgc_trainers.deepspeed" in setuptools["packages"]
    assert "deepspeed/*.json" in setuptools["package-data"]["kgc_trainers"]
    shipped = sorted(p.stem for p in Path(ds.__file__).parent.glob("*.json"))
    assert shipped == ds.names() == sorted(ds.CONFIGS)


def test_names_and_paths_resolve(tmp_path):
    assert ds.deepspeed_config("zero2-offload") == ds.deepspeed_config("ZERO2_OFFLOAD.json")
    assert ds.deepspeed_config("zero3").name == "zero3.json"
    own = tmp_path / "mine.json"
    own.write_text(json.dumps({"zero_optimization": {"stage": 1}}))
    assert ds.deepspeed_config(own) == own.resolve() == ds.deepspeed_config(str(own))
    assert ds.load_config(own)["zero_optimization"]["stage"] == 1
    with pytest.raises(UnknownComponentError) as info:
        ds.deepspeed_config("zero4")
    message = str(info.value)
    assert "unknown DeepSpeed config 'zero4'" in message and "Did you mean" in message
    assert "Available: zero2, zero2_offload, zero3, zero3_offload" in message
    with pytest.raises(InputError, match="DeepSpeed config file not found"):
        ds.deepspeed_config(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        ds.load_config(tmp_path / "bad.json")


def test_fill_auto_replaces_only_auto_and_names_what_is_left():
    config = ds.load_config("zero3")
    filled = ds.fill_auto(config, FILL)
    assert ds.unresolved_auto(filled) == []
    assert filled["optimizer"]["params"]["lr"] == 1e-2 and filled["zero_optimization"]["stage"] == 3
    assert config["optimizer"]["params"]["lr"] == "auto"  # a copy: the loaded config is untouched
    assert ds.fill_auto(config, {"zero_optimization.stage": 1}, strict=False)["zero_optimization"]["stage"] == 3
    with pytest.raises(InputError, match="train_batch_size"):
        ds.fill_auto(config, {k: v for k, v in FILL.items() if k != "train_batch_size"})


needs_deepspeed = pytest.mark.skipif(not ds.available(), reason="deepspeed is not installed: "
                                     "DS_BUILD_OPS=0 pip install deepspeed")


def _run(script: str, *args: str, timeout: int = 900) -> dict:
    """Run ``script`` in a fresh single-process 'cluster' on DeepSpeed's CPU accelerator; its last
    stdout line is JSON."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(script), *args], capture_output=True, text=True,
                         env=env, timeout=timeout)
    assert run.returncode == 0, run.stderr[-4000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@needs_deepspeed
@pytest.mark.slow
def test_every_config_passes_deepspeeds_own_validation():
    result = _run("""
        import json, sys
        from deepspeed.runtime.config import DeepSpeedConfig
        from kgc_trainers.deepspeed import fill_auto, load_config, names
        out = {}
        for name in names():
            c = DeepSpeedConfig(fill_auto(load_config(name), json.loads(sys.argv[1])))
            z = c.zero_config
            out[name] = [c.zero_optimization_stage, z.offload_optimizer is not None, z.offload_param is not None,
                         z.reduce_bucket_size, c.optimizer_name, c.scheduler_name, c.train_batch_size]
        print(json.dumps(out))
    """, json.dumps(FILL))
    assert result == {
        "zero2": [2, False, False, 500_000_000, "adamw", "WarmupDecayLR", 4],
        "zero2_offload": [2, True, False, 500_000_000, "adamw", "WarmupDecayLR", 4],
        "zero3": [3, False, False, 500_000_000, "adamw", "WarmupDecayLR", 4],
        "zero3_offload": [3, True, True, 500_000_000, "adamw", "WarmupDecayLR", 4],
    }


@needs_deepspeed
@pytest.mark.slow
@pytest.mark.parametrize("name", ["zero2", "zero3"])
def test_cpu_deepspeed_initialize_trains(name):
    """A real ``deepspeed.initialize`` with the shipped config (``auto`` values filled, bf16 where the
    CPU accelerator supports it, torch's AdamW instead of the JIT-compiled fused one) and 6 steps."""
    result = _run("""
        import json, sys, torch, deepspeed
        from deepspeed.accelerator import get_accelerator
        from kgc_trainers.deepspeed import fill_auto, load_config
        values = json.loads(sys.argv[2])
        values["bf16.enabled"] = bool(get_accelerator().is_bf16_supported())
        config = fill_auto(load_config(sys.argv[1]), values)
        config["optimizer"]["params"]["torch_adam"] = True
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
        engine, optimizer, _, scheduler = deepspeed.initialize(model=model, model_parameters=model.parameters(),
                                                               config=config)
        dtype = next(engine.module.parameters()).dtype
        x, y = torch.randn(4, 8, dtype=dtype), torch.randn(4, 1, dtype=dtype)
        losses = []
        for _ in range(6):
            loss = torch.nn.functional.mse_loss(engine(x), y)
            engine.backward(loss)
            engine.step()
            losses.append(loss.item())
        print(json.dumps({"accelerator": get_accelerator().device_name(), "stage": engine.zero_optimization_stage(),
                          "bf16": engine.bfloat16_enabled(), "dtype": str(dtype), "steps": engine.global_steps,
                          "optimizer": type(optimizer).__name__, "losses": losses, "lr": scheduler.get_lr()}))
    """, name, json.dumps(FILL))
    assert result["accelerator"] == "cpu" and result["stage"] == int(name[4]) and result["steps"] == 6
    assert result["bf16"] == (result["dtype"] == "torch.bfloat16")
    assert result["optimizer"] in {"DeepSpeedZeroOptimizer", "DeepSpeedZeroOptimizer_Stage3"}
    losses = result["losses"]
    assert losses[-1] < 0.9 * losses[0]  # it really trains
    assert 1e-3 <= result["lr"][0] < 1e-2  # WarmupDecayLR: past warm-up, decaying
