"""Built-in templates: the IEPile instruction texts (``instructions.yaml``) and the chat templates
(``chat/<name>.yaml``, read by ``chat.py``; plus ``auto``: the model's own template)."""

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


@hookimpl
def kgc_register_chat_templates(register):
    from .chat import AUTO_TEMPLATE, read_yaml

    register(AUTO_TEMPLATE.name, AUTO_TEMPLATE, summary=AUTO_TEMPLATE.summary)
    folder = files(__name__).joinpath("chat")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            template = read_yaml(entry)
            register(template.name, template, summary=template.summary)


@hookimpl
def kgc_load_chat_template(path):
    """Chat template files in YAML (``--template my.yaml``)."""
    if path.endswith((".yaml", ".yml")):
        from .chat import read_yaml

        return read_yaml(path)
    return None
