"""README_CN.md says what README.md says: the same code blocks, the same `kgc ...` commands, the same links."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
READMES = {name: (ROOT / name).read_text(encoding="utf-8") for name in ("README.md", "README_CN.md")}
SWITCH = {"README.md", "README_CN.md"}  # each links to the other
GIF = "docs/images/serve-demo.gif"

_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
_INLINE = re.compile(r"`([^`\n]+)`")
_LINK = re.compile(r"(!?)\[[^\]]*\]\(([^)\s]+)\)")


def code_blocks(text: str) -> set[str]:
    return set(_FENCE.findall(text))


def inline_commands(text: str) -> set[str]:
    prose = _FENCE.sub("", text)
    return {span for span in _INLINE.findall(prose.replace("\n", " ")) if span.startswith("kgc ")}


def links(text: str) -> set[str]:
    return {target for _, target in _LINK.findall(_FENCE.sub("", text)) if target not in SWITCH}


def local(target: str) -> bool:
    return not re.match(r"[a-z][a-z0-9+.-]*:", target) and not target.startswith("#")


def differences(what: str, extract) -> list[str]:
    en, cn = (extract(READMES[name]) for name in ("README.md", "README_CN.md"))
    return ([f"{what} in README.md, missing from README_CN.md: {item!r}" for item in sorted(en - cn)]
            + [f"{what} in README_CN.md, missing from README.md: {item!r}" for item in sorted(cn - en)])


def test_same_code_blocks():
    assert code_blocks(READMES["README.md"]), "README.md: no fenced code block found"
    problems = differences("code block", code_blocks)
    assert not problems, "\n\n".join(problems)


def test_same_inline_kgc_commands():
    assert inline_commands(READMES["README.md"]), "README.md: no inline `kgc ...` command found"
    problems = differences("inline command", inline_commands)
    assert not problems, "\n".join(problems)


def test_same_links():
    problems = differences("link", links)
    assert not problems, "\n".join(problems)


def test_each_links_to_the_other():
    assert "](README_CN.md)" in READMES["README.md"], "README.md: no link to README_CN.md"
    assert "](README.md)" in READMES["README_CN.md"], "README_CN.md: no link to README.md"


@pytest.mark.parametrize("name", sorted(READMES))
def test_linked_files_exist(name):
    missing = []
    for bang, target in _LINK.findall(_FENCE.sub("", READMES[name])):
        path = target.split("#", 1)[0]
        if local(target) and path and not bang and not (ROOT / path).exists():
            missing.append(target)
    assert not missing, f"{name} links to files that do not exist: {missing}"


@pytest.mark.parametrize("name", sorted(READMES))
def test_the_demo_gif_is_shown(name):
    images = [target for bang, target in _LINK.findall(READMES[name]) if bang]
    assert GIF in images, f"{name}: no image {GIF} (images: {images})"


@pytest.mark.parametrize("name", sorted(READMES))
def test_images_exist(name):
    missing = [t for bang, t in _LINK.findall(READMES[name]) if bang and local(t) and not (ROOT / t).exists()]
    assert not missing, f"{name} shows images that do not exist: {missing}"


@pytest.mark.parametrize("name, heading, next_heading", [("README.md", "## Quick start", "\n## "),
                                                         ("README_CN.md", "## 快速开始", "\n## ")])
def test_quick_start_is_two_commands(name, heading, next_heading):
    text = READMES[name]
    section = text[text.index(heading):]
    section = section[:section.index(next_heading, len(heading))]
    blocks = re.findall(r"^```bash\n(.*?)\n```", section, flags=re.S | re.M)
    assert len(blocks) == 2 and all("\n" not in b for b in blocks), (
        f"{name}: the quick start must be exactly two one-line commands (set up + main job, set up + tests), "
        f"found {len(blocks)} blocks")
    assert blocks[1].startswith("bash .ci/setup && ") and "pytest" in blocks[1], f"{name}: the second runs the tests"
