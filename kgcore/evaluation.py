"""``kgc evaluate``: P/R/F1 of predictions against gold labels, per source, with parse failures."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import astuple, dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError
from .jsonl import count_lines, read_jsonl
from .parsing import read_answer
from .plugins import PluginHost, get_host
from .task import Task, load_task


@dataclass
class _Group:
    source: str
    gold: dict[str, list[tuple]]
    pred: dict[str, list[tuple]] = field(default_factory=lambda: defaultdict(list))


@dataclass
class _Tally:
    records: int = 0
    outputs: int = 0
    failed: int = 0
    repaired: int = 0
    truncated: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"records": self.records, "outputs": self.outputs, "parse_failures": self.failed,
                "parse_failure_rate": round(100 * self.failed / self.outputs, 4) if self.outputs else 0.0,
                "repaired": self.repaired, "truncated": self.truncated}


def _label(record: dict[str, Any], path: str, line: int) -> list[dict[str, Any]]:
    if "label" not in record:
        raise InputError("missing gold annotations", path=path, line=line, field="label")
    label = record["label"]
    if isinstance(label, str):
        try:
            label = json.loads(label)
        except json.JSONDecodeError as exc:
            raise InputError(f"label is not valid JSON: {exc.msg}", path=path, line=line, field="label") from None
    if not isinstance(label, list) or not all(isinstance(a, dict) for a in label):
        raise InputError("label must be a list of annotation objects", path=path, line=line, field="label")
    return label


def _record_id(record: dict[str, Any], path: str, line: int) -> str:
    if "id" in record:
        return str(record["id"])
    raise InputError("missing record id (chunks of one text are merged by source and id)",
                     path=path, line=line, field="id")


class Scorer:
    """Base class of scorers: one instance per metric, fed gold and predicted tuples text by text.

    Built as ``Scorer(match="multiset" | "set", reference_rounding=False)``.
    """

    def __init__(self, match: str = "multiset", reference_rounding: bool = False):
        self.match, self.reference_rounding = match, reference_rounding

    def update(self, gold: list[tuple], pred: list[tuple]) -> None:
        """Add one text's gold and predicted tuples."""
        raise NotImplementedError

    def result(self) -> dict[str, Any]:
        """The metric so far: ``P``, ``R``, ``F1`` (percent), ``tp``, ``gold`` and ``pred``."""
        raise NotImplementedError


def evaluate(path: str | Path, *, task: str | None = None, scorer: str = "f1", match: str = "multiset",
             by_source: bool = True, reference_rounding: bool = False, progress: bool = True,
             host: PluginHost | None = None) -> dict[str, Any]:
    """Score a predictions file (converted test records plus ``output``) and return the report."""
    host = host or get_host()
    path = str(path)
    options = {"path": path, "task": task, "scorer": scorer, "match": match, "reference_rounding": reference_rounding}
    with host.run("evaluate", options) as run:
        run.result = report = _evaluate(path, task, host.registry.load("scorer", scorer), scorer, match, by_source,
                                        reference_rounding, progress, host)
    return report


def _evaluate(path: str, task: str | None, scorer_factory: type[Scorer], scorer: str, match: str, by_source: bool,
              reference_rounding: bool, progress: bool, host: PluginHost) -> dict[str, Any]:
    task_obj: Task | None = None
    groups: dict[tuple[str, str], _Group] = {}
    tallies: dict[str, _Tally] = defaultdict(_Tally)
    failures: list[dict[str, Any]] = []
    from tqdm import tqdm

    with tqdm(total=count_lines(path), unit=" outputs", desc="evaluate", disable=not progress) as bar:
        for line, record in read_jsonl(path):
            bar.update(1)
            if task_obj is None:
                task = task or record.get("task")
                if not task:
                    raise InputError("no task given: pass --task or add a 'task' field", path=path, line=line,
                                     field="task")
                task_obj = load_task(task, host=host)
            source = str(record.get("source") or "")
            key = (source, _record_id(record, path, line))
            tally = tallies[source]
            if key not in groups:
                groups[key] = _Group(source, task_obj.gold(_label(record, path, line)))
                tally.records += 1
            if "output" not in record:
                raise InputError("missing model output", path=path, line=line, field="output")
            tally.outputs += 1
            parsed = read_answer(record["output"], task_obj.name, record, host, truncated=bool(record.get("truncated")))
            if not parsed.ok:
                tally.failed += 1
                tally.truncated += parsed.status == "truncated"
                failures.append({"line": line, "id": key[1], "source": source, "error": parsed.error,
                                 "output": record["output"]})
                continue
            tally.repaired += parsed.status == "repaired"
            for metric, tuples in task_obj.predicted(parsed.value).items():
                groups[key].pred[metric].extend(tuples)

    if task_obj is None:
        raise InputError("no predictions in file", path=path)
    make = lambda: {m: scorer_factory(match=match, reference_rounding=reference_rounding) for m in task_obj.metrics}
    total, per_source = make(), defaultdict(make)
    for group in groups.values():
        for metric in task_obj.metrics:
            gold, pred = group.gold.get(metric, []), group.pred.get(metric, [])
            total[metric].update(gold, pred)
            per_source[group.source][metric].update(gold, pred)

    overall = _Tally(*(sum(counts) for counts in zip(*(astuple(t) for t in tallies.values()))))
    report = {"task": task_obj.name, "file": path, "scorer": scorer, "match": match,
              "reference_rounding": reference_rounding, **overall.as_dict(),
              "metrics": {m: s.result() for m, s in total.items()}}
    if by_source:
        report["by_source"] = {src: {**tallies[src].as_dict(), "metrics": {m: s.result() for m, s in scorers.items()}}
                               for src, scorers in sorted(per_source.items())}
    report["failures"] = failures
    return report


def format_report(report: dict[str, Any]) -> str:
    """A plain-text table of a report: one row per source plus the total."""
    metrics = list(report["metrics"])
    header = ["source", "records", "outputs", "fail %"] + [f"{m} {k}" for m in metrics for k in ("P", "R", "F1")]
    rows = [(source or "-", entry) for source, entry in (report.get("by_source") or {}).items()] + [("total", report)]
    table = [header]
    for name, entry in rows:
        table.append([name, str(entry["records"]), str(entry["outputs"]), f"{entry['parse_failure_rate']:.2f}"]
                     + [f"{entry['metrics'][m][k]:.2f}" for m in metrics for k in ("P", "R", "F1")])
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    cut = f" ({report['truncated']} cut by the token limit)" if report.get("truncated") else ""
    title = f"{report['task']} · {report['file']} · parse failures {report['parse_failures']}/{report['outputs']}" + cut
    return title + "\n" + "\n".join(lines)
