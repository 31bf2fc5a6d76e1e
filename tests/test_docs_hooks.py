"""docs/hooks.md documents every hook spec the plugin manager knows (the core's and the ones plugins
add), with its exact signature and call semantics, and no other."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from kgcore.plugins import PluginHost

DOC = Path(__file__).resolve().parents[1] / "docs" / "hooks.md"


def specs() -> dict[str, object]:
    """Hook name -> pluggy's spec, for every hook with a spec on a host with the installed plugins."""
    hook = PluginHost.discover().pm.hook
    return {name: caller.spec for name, caller in vars(hook).items() if caller.has_spec()}


def sections(text: str) -> dict[str, str]:
    """``### name`` heading -> the text up to the next heading."""
    parts = re.split(r"^#{1,6} +(.+?) *$", text, flags=re.M)
    return {parts[i].strip("` "): parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def test_every_hook_is_documented_with_its_signature_and_semantics():
    found = specs()
    assert {"kgc_register_tasks", "kgc_add_kinds", "kgc_register_trainers", "kgc_default_backend"} <= set(found)
    docs = sections(DOC.read_text(encoding="utf-8"))
    for name, spec in found.items():
        signature = f"{name}({', '.join(inspect.signature(spec.function).parameters)})"
        assert name in docs, f"docs/hooks.md has no '### {name}' section"
        assert re.search(rf"^{re.escape(signature)}$", docs[name], re.M), f"{signature} is not in its section"
        # The section opens with the spec's docstring summary (its first paragraph, ``x`` as `x`).
        summary = " ".join(inspect.getdoc(spec.function).split("\n\n")[0].split()).replace("``", "`")
        assert summary in " ".join(docs[name].split()), f"{name}: docs miss '{summary}'"
        for semantics in ("firstresult", "historic"):
            if spec.opts.get(semantics):
                assert semantics.capitalize() in docs[name] or f"`{semantics}`" in docs[name], (name, semantics)


def test_docs_name_no_unknown_hook():
    found = specs()
    text = DOC.read_text(encoding="utf-8")
    hook_like = set(re.findall(r"\bkgc_(?:register|run|postprocess|add|default)_?\w*", text))
    headings = {h for h in sections(text) if h.startswith("kgc_")}
    assert hook_like and headings
    assert hook_like - set(found) == set(), "docs/hooks.md names hooks that do not exist"
    assert headings == set(found)
