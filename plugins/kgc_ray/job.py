"""The driver of a Ray job: it plans shards, skips those a folder already holds, sends the rest through a
pool of Ray actors (one model each), writes each shard atomically as it arrives and reports progress and
a summary. A rerun after any crash, ``kill -9`` included, redoes only the shards that were not written."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kgcore import InputError, KGCError

from .corpus import Shard

JOB_FILE = "_job.json"


@dataclass
class Cluster:
    """Where the actors run: a local instance (``address`` ``None``) or a cluster; ``actors`` ``None``:
    as many as the cluster's CPUs (or GPUs, with ``gpus_per_actor``) allow."""

    address: str | None = None
    actors: int | None = None
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0


@dataclass
class ShardFolder:
    """A job's output folder: ``part-00000.jsonl`` (or ``.parquet``) per shard and ``_job.json``, the job's
    settings and what has been ingested into a graph."""

    path: Path
    format: str = "jsonl"
    settings: dict[str, Any] = field(default_factory=dict)

    def open(self, shards: list[Shard]) -> dict[str, Any]:
        """The job's record, made on the first run; a folder made by other settings is refused."""
        self.path.mkdir(parents=True, exist_ok=True)
        job_file = self.path / JOB_FILE
        if job_file.exists():
            job = json.loads(job_file.read_text(encoding="utf-8"))
            changed = sorted(k for k in {*job["settings"], *self.settings}
                             if job["settings"].get(k) != self.settings.get(k))
            if changed:
                raise InputError(f"this folder holds a job with other settings ({', '.join(changed)}); give "
                                 "another --output folder, or delete this one to start again", path=str(self.path))
            return job
        job = {"settings": self.settings, "run": os.urandom(16).hex(),
               "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "shards": len(shards),
               "documents": sum(s.count for s in shards), "ingested": {}}
        self.save(job)
        return job

    def save(self, job: dict[str, Any]) -> None:
        _atomic_write(self.path / JOB_FILE, json.dumps(job, ensure_ascii=False, indent=1) + "\n")

    def part(self, number: int) -> Path:
        return self.path / f"part-{number:05d}.{self.format}"

    def done(self, shards: list[Shard]) -> set[int]:
        return {s.number for s in shards if self.part(s.number).exists()}

    def write(self, number: int, lines: str) -> None:
        if self.format == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            rows = [{k: json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else v
                     for k, v in json.loads(line).items()} for line in lines.splitlines()]
            tmp = self.path / f".{self.part(number).name}.tmp"
            pq.write_table(pa.Table.from_pylist(rows), tmp)
            os.replace(tmp, self.part(number))
        else:
            _atomic_write(self.part(number), lines)

    def read(self, number: int) -> Iterator[dict[str, Any]]:
        if self.format == "parquet":
            import pyarrow.parquet as pq

            for row in pq.read_table(self.part(number)).to_pylist():
                yield {k: json.loads(v) if k in _JSON_COLUMNS and isinstance(v, str) else v for k, v in row.items()}
        else:
            with self.part(number).open(encoding="utf-8") as fh:
                yield from map(json.loads, fh)


_JSON_COLUMNS = {"result", "triples", "spans", "raw", "provenance", "chunks"}


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def run_shards(worker: type, config: dict[str, Any], shards: list[Shard], cluster: Cluster,
               on_shard: Callable[[int, str, dict[str, Any]], None]) -> None:
    """Answer ``shards`` with ``worker`` actors; ``on_shard(number, lines, counts)`` as each one finishes.

    Ray restarts an actor whose process dies and gives its shard to a live one; a kgc error in a worker
    stops the job with that error (a rerun resumes it)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
        from ray.data import ActorPoolStrategy
    except ImportError:
        raise KGCError("--engine ray needs Ray Data: pip install 'kgcore[ray]'") from None
    if not shards:
        return
    started = not ray.is_initialized()
    if started:
        ray.init(address=cluster.address, num_cpus=None if cluster.address else os.cpu_count(),
                 include_dashboard=False, logging_level=logging.ERROR)
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        resources = ray.cluster_resources()
        size = cluster.actors or max(1, int(resources.get("GPU", 0) // cluster.gpus_per_actor if cluster.gpus_per_actor
                                            else resources.get("CPU", 1) // cluster.cpus_per_actor))
        if config.get("backend_options", {}).get("requests_per_second"):  # the limit is the whole pool's
            config["backend_options"]["requests_per_second"] /= size
        actor = type(worker.__name__.replace("Worker", "Actor"), (worker,), {"config": config})  # shipped with it
        items = ray.data.from_items([{"shard": s.to_json()} for s in shards], override_num_blocks=len(shards))
        answered = items.map_batches(actor, batch_size=1, compute=ActorPoolStrategy(size=min(size, len(shards))),
                                     num_cpus=cluster.cpus_per_actor, num_gpus=cluster.gpus_per_actor or None)
        seen: set[int] = set()
        for batch in answered.iter_batches(batch_size=None, prefetch_batches=0):  # each shard as it ends
            for number, lines, counts, error in zip(batch["shard"], batch["lines"], batch["counts"], batch["error"],
                                                    strict=True):
                if error:
                    raise KGCError(f"{error} (shard {int(number)}; finished shards are kept, a rerun resumes)")
                if int(number) not in seen:  # a shard Ray answered twice (a retried call) is written once
                    seen.add(int(number))
                    on_shard(int(number), str(lines), json.loads(str(counts)))
    finally:
        if started:
            ray.shutdown()


class Progress:
    """Documents done, documents/s and time left, on standard error; and the counts for the summary."""

    def __init__(self, label: str, shards: list[Shard], done: set[int], quiet: bool):
        from tqdm import tqdm

        self.sizes = {s.number: s.count for s in shards}
        skipped = sum(self.sizes[n] for n in done)
        self.counts: dict[str, int] = {"documents": sum(self.sizes.values()), "skipped": skipped,
                                       "skipped_shards": len(done), "shards": len(shards)}
        self.start = time.perf_counter()
        self.bar = tqdm(total=self.counts["documents"], initial=skipped, unit=" docs", desc=label, disable=quiet,
                        file=sys.stderr, dynamic_ncols=True)

    def add(self, number: int, counts: dict[str, Any]) -> None:
        for key, value in counts.items():
            if isinstance(value, int):
                self.counts[key] = self.counts.get(key, 0) + value
        self.bar.update(self.sizes[number])

    def close(self) -> dict[str, Any]:
        self.bar.close()
        seconds = time.perf_counter() - self.start
        now = self.counts["documents"] - self.counts["skipped"]
        return {**self.counts, "answered_now": now, "seconds": round(seconds, 3),
                "documents_per_s": round(now / seconds, 3) if seconds else None}
