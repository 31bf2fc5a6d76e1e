"""``kgc train`` under the launchers docs/training.md gives, on CPU, with the tiny random Llama of
test_training: ``torchrun --nproc_per_node 2`` (DDP over gloo) and DeepSpeed's ``deepspeed`` launcher
(ZeRO-2, two processes on DeepSpeed's CPU accelerator). No mocks.

Every launch runs in new user, network, mount and PID namespaces with only ``lo`` up: the process
group can reach nothing but loopback (127.0.0.1), and all its processes end with the launcher.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from kgc_trainers import train
from kgc_trainers.deepspeed import available as deepspeed_available
from kgc_trainers.logs import LOG_FILE, read_log
from servers import isolated
from test_training import _base, _losses, conll, tiny  # noqa: F401 (conll, tiny: fixtures)

#: Any port does: nothing else listens in the launch's own network namespace.
PORT = "29511"



def launch(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run ``command`` isolated (at most 5 minutes); its output, stdout and stderr together."""
    done = subprocess.run(isolated(command), cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    return output


@pytest.mark.slow
def test_torchrun_two_processes_train_as_one_with_their_joint_batch(tiny, conll, tmp_path):
    """``torchrun --nproc_per_node 2 -m kgcore.cli train``, batch 2 per process: the losses and adapter of
    one process with batch 4 (each step's two halves, gradients all-reduced over gloo); rank 0 alone
    writes the log and the adapter, which loads."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    common = {"max_steps": 4, "learning_rate": 5e-3, "save_strategy": "steps", "save_steps": 2}
    single = tmp_path / "single"
    train(_base(tiny, conll, single, batch_size=4, **common))
    out, run = tmp_path / "ddp", tmp_path / "run.yaml"
    run.write_text(yaml.safe_dump(_base(tiny, conll, out, batch_size=2, **common)))
    output = launch([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
                     "127.0.0.1", "--master_port", PORT, "-m", "kgcore.cli", "train", "--config", str(run)], tmp_path)

    assert json.loads((out / "kgc_train_meta.json").read_text())["world_size"] == 2
    # each rank saved its own RNG state in every checkpoint
    assert sorted(p.name for p in (out / "checkpoint-4").glob("rng_state*")) == ["rng_state_0.pth", "rng_state_1.pth"]
    log = read_log(out / LOG_FILE)
    assert [r["step"] for r in log] == [1, 2, 3, 4]  # one line per step: rank 1 wrote none
    assert log[-1]["epoch"] == 1.0  # 16 records in 4 steps of 2 x 2
    assert [r["tokens_seen"] for r in log] == [r["tokens_seen"] for r in read_log(single / LOG_FILE)]
    assert _losses(out) == pytest.approx(_losses(single), rel=1e-5)
    assert output.count(f"lora adapter in {out}") == 1
    end, reference = load_file(out / "adapter_model.safetensors"), load_file(single / "adapter_model.safetensors")
    assert end.keys() == reference.keys() and all(torch.allclose(end[k], reference[k], atol=1e-5) for k in reference)

    ids = torch.tensor([[1, 2, 3, 4, 5, 6]])
    with torch.no_grad():
        base = AutoModelForCausalLM.from_pretrained(tiny).eval()(input_ids=ids).logits
        trained = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny), out).eval()(input_ids=ids).logits
    assert not torch.allclose(base, trained, atol=1e-4)  # the loaded adapter changes the model


@pytest.mark.skipif(not deepspeed_available(), reason="deepspeed is not installed: DS_BUILD_OPS=0 pip install deepspeed")
@pytest.mark.slow
def test_deepspeed_launcher_zero2_on_two_cpu_processes(tiny, conll, tmp_path):
    """``deepspeed --num_gpus 2 --module kgcore.cli train --deepspeed zero2`` on DeepSpeed's
    CPU accelerator: the loss falls, ZeRO-2 splits the optimizer state between the two ranks, and the
    adapter rank 0 saves is the two ranks' fp32 partitions put together."""
    out, run = tmp_path / "ds", tmp_path / "run.yaml"
    # the same 4 records every step (2 ranks x 2): the loss must fall
    run.write_text(yaml.safe_dump(_base(tiny, conll, out, max_steps=6, batch_size=2, max_train_samples=4,
                                        learning_rate=2e-2, save_strategy="steps", save_steps=6)))
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1"}  # the launcher does not set threads
    launch([sys.executable, "-m", "deepspeed.launcher.runner", "--num_gpus", "2", "--master_addr", "127.0.0.1",
            "--master_port", PORT, "--module", "kgcore.cli", "train", "--config", str(run),
            "--deepspeed", "zero2"], tmp_path, env)

    log = read_log(out / LOG_FILE)
    losses = _losses(out)
    assert [r["step"] for r in log] == list(range(1, 7)) and all(math.isfinite(x) for x in losses)
    assert losses[-1] < losses[0] - 0.05, losses
    assert json.loads((out / "kgc_train_meta.json").read_text())["world_size"] == 2
    state = out / "checkpoint-6" / "global_step6"
    ranks = [torch.load(state / f"zero_pp_rank_{r}_mp_rank_00_optim_states.pt", weights_only=False)
             ["optimizer_state_dict"] for r in (0, 1)]
    assert [(int(o["zero_stage"]), o["partition_count"]) for o in ranks] == [(2, [2]), (2, [2])]
    # torch's AdamW (kgc's choice on CPU), not DeepSpeed's C++ Adam
    assert "foreach" in ranks[0]["base_optimizer_state"]["param_groups"][0]
    pieces: dict[str, list] = {}
    for o in ranks:
        flat = o["single_partition_of_fp32_groups"][0]
        for name, at in o["param_slice_mappings"][0].items():
            pieces.setdefault(name.replace(".default.", "."), []).append(flat[at.start:at.start + at.numel])
    adapter = load_file(out / "adapter_model.safetensors")
    assert len(ranks[0]["param_slice_mappings"][0]) < len(adapter)  # each rank holds part of the parameters
    assert pieces.keys() == adapter.keys()
    assert all(torch.equal(torch.cat(pieces[k]), adapter[k].flatten()) for k in adapter)
    assert any(v.abs().sum() > 0 for k, v in adapter.items() if "lora_B" in k)  # trained (lora_B starts at 0)
