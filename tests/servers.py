"""Servers the tests start: a free loopback port, ``kgc serve`` in a child process, and namespaces that keep
what a test starts on loopback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest


def isolated(command: list[str]) -> list[str]:
    """``command`` in new user, network, mount and PID namespaces with ``lo`` up; when it dies, so does
    every process it started."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rn", "true"]).returncode:
        pytest.fail("these tests need `unshare -rn` (util-linux, user namespaces) to keep their processes on loopback")
    return ["unshare", "-rnpfm", "--mount-proc", "--kill-child", "sh", "-c", 'ip link set lo up && exec "$@"',
            "sh", *command]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class KgcServer:
    """``kgc serve`` on 127.0.0.1 (the default model unless ``args`` say otherwise), stopped on exit."""

    def __init__(self, store: Path, *args: str, token: str | None = None, startup_s: float = 180):
        self.port, self.token = free_port(), token
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = ["--store", str(store), "--port", str(self.port), *args] + (["--token", token] if token else [])
        self.startup_s = startup_s
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> KgcServer:
        self.log = open(Path(self.args[1]).parent / f"serve-{self.port}.log", "w+", encoding="utf-8")
        self.process = subprocess.Popen([sys.executable, "-m", "kgcore.cli", "serve", *self.args],
                                        stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ})
        deadline = time.monotonic() + self.startup_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"kgc serve exited with {self.process.returncode}: {self.output()}")
            try:
                if self.get("/healthz")[0] == 200:
                    return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"kgc serve did not answer within {self.startup_s} s: {self.output()}")

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log.close()

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-3000:]

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
                timeout: float = 300) -> tuple[int, dict[str, str], bytes]:
        """``(status, headers, body)``; the server's token goes along unless ``headers`` carry another."""
        headers = dict(headers or {})
        if self.token and "Authorization" not in headers:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def get(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        status, headers, body = self.request("GET", path, **kwargs)
        return status, _decoded(headers, body)

    def post(self, path: str, payload: Any, **kwargs: Any) -> tuple[int, Any]:
        status, headers, body = self.request("POST", path, json.dumps(payload).encode(),
                                             {"Content-Type": "application/json", **kwargs.pop("headers", {})},
                                             **kwargs)
        return status, _decoded(headers, body)


def _decoded(headers: dict[str, str], body: bytes) -> Any:
    kind = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
    return json.loads(body) if "json" in kind else body.decode("utf-8", "replace")
