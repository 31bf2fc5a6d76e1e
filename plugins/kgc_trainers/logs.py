"""The training log (``train_log.jsonl``, one line per logged step) and its loss plot."""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

LOG_FILE = "train_log.jsonl"
PLOT_FILE = "loss_curve.png"


class LogWriter:
    """Writes log lines: step, epoch, loss, eval_loss, lr, grad_norm, tokens/s.

    tokens/s counts non-padding input tokens over the time spent in training steps since the
    previous log line (evaluation time excluded)."""

    def __init__(self, path: Path):
        self.path = path
        self.step_time = 0.0
        self.tokens_at_log = 0
        self.step_started: float | None = None

    def write(self, state: Any, logs: Mapping[str, Any]) -> None:
        if "loss" not in logs and "eval_loss" not in logs:
            return
        tokens = logs.get("num_input_tokens_seen")
        speed = None
        if "loss" in logs and tokens is not None:
            if self.step_time > 0:
                speed = round((tokens - self.tokens_at_log) / self.step_time, 1)
            self.tokens_at_log, self.step_time = tokens, 0.0
        line = {"step": state.global_step, "epoch": round(state.epoch, 4) if state.epoch is not None else None,
                "loss": logs.get("loss"), "eval_loss": logs.get("eval_loss"), "lr": logs.get("learning_rate"),
                "grad_norm": logs.get("grad_norm"), "tokens_per_s": speed, "tokens_seen": tokens,
                "time": round(time.time(), 3)}
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")


def log_callback(path: Path) -> Any:
    """A ``transformers`` callback that times training steps and writes the log on the main process."""
    from transformers import TrainerCallback

    writer = LogWriter(path)

    class LogCallback(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            writer.tokens_at_log = state.num_input_tokens_seen or 0

        def on_step_begin(self, args, state, control, **kwargs):
            writer.step_started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if writer.step_started is not None:
                writer.step_time += time.perf_counter() - writer.step_started
                writer.step_started = None

        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs:
                writer.write(state, logs)

    return LogCallback()


def read_log(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The lines of a training log (none if there is no log)."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def plot_loss(log_path: str | os.PathLike[str], png_path: str | os.PathLike[str], title: str = "") -> str | None:
    """Draw training (and eval) loss against steps; ``None`` (with a warning) without matplotlib."""
    try:
        import matplotlib
    except ModuleNotFoundError:
        warnings.warn("loss_curve.png skipped: pip install matplotlib", stacklevel=2)
        return None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    rows = read_log(log_path)
    train = [(r["step"], r["loss"]) for r in rows if r.get("loss") is not None]
    evals = [(r["step"], r["eval_loss"]) for r in rows if r.get("eval_loss") is not None]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if train:
        ax.plot(*zip(*train), label="train loss", color="tab:blue")
    if evals:
        ax.plot(*zip(*evals), "o--", label="eval loss", color="tab:orange")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path)
    plt.close(fig)
    return str(png_path)
