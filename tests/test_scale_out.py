"""``--engine ray``: a local Ray instance with two actors on the real default model (llama.cpp).

Every Ray run happens in network and PID namespaces of its own (``unshare``) with only ``lo`` up, so Ray
can reach nothing but loopback and all of its processes end with the driver.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from conftest import DATASETS
from servers import isolated
from kgc_ray.corpus import Shard, chunk_spans, corpus_files, plan_shards, read_shard
from kgcore import InputError, get_host

pytest.importorskip("ray")
pytest.importorskip("llama_cpp")

KGC = [sys.executable, "-m", "kgcore.cli"]
# One request at a time: batched decoding's arithmetic depends on which texts share a batch, and shards
# batch texts otherwise than one process does (a near-tie may flip; docs/scale-out.md).
ONE_AT_A_TIME = ["-O", "parallel=0"]
LABELS = ["-t", "NER", "-l", "person,location,organization,miscellaneous", *ONE_AT_A_TIME]
KEYS = ("id", "text", "result", "triples", "spans", "parse_failures")



def ray_env() -> dict[str, str]:
    # one thread per actor: no OpenMP spinning between the two
    return {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "OMP_WAIT_POLICY": "PASSIVE"}


def run_ray(args: list[str], cwd: Path, timeout: float = 400) -> subprocess.CompletedProcess:
    done = subprocess.run(isolated([*KGC, *args, "--engine", "ray", "-q"]), cwd=cwd, env=ray_env(),
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def corpus(path: Path, n: int = 24) -> Path:
    """The first ``n`` CoNLL-2003 test sentences as JSONL documents with ids."""
    with (DATASETS / "conll2003" / "test.json").open(encoding="utf-8") as fh:
        texts = [json.loads(line)["text"] for line, _ in zip(fh, range(n))]
    path.write_text("".join(json.dumps({"id": f"d{i:02d}", "text": t}) + "\n" for i, t in enumerate(texts)),
                    encoding="utf-8")
    return path


def shard_lines(folder: Path) -> list[dict]:
    return [json.loads(line) for part in sorted(folder.glob("part-*.jsonl")) for line in part.open()]


def single_process(docs: Path, tmp_path: Path) -> dict[str, dict]:
    """Plain ``kgc extract`` on the same texts, keyed by text."""
    texts = tmp_path / "texts.txt"
    texts.write_text("".join(json.loads(line)["text"] + "\n" for line in docs.open()), encoding="utf-8")
    done = subprocess.run([*KGC, "extract", "-i", str(texts), *LABELS], capture_output=True, text=True,
                          timeout=400, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    assert done.returncode == 0, done.stderr[-3000:]
    return {line["text"]: line for line in map(json.loads, done.stdout.splitlines())}


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        found += (kids := children.get(todo.pop(), []))
        todo += kids
    return found


def actor_pids(pid: int) -> list[int]:
    out = []
    for child in descendants(pid):
        try:
            if Path(f"/proc/{child}/cmdline").read_bytes().startswith(b"ray::MapWorker"):
                out.append(child)
        except OSError:
            continue
    return out


def ray_processes() -> list[int]:
    out = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if cmdline.read_bytes().startswith(b"ray::") or b"/raylet" in cmdline.read_bytes():
                out.append(int(cmdline.parent.name))
        except OSError:
            continue
    return out


def wait_for(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.2)
    pytest.fail(f"gave up waiting for {what} after {seconds:.0f} s")


@pytest.mark.slow
def test_same_results_as_one_process_and_the_graph(tmp_path):
    docs = corpus(tmp_path / "docs.jsonl")
    run_ray(["extract", "--corpus", str(docs), *LABELS, "-o", "out", "--shard-size", "5", "--actors", "2",
             "--graph", "kg"], tmp_path)
    lines = shard_lines(tmp_path / "out")
    assert [line["id"] for line in lines] == [f"d{i:02d}" for i in range(24)]
    plain = single_process(docs, tmp_path)
    assert sum(bool(line["triples"]) for line in lines) >= 12  # the adapter finds entities
    for line in lines:
        expected = {**plain[line["text"]], "id": line["id"]}
        assert {k: line[k] for k in KEYS} == {k: expected[k] for k in KEYS}
        assert line["chunks"] == [[0, len(line["text"])]]
    summary = json.loads((tmp_path / "out" / "_summary.json").read_text())
    assert (summary["documents"], summary["shards"], summary["chunks"]) == (24, 5, 24)
    assert summary["statements_ingested"] > 0
    stats = subprocess.run([*KGC, "graph", "stats", "kg", "--json"], cwd=tmp_path, capture_output=True, text=True)
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["documents"] == 24


@pytest.mark.slow
def test_a_killed_actor_loses_nothing_and_repeats_nothing(tmp_path):
    docs = corpus(tmp_path / "docs.jsonl")
    job = subprocess.Popen(isolated([*KGC, "extract", "--engine", "ray", "-q", "--corpus", str(docs), *LABELS,
                                     "-o", "out", "--shard-size", "3", "--actors", "2"]),
                           cwd=tmp_path, env=ray_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: list((tmp_path / "out").glob("part-*")), 300, "the first shard")
        victim = wait_for(lambda: actor_pids(job.pid), 30, "an actor process")[0]
        os.kill(victim, signal.SIGKILL)
        output, _ = job.communicate(timeout=400)
    finally:
        job.kill()
    assert job.returncode == 0, output[-3000:]
    assert "A worker died or was killed" in output  # Ray saw the actor go, and retried its shard
    lines = shard_lines(tmp_path / "out")
    assert sorted(line["id"] for line in lines) == [f"d{i:02d}" for i in range(24)]
    plain = single_process(docs, tmp_path)
    assert all(line["result"] == plain[line["text"]]["result"] for line in lines)


@pytest.mark.slow
def test_a_rerun_after_kill_9_of_the_driver_skips_finished_shards(tmp_path):
    docs = corpus(tmp_path / "docs.jsonl", 12)
    args = ["extract", "--corpus", str(docs), *LABELS, "-o", "out", "--shard-size", "2", "--actors", "2"]
    job = subprocess.Popen(isolated([*KGC, *args, "--engine", "ray", "-q"]), cwd=tmp_path, env=ray_env(),
                           stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(list((tmp_path / "out").glob("part-*"))) >= 2, 300, "two shards")
    finally:
        job.send_signal(signal.SIGKILL)  # unshare --kill-child: the driver and all of Ray go with it
        job.wait(30)
    written = {p.name: p.read_bytes() for p in (tmp_path / "out").glob("part-*")}
    assert 2 <= len(written) < 6
    wait_for(lambda: not ray_processes(), 20, "Ray's processes to end with the driver")
    again = run_ray([*args, "--graph", "kg"], tmp_path)  # the graph gets the shards written before the kill too
    assert f"{2 * len(written)} in {len(written)} finished shards" in again.stderr
    assert all((tmp_path / "out" / name).read_bytes() == data for name, data in written.items())
    assert sorted(line["id"] for line in shard_lines(tmp_path / "out")) == [f"d{i:02d}" for i in range(12)]
    assert not list((tmp_path / "out").glob(".*.tmp"))
    stats = subprocess.run([*KGC, "graph", "stats", "kg", "--json"], cwd=tmp_path, capture_output=True, text=True)
    assert json.loads(stats.stdout)["documents"] == 12
    assert sorted(json.loads((tmp_path / "out" / "_job.json").read_text())["ingested"]["kg"]) == list(range(6))


@pytest.mark.slow
def test_predict_on_ray_writes_what_one_process_writes(tmp_path, deepke):
    from kgcore import ConvertOptions, convert

    records = tmp_path / "test.json"
    sample = tmp_path / "sample.json"
    with (DATASETS / "conll2003" / "test.json").open(encoding="utf-8") as fh:
        sample.write_text("".join(line for line, _ in zip(fh, range(8))), encoding="utf-8")
    convert(sample, records, task="NER", schema=DATASETS / "conll2003" / "schema.json",
            options=ConvertOptions(split="test", language="en"), progress=False)
    plain = subprocess.run([*KGC, "predict", "-i", str(records), "-o", "plain.json", "-q", *ONE_AT_A_TIME], cwd=tmp_path,
                           capture_output=True, text=True, timeout=400)
    assert plain.returncode == 0, plain.stderr[-3000:]
    run_ray(["predict", "-i", str(records), "-o", "ray.json", "--shard-size", "3", "--actors", "2", *ONE_AT_A_TIME],
            tmp_path)
    ours = (tmp_path / "ray.json").read_text().splitlines()
    assert ours == (tmp_path / "plain.json").read_text().splitlines()
    assert sum('"output": "{\\"person\\": []' not in line for line in ours) >= 4  # not all empty
    assert json.loads((tmp_path / "ray.json.meta.json").read_text())["engine"] == "ray"


@pytest.mark.slow
def test_joins_a_running_cluster_by_address(tmp_path):
    docs = corpus(tmp_path / "docs.jsonl", 2)
    ray = str(Path(sys.executable).parent / "ray")
    script = (f'"{ray}" start --head --node-ip-address 127.0.0.1 --port 6399 --num-cpus 2 --include-dashboard false '
              f'--disable-usage-stats >/dev/null && "$@"; status=$?; "{ray}" stop --force >/dev/null; exit $status')
    command = ["unshare", "-rnpfm", "--mount-proc", "--kill-child", "sh", "-c", f"ip link set lo up && {script}",
               "sh", *KGC, "extract", "--engine", "ray", "-q", "--address", "127.0.0.1:6399", "--corpus", str(docs),
               *LABELS, "-o", "out", "--actors", "1"]
    # token authentication is the cluster's business, not kgc's: off inside this sealed namespace
    done = subprocess.run(command, cwd=tmp_path, env={**ray_env(), "RAY_AUTH_MODE": "disabled"}, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [line["id"] for line in shard_lines(tmp_path / "out")] == ["d00", "d01"]


def test_a_malformed_line_stops_the_job_before_any_model_runs_naming_file_and_line(tmp_path):
    docs = corpus(tmp_path / "docs.jsonl", 4)
    lines = docs.read_text().splitlines()
    docs.write_text("\n".join([*lines[:2], '{"id": "d9", "text": "cut', *lines[2:]]) + "\n")
    done = subprocess.run([*KGC, "extract", "--engine", "ray", "--corpus", str(docs), *LABELS, "-o", "out"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert f"{docs}:3: invalid JSON" in done.stderr
    docs.write_text("\n".join([*lines[:3], '{"id": "d9", "body": "no text field"}']) + "\n")
    done = subprocess.run([*KGC, "extract", "--engine", "ray", "--corpus", str(docs), *LABELS, "-o", "out"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert f"{docs}:4: missing or empty text (field 'text')" in done.stderr
    assert not list((tmp_path / "out").glob("part-*"))


@pytest.mark.parametrize("args, message", [
    (["--actors", "2"], "--actors need --engine ray"),
    (["--engine", "ray"], "give -o/--output DIR"),
])
def test_ray_options_are_checked(tmp_path, args, message):
    done = subprocess.run([*KGC, "extract", "Ada lives in Paris.", *LABELS, *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and message in done.stderr, done.stderr


def test_a_folder_made_by_other_settings_is_refused(tmp_path):
    from kgc_ray.job import ShardFolder

    shards = [Shard(0, "a.txt", "text", 0, 1, 2)]
    ShardFolder(tmp_path / "out", settings={"task": "NER", "labels": ["person"]}).open(shards)
    with pytest.raises(InputError, match=r"other settings \(labels\)"):
        ShardFolder(tmp_path / "out", settings={"task": "NER", "labels": ["location"]}).open(shards)


@given(st.text(alphabet="ab .。\n", max_size=400), st.integers(100, 150))
def test_chunks_cover_the_text_in_order_within_the_limit(text, size):
    spans = chunk_spans(text, size)
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    assert all(0 < end - start <= size for start, end in spans if text)


def test_chunks_end_at_sentences_when_they_can():
    text = "Ada Lovelace lived in London. " * 10
    spans = chunk_spans(text, 100)
    assert all(text[start:end].endswith(". ") for start, end in spans[:-1])


def test_corpus_forms_plan_into_shards_with_their_lines(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "a.txt").write_text("one\n\ntwo\nthree\n")
    pq.write_table(pa.Table.from_pylist([{"body": f"row {i}"} for i in range(5)]), tmp_path / "c" / "b.parquet",
                   row_group_size=3)
    with pytest.raises(InputError, match="b.parquet: no column 'text'"):
        plan_shards(corpus_files([tmp_path / "c"]), 2, "text")
    (tmp_path / "c" / "a.txt").rename(tmp_path / "a.txt")
    shards = plan_shards(corpus_files([tmp_path / "a.txt", tmp_path / "c"]), 2, "body")
    assert [(Path(s.path).name, s.line, s.count) for s in shards] == [
        ("a.txt", 1, 2), ("a.txt", 4, 1), ("b.parquet", 1, 2), ("b.parquet", 3, 1), ("b.parquet", 4, 2)]
    assert [r for s in shards for _, r in read_shard(s)] == [
        {"text": "one"}, {"text": "two"}, {"text": "three"}, *({"body": f"row {i}"} for i in range(5))]


def test_a_long_document_is_answered_in_chunks_with_offsets_into_it(tmp_path):
    from kgc_ray.corpus import Fields
    from kgc_ray.workers import ExtractWorker
    from kgcore import GenerationParams, PromptStyle, load_task
    from kgcore.extraction import labels_schema

    task = load_task("NER")
    text = ("Japan began the defence of their Asian Cup title with a lucky 2-1 win against Syria . "
            "But China saw their luck desert them in the second match of the group . ") * 2
    worker = type("Worker", (ExtractWorker,), {"config": {
        "task": "NER", "task_options": {}, "schema": labels_schema(["person", "location"], task), "labels": None,
        "backend": "llamacpp", "backend_options": {}, "language": "en", "split_num": None, "style": PromptStyle(),
        "params": GenerationParams(), "batch_size": 4, "fields": Fields(), "chunk_chars": 100, "triples": True,
        "raw": True, "run": "r", "time": "t"}})()
    try:
        (line,), counts = worker.answer(Shard(0, "docs.jsonl", "jsonl", 0, 1, 1), [(1, {"text": text})])
    finally:
        worker.extractor.close()
    assert line["chunks"] == [list(s) for s in chunk_spans(text, 100)] and len(line["chunks"]) == 4
    assert counts == {"chunks": 4, "parse_failures": line["parse_failures"]} and len(line["raw"]) == 4
    assert "China" in line["result"]["location"] and line["source"] == "docs.jsonl:1"
    assert line["spans"] and all(text[s["start"]:s["end"]] == s["text"] for s in line["spans"])
    assert {s["start"] for s in line["spans"] if s["text"] == "China"} == {i for i in range(len(text))
                                                                            if text.startswith("China", i)}


def test_result_shards_in_parquet_read_back_as_written(tmp_path):
    from kgc_ray.job import ShardFolder

    line = {"id": "d1", "task": "NER", "text": "Ada in Paris.", "result": {"location": ["Paris"]},
            "triples": [["Paris", "type", "location"]], "spans": [{"start": 7, "end": 12, "text": "Paris",
                                                                     "label": "location"}],
            "parse_failures": 0, "provenance": {"run": "r"}, "chunks": [[0, 13]], "source": "a.jsonl:1"}
    folder = ShardFolder(tmp_path, "parquet")
    folder.write(3, json.dumps(line) + "\n")
    assert folder.part(3).name == "part-00003.parquet" and folder.done([Shard(3, "a", "jsonl", 0, 1, 1)]) == {3}
    assert list(folder.read(3)) == [line]


@pytest.mark.slow
def test_the_documented_command_puts_the_sample_corpus_into_a_graph(tmp_path):
    """The kgc part of docs/scale-out.md's one command, on the shipped corpus (JSONL and Parquet)."""
    root = Path(__file__).resolve().parents[1]
    doc = (root / "docs" / "scale-out.md").read_text(encoding="utf-8")
    command = next(line for line in doc.splitlines() if line.startswith("python3 -m venv"))
    extract, stats = [part.strip().split()[1:] for part in command.split("&&") if ".venv/bin/kgc" in part]
    extract[extract.index("docs/examples/corpus")] = str(root / "docs" / "examples" / "corpus")
    run_ray(extract, tmp_path)
    lines = shard_lines(tmp_path / "runs" / "news")
    assert sorted(line["id"] for line in lines) == [f"conll2003-test-doc{i:03d}" for i in range(20)]
    assert {line["source"].split(":")[0].rsplit(".", 1)[1] for line in lines} == {"jsonl", "parquet"}
    counts = subprocess.run([*KGC, *stats, "--json"], cwd=tmp_path, capture_output=True, text=True)
    assert counts.returncode == 0, counts.stderr
    counts = json.loads(counts.stdout)
    assert counts["documents"] == 20 and counts["entities"] >= 20
    summary = json.loads((tmp_path / "runs" / "news" / "_summary.json").read_text())
    assert summary["statements_ingested"] > 0 and summary["documents"] == 20


@pytest.mark.slow
def test_a_model_that_cannot_load_stops_the_job_with_its_own_error(tmp_path):
    docs = corpus(tmp_path / "docs.jsonl", 2)
    done = subprocess.run(isolated([*KGC, "extract", "--engine", "ray", "-q", "--corpus", str(docs), *LABELS,
                                    "-o", "out", "-m", str(tmp_path / "missing.gguf")]),
                          cwd=tmp_path, env=ray_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (f"Error: llamacpp: no GGUF file at '{tmp_path / 'missing.gguf'}' "
                                            "(shard 0; finished shards are kept, a rerun resumes)")


def test_extending_the_commands_twice_changes_nothing():
    from kgc_ray import kgc_register_commands
    from kgcore.cli import cli

    get_host().add_commands(cli)
    before = [(name, list(cli.commands[name].params), cli.commands[name].callback) for name in ("extract", "predict")]
    kgc_register_commands(cli)  # as a second plugin host would
    assert [(name, list(cli.commands[name].params), cli.commands[name].callback)
            for name in ("extract", "predict")] == before
    done = CliRunner().invoke(cli, ["extract", "--actors", "2", "-t", "NER", "-l", "person", "Ada"])
    assert done.exit_code == 2 and "--actors need --engine ray" in done.output
