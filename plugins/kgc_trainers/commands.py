"""``kgc train`` and ``kgc merge``: the commands this plugin adds to the kgc command line."""

from __future__ import annotations

import os
from pathlib import Path

import click

from .config import click_options
from .export import GGUF_TYPES


def _config_options(fn):
    for option in reversed(click_options()):
        fn = option(fn)
    return fn


@click.command(context_settings={"max_content_width": 110})
@click.option("-c", "--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="YAML or JSON training config (see docs/training.md); the flags below override it.")
@_config_options
def train(config_path, **flags):
    """Fine-tune a model on converted records (lora, qlora, full, freeze, ptuning, prefix).

    Also runs under torchrun: torchrun --nproc_per_node N -m kgcore.cli train --config run.yaml
    """
    from .config import load_config, overrides_from_cli
    from .run import train as run_train

    result = run_train(load_config(config_path, overrides_from_cli(flags)))
    if int(os.environ.get("RANK", "0")) == 0:
        losses = f"loss {result.first_loss:.4f} -> {result.last_loss:.4f}" if result.last_loss is not None else ""
        if result.last_eval_loss is not None:
            losses += f", eval loss {result.first_eval_loss:.4f} -> {result.last_eval_loss:.4f}"
        click.echo(f"{result.method} {result.produces} in {result.output_dir} ({losses}; "
                   f"{result.metrics.get('train_runtime', 0):.1f} s)\nPredict with: {result.predict_command}", err=True)


@click.command()
@click.option("--base", required=True, help="Base model: transformers folder or hub name.")
@click.option("--adapter", "adapters", multiple=True, required=True, type=click.Path(exists=True, file_okay=False),
              help="PEFT adapter folder (repeatable; merged in order).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the merged checkpoint (safetensors + tokenizer).")
@click.option("--dtype", type=click.Choice(["auto", "float32", "float16", "bfloat16"]), default="auto",
              show_default=True, help="Weights dtype of the merged model (auto: the base's).")
@click.option("--template", default=None,
              help="kgc chat template the adapters were trained with (name or YAML), saved as kgc_chat_template.yaml.")
@click.option("--gguf", "gguf_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the merged model as one GGUF file.")
@click.option("--gguf-type", type=click.Choice(GGUF_TYPES), default="f16", show_default=True)
@click.option("--lora-gguf", "lora_gguf", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also convert the (single) adapter to a GGUF LoRA adapter for llama.cpp (needs a local --base).")
@click.option("--trust-remote-code", is_flag=True, help="Let transformers run the model's own code.")
@click.option("--overwrite", is_flag=True, help="Replace a non-empty --out folder.")
def merge(base, adapters, out_dir, dtype, template, gguf_file, gguf_type, lora_gguf, trust_remote_code, overwrite):
    """Merge LoRA adapters into their base model; optionally export GGUF files for llama.cpp."""
    import tempfile

    from .export import export_gguf, export_lora_gguf, merge_adapters

    if out_dir is None and gguf_file is None and lora_gguf is None:
        raise click.UsageError("give --out, --gguf or --lora-gguf")
    if lora_gguf is not None and len(adapters) != 1:
        raise click.UsageError("--lora-gguf converts exactly one --adapter")
    if lora_gguf is not None:
        click.echo(f"LoRA GGUF -> {export_lora_gguf(adapters[0], base, lora_gguf)}", err=True)
    if out_dir is None and gguf_file is None:
        return
    with tempfile.TemporaryDirectory(prefix="kgc-merge-") as tmp:
        target = out_dir if out_dir is not None else Path(tmp) / "merged"
        merged = merge_adapters(base, list(adapters), target, dtype, template=template,
                                trust_remote_code=trust_remote_code, overwrite=overwrite)
        if out_dir is not None:
            click.echo(f"merged model -> {merged}", err=True)
        if gguf_file is not None:
            click.echo(f"GGUF ({gguf_type}) -> {export_gguf(merged, gguf_file, gguf_type)}", err=True)
