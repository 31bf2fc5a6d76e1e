"""Deliberate breakages of the converter, the answer parser and the scorer: each must make a test fail.

    python tests/mutation_check.py            # every breakage
    python tests/mutation_check.py role       # those whose name contains "role"

Each breakage replaces exact lines of one source file, runs the tests named beside it (``pytest -x``),
and puts the file back, whatever happens. A breakage the tests do not notice is listed as SURVIVED and
the command exits 1: a test is missing there. Not part of the test suite (it runs the suite again per
breakage); run it before a change to those parts is called done. CONTRIBUTING.md lists the breakages.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Breakage:
    name: str
    path: str
    edits: tuple[tuple[str, str], ...]  # (exact old text, new text)
    tests: tuple[str, ...]


BREAKAGES = (
    Breakage("converter drops hard negatives of labels", "kgcore/sampling.py",
             (("chosen.update(h for h in hard.get(label, ()) if h in known)", "pass"),),
             ("tests/test_convert.py",)),
    Breakage("converter drops hard negatives of roles and attributes", "plugins/kgc_tasks/base.py",
             (("hard = {h for p in positives for h in (opts.hard_negatives or {}).get(p, ())}", "hard = set()"),),
             ("tests/test_convert.py",)),
    Breakage("converter swaps head and tail in RE targets", "plugins/kgc_tasks/relations.py",
             (("{keys[0]: r.head, keys[1]: r.tail}", "{keys[0]: r.tail, keys[1]: r.head}"),),
             ("tests/test_convert.py", "tests/test_golden.py")),
    Breakage("converter ignores an event role in EE targets", "plugins/kgc_tasks/events.py",
             (("return SchemaItem(label, self.sample_roles(label, sample, opts, rng))",
               "return SchemaItem(label, self.sample_roles(label, sample, opts, rng)[1:])"),),
             ("tests/test_convert.py", "tests/test_golden.py")),
    Breakage("parser reads RE answers with head and tail swapped", "plugins/kgc_tasks/relations.py",
             (("found.append((head, relation, tail))", "found.append((tail, relation, head))"),),
             ("tests/test_parsing.py", "tests/test_evaluate.py")),
    Breakage("parser and scorer ignore an argument's role", "plugins/kgc_tasks/events.py",
             (("arguments.append((event_type, text, role))", "arguments.append((event_type, text, None))"),
              ('(a.get("event_type"), x.get("argument"), x.get("role"))', '(a.get("event_type"), x.get("argument"), None)')),
             ("tests/test_parsing.py", "tests/test_evaluate.py")),
    Breakage("scorer counts a prediction as right without a matching gold tuple", "plugins/kgc_scorers/f1.py",
             (("overlap = Counter(gold) & Counter(pred)", "overlap = Counter(gold) | Counter(pred)"),),
             ("tests/test_evaluate.py",)),
    Breakage("scorer counts a duplicate prediction twice", "plugins/kgc_scorers/f1.py",
             (("overlap = Counter(gold) & Counter(pred)", "overlap = Counter(pred)"),),
             ("tests/test_evaluate.py",)),
)


def check(breakage: Breakage) -> tuple[bool, float]:
    """True when a test failed with the breakage in place."""
    path = ROOT / breakage.path
    original = path.read_text(encoding="utf-8")
    broken = original
    for old, new in breakage.edits:
        if broken.count(old) != 1:
            raise SystemExit(f"{breakage.path}: expected exactly one {old!r}; update tests/mutation_check.py")
        broken = broken.replace(old, new)
    start = time.monotonic()
    try:
        path.write_text(broken, encoding="utf-8")
        done = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *breakage.tests],
                              cwd=ROOT, capture_output=True, text=True)
    finally:
        path.write_text(original, encoding="utf-8")
    return done.returncode == 1, time.monotonic() - start


def main() -> None:
    chosen = [b for b in BREAKAGES if all(word in b.name for word in sys.argv[1:])]
    survived = 0
    for breakage in chosen:
        caught, seconds = check(breakage)
        survived += not caught
        print(f"{'caught  ' if caught else 'SURVIVED'}  {breakage.name}  ({breakage.path}; {seconds:.0f} s)", flush=True)
    print(f"{len(chosen) - survived} of {len(chosen)} breakages caught")
    sys.exit(1 if survived else 0)


if __name__ == "__main__":
    main()
