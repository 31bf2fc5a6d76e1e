"""Built-in data templates: the IEPile instruction texts (``instructions.yaml``) and the chat
templates (``chat/<name>.yaml``, plus ``auto``: the model's own template)."""

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


def _chat_templates():
    from kgcore.chat import chat_template_from_yaml

    folder = files(__name__).joinpath("chat")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            yield chat_template_from_yaml(entry)


@hookimpl
def kgc_register_chat_templates(register):
    from kgcore.chat import AUTO_TEMPLATE

    register(AUTO_TEMPLATE.name, AUTO_TEMPLATE, summary=AUTO_TEMPLATE.summary)
    for template in _chat_templates():
        register(template.name, template, summary=template.summary)
