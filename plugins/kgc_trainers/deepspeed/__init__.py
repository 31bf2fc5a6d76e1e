"""DeepSpeed ZeRO configs shipped with kgc (the reference's ``configs/ds_config_bf16_stage{2,3}.json``).

=================  =====  =========================================================================
name               stage  offload
=================  =====  =========================================================================
``zero2``          2      none
``zero2_offload``  2      optimizer states to pinned CPU memory (the reference's stage-2 config)
``zero3``          3      none
``zero3_offload``  3      optimizer states and parameters to pinned CPU memory
=================  =====  =========================================================================

All of them use the reference's optimizer (AdamW), scheduler (WarmupDecayLR) and bucket sizes, and
leave precision (``bf16``/``fp16``), learning-rate, batch-size, accumulation and clipping values as
``"auto"``: the Hugging Face ``Trainer`` (``TrainingArguments(deepspeed=path)``) fills those from its
own arguments. To call ``deepspeed.initialize`` directly, fill them first with :func:`fill_auto`.

Nothing here imports ``deepspeed``; :func:`available` says whether it is installed.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kgcore.errors import InputError, UnknownComponentError

_HERE = Path(__file__).resolve().parent

#: name -> ZeRO stage of every shipped config.
CONFIGS: dict[str, int] = {"zero2": 2, "zero2_offload": 2, "zero3": 3, "zero3_offload": 3}


def available() -> bool:
    """Whether the ``deepspeed`` package is installed (``DS_BUILD_OPS=0 pip install deepspeed``)."""
    return importlib.util.find_spec("deepspeed") is not None


def names() -> list[str]:
    """Names of the shipped configs."""
    return sorted(CONFIGS)


def _key(name: str) -> str:
    key = name.strip().lower().replace("-", "_")
    return key[:-5] if key.endswith(".json") else key


def deepspeed_config(name_or_path: str | os.PathLike[str]) -> Path:
    """The path of a shipped config (``zero2``, ``zero2-offload``, ``zero3.json``, ...) or of a user's
    JSON file. Anything with a path separator, or an existing file, is taken as a path."""
    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    if path.is_file():
        return path.resolve()
    if os.sep in text or (os.altsep and os.altsep in text):
        raise InputError(f"DeepSpeed config file not found: {text}")
    key = _key(text)
    if key not in CONFIGS:
        raise UnknownComponentError("DeepSpeed config", text, names())
    return _HERE / f"{key}.json"


def load_config(name_or_path: str | os.PathLike[str]) -> dict[str, Any]:
    """A config (shipped name or path) as a dict."""
    path = deepspeed_config(name_or_path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"DeepSpeed config is not valid JSON: {exc}", path=str(path)) from None
    if not isinstance(data, dict):
        raise InputError("a DeepSpeed config must be a JSON object", path=str(path))
    return data


def unresolved_auto(config: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose value is still ``"auto"``."""
    out = []
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if value == "auto":
            out.append(dotted)
        elif isinstance(value, Mapping):
            out.extend(unresolved_auto(value, dotted + "."))
    return out


def fill_auto(config: Mapping[str, Any], values: Mapping[str, Any], *, strict: bool = True) -> dict[str, Any]:
    """A copy of ``config`` with ``"auto"`` values replaced from ``values`` (dotted keys, e.g.
    ``{"optimizer.params.lr": 1e-4, "bf16.enabled": False}``). Only ``"auto"`` entries are replaced.
    With ``strict``, a remaining ``"auto"`` is an error naming it."""
    out = copy.deepcopy(dict(config))
    for dotted, value in values.items():
        *parents, leaf = dotted.split(".")
        node = out
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
            if node is None:
                break
        if isinstance(node, dict) and node.get(leaf) == "auto":
            node[leaf] = value
    if strict:
        left = unresolved_auto(out)
        if left:
            raise InputError(f"DeepSpeed config still has \"auto\" values: {', '.join(left)}")
    return out


__all__ = ["CONFIGS", "available", "deepspeed_config", "fill_auto", "load_config", "names", "unresolved_auto"]
