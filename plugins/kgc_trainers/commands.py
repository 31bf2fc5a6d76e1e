"""``kgc merge``: the command this plugin adds to the kgc command line."""

from __future__ import annotations

from pathlib import Path

import click


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
@click.option("--gguf", "gguf_file", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Also write the merged model as one GGUF file.")
@click.option("--gguf-type", type=click.Choice(["f16", "q8_0", "f32", "bf16"]), default="f16", show_default=True)
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
