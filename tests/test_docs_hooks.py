"""docs/hooks.md documents every hook of kgcore/hookspecs.py, with its exact signature, and no other."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from kgcore import hookspecs

DOC = Path(__file__).resolve().parents[1] / "docs" / "hooks.md"


def hookspecs_by_name() -> dict[str, object]:
    return {name: f for name, f in vars(hookspecs).items()
            if inspect.isfunction(f) and hasattr(f, "kgc_spec")}  # set by pluggy's @hookspec


def sections(text: str) -> dict[str, str]:
    """``### name`` heading -> the text up to the next heading."""
    parts = re.split(r"^#{1,6} +(.+?) *$", text, flags=re.M)
    return {parts[i].strip("` "): parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def test_every_hook_is_documented_with_its_signature():
    specs = hookspecs_by_name()
    assert len(specs) >= 13 and "kgc_register_tasks" in specs
    docs = sections(DOC.read_text(encoding="utf-8"))
    for name, func in specs.items():
        signature = f"{name}({', '.join(inspect.signature(func).parameters)})"
        assert name in docs, f"docs/hooks.md has no '### {name}' section"
        assert re.search(rf"^{re.escape(signature)}$", docs[name], re.M), f"{signature} is not in its section"
        # The section opens with the spec's docstring summary (its first paragraph, ``x`` as `x`).
        summary = " ".join(inspect.getdoc(func).split("\n\n")[0].split()).replace("``", "`")
        assert summary in " ".join(docs[name].split()), f"{name}: docs miss '{summary}'"


def test_docs_name_no_unknown_hook():
    specs = hookspecs_by_name()
    text = DOC.read_text(encoding="utf-8")
    hook_like = set(re.findall(r"\bkgc_(?:register|run|postprocess)_?\w*", text))
    headings = {h for h in sections(text) if h.startswith("kgc_")}
    assert hook_like and headings
    assert hook_like - set(specs) == set(), "docs/hooks.md names hooks that do not exist"
    assert headings == set(specs)
