"""Built-in data templates: the IEPile instruction texts (``instructions.yaml``)."""

from __future__ import annotations

from importlib.resources import files

from kgcore import Instruction, hookimpl


def _instructions() -> dict[str, Instruction]:
    import yaml

    data = yaml.safe_load(files(__name__).joinpath("instructions.yaml").read_text(encoding="utf-8"))
    out = {}
    for name, entry in data.items():
        task, language = name.split(".")[:2]
        out[name] = Instruction(task, language, entry["text"], entry.get("example_suffix", ""))
    return out


@hookimpl
def kgc_register_instructions(register):
    for name, instruction in _instructions().items():
        register(name, instruction, summary=instruction.text[:60])
