"""The examples of docs/python-api.md run, in order, in an empty folder, with the real default model."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "python-api.md"


def blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", DOC.read_text(encoding="utf-8"), flags=re.S | re.M)


def test_python_api_examples_run(tmp_path, monkeypatch, smollm2_gguf, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    examples = blocks()
    assert len(examples) >= 5
    for number, code in enumerate(examples, 1):
        exec(compile(code, f"{DOC.name} example {number}", "exec"), namespace)
    printed = capsys.readouterr().out
    # What the page shows as printed output is what the examples print.
    for comment in re.findall(r"print\(.*?\)\s+# (.*)$", DOC.read_text(encoding="utf-8"), flags=re.M):
        assert comment in printed, comment
