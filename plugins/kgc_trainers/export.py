"""Export trained models: merge PEFT adapters into their base, convert to GGUF for llama.cpp.

* :func:`merge_adapters` loads a base model and one or more PEFT adapters, merges them
  (``merge_and_unload``) and saves a plain transformers checkpoint (safetensors), its tokenizer
  (saved ``padding_side="left"``, as the reference's ``export_model.py``) with the tokenizer's own
  chat template, and, when a named kgc chat template was used, a ``kgc_chat_template.yaml`` copy.
* :func:`export_gguf` converts a transformers checkpoint (a merged one) to a GGUF file;
  :func:`export_lora_gguf` converts a PEFT LoRA adapter to a GGUF LoRA adapter, which llama.cpp
  applies at load time on top of the base model's GGUF (the ``llamacpp`` backend's ``lora`` option).

GGUF files are written by llama.cpp's own converters (``convert_hf_to_gguf.py`` and
``convert_lora_to_gguf.py``), never by hand. They are taken from the llama-cpp-python sdist of the
*installed* llama-cpp-python version, so the files match the llama.cpp that loads them, together
with the ``gguf-py`` package of that same llama.cpp (the converters put it first on ``sys.path``, so
the installed ``gguf`` version does not matter). They are fetched once, by
``python -m kgc_trainers.export fetch-converters``, into ``$KGC_CACHE/llama.cpp-<version>``
(``~/.cache/kgc`` by default); ``KGC_LLAMA_CPP_DIR`` may point at any llama.cpp checkout instead.
Nothing is downloaded while exporting.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kgc_backends.default_model import cache_root
from kgc_backends.loading import MERGEABLE_PEFT_TYPES, peft_type
from kgcore.errors import InputError, KGCError, MissingDependencyError

from .config import CONFIG_FILE
from .families import resolve_family

#: GGUF output types of a merged model (llama.cpp converter ``--outtype`` values).
GGUF_TYPES = ("f16", "q8_0", "f32", "bf16")
#: What is kept of the sdist's ``vendor/llama.cpp`` (about 2 MB).
_CONVERTER_FILES = ("convert_hf_to_gguf.py", "convert_lora_to_gguf.py", "LICENSE")
_CONVERTER_DIRS = ("conversion/", "gguf-py/", "requirements/")
FETCH_COMMAND = "python -m kgc_trainers.export fetch-converters"
TEMPLATE_FILE = "kgc_chat_template.yaml"
MERGE_INFO_FILE = "kgc_merge.json"


class ExportError(KGCError):
    """Merging or converting failed."""


# -- llama.cpp converters --------------------------------------------------------------------------

def llama_cpp_version() -> str | None:
    """The installed llama-cpp-python version, or ``None``."""
    import importlib.metadata as metadata

    try:
        return metadata.version("llama_cpp_python")
    except metadata.PackageNotFoundError:
        return None


def _is_converter_dir(path: Path) -> bool:
    return all((path / name).is_file() for name in _CONVERTER_FILES[:2]) and (path / "gguf-py" / "gguf").is_dir()


def converters_dir(version: str | None = None) -> Path:
    """The folder holding llama.cpp's ``convert_hf_to_gguf.py`` and ``convert_lora_to_gguf.py``.

    ``KGC_LLAMA_CPP_DIR`` (a llama.cpp checkout) wins; else the cached copy for ``version`` (default:
    the installed llama-cpp-python). Raises :class:`MissingDependencyError` naming the one command
    that fetches them.
    """
    override = os.environ.get("KGC_LLAMA_CPP_DIR")
    if override:
        path = Path(override).expanduser()
        if not _is_converter_dir(path):
            raise MissingDependencyError(f"KGC_LLAMA_CPP_DIR={override} is not a llama.cpp folder with "
                                         "convert_hf_to_gguf.py, convert_lora_to_gguf.py and gguf-py/")
        return path
    version = version or llama_cpp_version()
    if version is None:
        raise MissingDependencyError("GGUF export uses the llama.cpp converters of the installed llama-cpp-python, "
                                     "which is not installed (see docs/export.md), or set KGC_LLAMA_CPP_DIR "
                                     "to a llama.cpp checkout")
    path = cache_root() / f"llama.cpp-{version}"
    if not _is_converter_dir(path):
        raise MissingDependencyError(f"llama.cpp's GGUF converters (llama-cpp-python {version}) are not in {path}; "
                                     f"fetch them once with: {FETCH_COMMAND}")
    return path


def fetch_converters(version: str | None = None, *, sdist: str | os.PathLike[str] | None = None,
                     force: bool = False) -> Path:
    """Put llama.cpp's converters for llama-cpp-python ``version`` (default: the installed one) into
    the cache, from the ``sdist`` file given or one ``pip download`` of it. Idempotent."""
    version = version or llama_cpp_version()
    if version is None:
        raise MissingDependencyError("llama-cpp-python is not installed: give the version to fetch")
    dest = cache_root() / f"llama.cpp-{version}"
    if _is_converter_dir(dest) and not force:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kgc-llama-cpp-", dir=dest.parent) as tmp:
        tmp = Path(tmp)
        if sdist is None:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-d", str(tmp),
                   f"llama-cpp-python=={version}"]
            run = subprocess.run(cmd, capture_output=True, text=True)
            if run.returncode != 0:
                raise ExportError(f"'{' '.join(cmd)}' failed:\n{_tail(run.stdout + run.stderr)}")
            found = sorted(tmp.glob("llama_cpp_python-*.tar.gz"))
            if not found:
                raise ExportError(f"pip download left no llama-cpp-python sdist in {tmp}")
            sdist = found[0]
        staged = tmp / "llama.cpp"
        _extract_converters(Path(sdist), staged)
        if not _is_converter_dir(staged):
            raise ExportError(f"{sdist} has no vendor/llama.cpp converters")
        (staged / "KGC_SOURCE").write_text(f"vendor/llama.cpp of {Path(sdist).name}\n", encoding="utf-8")
        if dest.exists():
            shutil.rmtree(dest)
        staged.rename(dest)
    return dest


def _extract_converters(sdist: Path, dest: Path) -> None:
    with tarfile.open(sdist) as tar:
        members = []
        for member in tar.getmembers():
            parts = member.name.split("/", 1)
            if len(parts) < 2 or not parts[1].startswith("vendor/llama.cpp/"):
                continue
            rel = parts[1][len("vendor/llama.cpp/"):]
            if rel in _CONVERTER_FILES or rel.startswith(_CONVERTER_DIRS):
                if "__pycache__" in rel or not (member.isfile() or member.isdir()):
                    continue
                member.name = rel
                members.append(member)
        dest.mkdir(parents=True)
        tar.extractall(dest, members=members, filter="data")


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _run_converter(script: str, args: Sequence[str], out_file: Path, *, version: str | None = None) -> Path:
    folder = converters_dir(version)
    out_file = Path(out_file).resolve()  # the converter runs inside its own folder
    out_file.parent.mkdir(parents=True, exist_ok=True)
    partial = out_file.with_name(out_file.name + ".partial")
    env = dict(os.environ)
    env.pop("NO_LOCAL_GGUF", None)  # use the gguf-py shipped with these converters
    env.setdefault("PYTHONIOENCODING", "utf-8")
    cmd = [sys.executable, str(folder / script), *args, "--outfile", str(partial)]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=folder)
    if run.returncode != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        raise ExportError(f"{script} failed (exit {run.returncode}):\n{_tail(run.stderr + run.stdout)}")
    partial.replace(out_file)
    return out_file


def _check_gguf_type(outtype: str) -> None:
    if outtype not in GGUF_TYPES:
        raise InputError(f"GGUF type '{outtype}' is not one of {', '.join(GGUF_TYPES)}")


def export_gguf(model_dir: str | os.PathLike[str], out_file: str | os.PathLike[str], outtype: str = "f16") -> Path:
    """Convert a transformers checkpoint folder (e.g. :func:`merge_adapters`' output) to one GGUF file
    with llama.cpp's ``convert_hf_to_gguf.py``. ``outtype``: f16 (default), q8_0, f32 or bf16."""
    model_dir = Path(model_dir).resolve()
    _check_gguf_type(outtype)
    if not (model_dir / "config.json").is_file() or not any(model_dir.glob("*.safetensors")):
        raise InputError(f"{model_dir} is not a transformers checkpoint (config.json + *.safetensors)")
    return _run_converter("convert_hf_to_gguf.py", [str(model_dir), "--outtype", outtype], Path(out_file))


def export_lora_gguf(adapter_dir: str | os.PathLike[str], base_dir: str | os.PathLike[str],
                     out_file: str | os.PathLike[str], outtype: str = "f16") -> Path:
    """Convert a PEFT LoRA adapter folder to a GGUF LoRA adapter with llama.cpp's
    ``convert_lora_to_gguf.py``; ``base_dir`` is the base model's transformers folder (only its
    config and tokenizer files are read). Load the result on top of the base model's GGUF:
    ``load_backend("llamacpp", {"model": base_gguf, "lora": out_file})``."""
    adapter_dir, base_dir = Path(adapter_dir).resolve(), Path(base_dir).resolve()
    kind = peft_type(adapter_dir)
    if kind != "LORA":
        raise InputError(f"{adapter_dir}: llama.cpp takes LoRA adapters only, not {kind}")
    if not (base_dir / "config.json").is_file():
        raise InputError(f"{base_dir} is not a transformers model folder (no config.json)")
    _check_gguf_type(outtype)
    return _run_converter("convert_lora_to_gguf.py", [str(adapter_dir), "--base", str(base_dir), "--outtype", outtype],
                          Path(out_file))


# -- merging -----------------------------------------------------------------------------------

def _has_tokenizer(folder: Path) -> bool:
    return (folder / "tokenizer_config.json").is_file() and any(
        (folder / name).is_file() for name in ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt"))


def _dtype(name: str) -> Any:
    import torch

    if name in ("auto", None):
        return "auto"
    value = {"fp32": "float32", "fp16": "float16", "half": "float16", "bf16": "bfloat16"}.get(name, name)
    dtype = getattr(torch, str(value), None)
    if value not in ("float32", "float16", "bfloat16") or not isinstance(dtype, torch.dtype):
        raise InputError(f"dtype '{name}' is not one of auto, float32, float16, bfloat16")
    return dtype


def merge_adapters(base: str | os.PathLike[str], adapters: Sequence[str | os.PathLike[str]],
                   out_dir: str | os.PathLike[str], dtype: str = "auto", *, template: str | None = None,
                   trust_remote_code: bool = False, overwrite: bool = False) -> Path:
    """Merge PEFT ``adapters`` (applied in order) into ``base`` and save the result in ``out_dir``.

    ``base`` is a transformers model folder or hub name; ``dtype`` is auto (the checkpoint's own),
    float32, float16 or bfloat16. The tokenizer comes from the last adapter folder that has one (a
    training run may have added tokens), else from ``base``; the embedding matrix is resized to it.
    ``template``: the kgc chat template (name or YAML path) the adapters were trained with; it is
    saved as ``kgc_chat_template.yaml``. When it is not given, the last adapter folder's own
    ``kgc_chat_template.yaml`` is copied, or the template named by the ``kgc_train_config.yaml`` that
    ``kgc train`` left there is used; ``auto`` (or nothing known) saves none. The tokenizer's own chat
    template is always kept.
    ``trust_remote_code`` is passed to transformers only when set.
    """
    try:
        import torch  # noqa: F401
        from peft import PeftModel
        from transformers import AutoConfig, AutoTokenizer
    except ModuleNotFoundError as exc:
        raise MissingDependencyError(f"merging adapters needs torch, transformers and peft "
                                     f"(pip install 'kgcore[hf]'): {exc}") from exc

    adapters = [Path(a) for a in adapters]
    if not adapters:
        raise InputError("give at least one adapter to merge")
    for folder in adapters:
        kind = peft_type(folder)
        if kind not in MERGEABLE_PEFT_TYPES:
            raise InputError(f"{folder}: a {kind} adapter cannot be merged into the weights (mergeable: "
                             f"{', '.join(MERGEABLE_PEFT_TYPES)}); load it with the hf backend's adapter option "
                             "instead")
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise InputError(f"{out_dir} exists and is not empty (pass overwrite=True / --overwrite)")
    torch_dtype = _dtype(dtype)
    remote = {"trust_remote_code": True} if trust_remote_code else {}

    base_str = os.fspath(base)
    config = AutoConfig.from_pretrained(base_str, **remote)
    family = resolve_family(getattr(config, "model_type", None))
    chat_yaml, chat_source = _template_yaml(template, adapters, getattr(config, "model_type", None))
    tokenizer_source = next((a for a in reversed(adapters) if _has_tokenizer(a)), None)
    # padding_side given at load time is what transformers 5 saves (setting the attribute later is not)
    tokenizer = AutoTokenizer.from_pretrained(os.fspath(tokenizer_source or base_str), padding_side="left", **remote)
    model = family.auto_class().from_pretrained(base_str, dtype=torch_dtype, **remote)
    embeddings = model.get_input_embeddings()
    if embeddings is not None and len(tokenizer) > embeddings.weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer))
    for folder in adapters:
        try:
            model = PeftModel.from_pretrained(model, os.fspath(folder), is_trainable=False)
        except (RuntimeError, ValueError, KeyError) as exc:
            raise ExportError(f"cannot load adapter {folder} onto {base_str}: {exc}") from exc
        model = model.merge_and_unload()
    model.config.use_cache = True

    partial = out_dir.with_name(out_dir.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    model.save_pretrained(partial, max_shard_size="10GB")
    tokenizer.save_pretrained(partial)
    if chat_yaml is not None:
        (partial / TEMPLATE_FILE).write_text(chat_yaml, encoding="utf-8")
    info = {"base": base_str, "adapters": [os.fspath(a) for a in adapters], "dtype": str(dtype),
            "family": family.name, "tokenizer": os.fspath(tokenizer_source or base_str),
            "chat_template": TEMPLATE_FILE if chat_yaml is not None else None, "chat_template_source": chat_source}
    (partial / MERGE_INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    partial.rename(out_dir)
    return out_dir


def _train_config(folder: Path) -> dict[str, Any] | None:
    """The ``kgc_train_config.yaml`` that ``kgc train`` leaves beside its adapter, if any."""
    import yaml

    path = folder / CONFIG_FILE
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    return data if isinstance(data, dict) else None


def _template_yaml(template: str | None, adapters: Sequence[Path],
                   model_type: str | None = None) -> tuple[str | None, str]:
    """The text of ``kgc_chat_template.yaml`` to save (``None``: the model's own template is used)
    and where it came from. Without ``template``, the last adapter folder says: its own
    ``kgc_chat_template.yaml``, else the ``template`` of its ``kgc_train_config.yaml`` (unset there: the
    family's default, as ``kgc train`` does)."""
    import yaml

    from kgcore.prompt import AUTO, load_chat_template

    source = "--template"
    if template is None:
        for folder in reversed(adapters):
            if (folder / TEMPLATE_FILE).is_file():
                return (folder / TEMPLATE_FILE).read_text(encoding="utf-8"), str(folder / TEMPLATE_FILE)
            train = _train_config(folder)
            if train is not None:
                template = train.get("template") or resolve_family(train.get("family") or model_type).default_template
                source = str(folder / CONFIG_FILE)
                break
    if template is None or template == AUTO:
        return None, "the tokenizer's own chat template"
    chat = load_chat_template(template)
    if chat.auto:
        return None, "the tokenizer's own chat template"
    return yaml.safe_dump(chat.to_dict(), allow_unicode=True, sort_keys=False), f"{template} ({source})"


# -- python -m kgc_trainers.export fetch-converters --------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m kgc_trainers.export")
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch-converters", help="cache llama.cpp's GGUF converters (once)")
    fetch.add_argument("--version", default=None, help="llama-cpp-python version (default: the installed one)")
    fetch.add_argument("--sdist", default=None, help="a llama-cpp-python sdist (.tar.gz) already on disk")
    fetch.add_argument("--force", action="store_true", help="fetch again even if cached")
    sub.add_parser("where", help="print the converters folder")
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch-converters":
            print(fetch_converters(args.version, sdist=args.sdist, force=args.force))
        else:
            print(converters_dir())
    except KGCError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["ExportError", "FETCH_COMMAND", "GGUF_TYPES", "converters_dir", "export_gguf", "export_lora_gguf",
           "fetch_converters", "llama_cpp_version", "merge_adapters"]
