"""The ``openai`` backend against real HTTP servers: a local llama.cpp server running SmolLM2, and
a small OpenAI-speaking server in this file that injects 429s, 5xx errors and slow answers."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import DATASETS

from kgcore.backend import BackendError, GenerationParams, Request
from kgcore.errors import InputError
from kgcore.jsonl import read_jsonl
from kgcore.backend import load_backend
from kgcore.prediction import record_key

import openai  # noqa: F401,E402  (installed by .ci/setup)

SECRET = "sk-test-7c1f0d9e-NEVER-SHOW-ME"
SCHEMA = {"type": "object", "properties": {"person": {"type": "array", "items": {"type": "string"}, "maxItems": 4}},
          "required": ["person"], "additionalProperties": False}


def _kgc(*args, env=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "kgcore.cli", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def _convert(tmp_path: Path, n: int) -> Path:
    """The first ``n`` CoNLL-2003 test sentences as converted NER test records (via ``kgc convert``)."""
    src = tmp_path / "conll-test.json"
    with (DATASETS / "conll2003" / "test.json").open(encoding="utf-8") as fh:
        src.write_text("".join(next(fh) for _ in range(n)), encoding="utf-8")
    out = tmp_path / "ner-test.jsonl"
    done = _kgc("convert", "-i", src, "-s", DATASETS / "conll2003" / "schema.json", "-t", "NER", "--language", "en",
                "--split", "test", "-o", out, "-q")
    assert done.returncode == 0, done.stderr
    return out


# ---------------------------------------------------------------------------------------------
# A scripted OpenAI-compatible server (stdlib only)
# ---------------------------------------------------------------------------------------------


class FakeOpenAI:
    """Answers ``/v1/chat/completions`` and ``/v1/completions``. Each request takes the next action of
    ``script`` (then ``default``): ``("ok",)``, ``("error", status, headers)`` or ``("slow", seconds)``.
    An answer's text is ``echo:`` + the last user message (or prompt); content ``sleep:S ...`` waits S s."""

    def __init__(self):
        self.lock = threading.Lock()
        self.script: list[tuple] = []
        self.default: tuple = ("ok",)
        self.requests: list[tuple[str, dict, dict]] = []  # (path, headers, body) of every attempt
        self.answered: list[dict] = []  # bodies answered with 200
        self.release = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    action = fake.script.pop(0) if fake.script else fake.default
                if action[0] == "error":
                    payload = {"error": {"message": f"injected {action[1]}", "type": "server_error", "code": None}}
                    return self._send(action[1], payload, action[2] if len(action) > 2 else {})
                if action[0] == "slow" and fake.release.wait(action[1]):
                    return  # test over
                content = body["messages"][-1]["content"] if "messages" in body else body["prompt"]
                if content.startswith("sleep:"):
                    time.sleep(float(content.split()[0][6:]))
                finish = "length" if body.get("max_tokens", 99) < 3 else "stop"
                choice = ({"index": 0, "message": {"role": "assistant", "content": "echo:" + content},
                           "finish_reason": finish} if "messages" in body else
                          {"index": 0, "text": "echo:" + content, "finish_reason": finish, "logprobs": None})
                with fake.lock:
                    fake.answered.append(body)
                self._send(200, {"id": "x", "object": "chat.completion" if "messages" in body else "text_completion",
                                 "created": 0, "model": body.get("model"), "choices": [choice],
                                 "usage": {"prompt_tokens": len(content.split()), "completion_tokens": 3,
                                           "total_tokens": len(content.split()) + 3}})

            def _send(self, status, payload, headers=None):
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for key, value in (headers or {}).items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                if not isinstance(sys.exc_info()[1], ConnectionError):  # timed-out clients hang up: expected
                    super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def attempts(self, path: str = "/v1/chat/completions") -> int:
        return sum(1 for p, _, _ in self.requests if p == path)

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake():
    server = FakeOpenAI()
    yield server
    server.close()


def _backend(fake, **options):
    return load_backend("openai", {"model": "fake-model", "base_url": fake.url, "api_key": SECRET, **options})


def _request(text: str, prompt: str | None = None, schema=SCHEMA) -> Request:
    return Request(({"role": "system", "content": "be brief"}, {"role": "user", "content": text}), prompt, schema)


def test_chat_request_body_usage_and_finish_reason(fake):
    backend = _backend(fake)
    try:
        params = GenerationParams(max_new_tokens=64, stop=("<|im_end|>",), seed=7)
        out = backend.generate([_request("Nadim Ladki"), _request("Japan began")], params)
        short = backend.generate([_request("cut me off")], GenerationParams(max_new_tokens=2))
    finally:
        backend.close()
    assert [g.text for g in out] == ["echo:Nadim Ladki", "echo:Japan began"]
    assert [(g.prompt_tokens, g.completion_tokens, g.finish_reason) for g in out] == [(2, 3, "stop"), (2, 3, "stop")]
    assert short[0].finish_reason == "length"
    path, headers, body = next(r for r in fake.requests if r[2]["messages"][-1]["content"] == "Nadim Ladki")
    assert path == "/v1/chat/completions"
    assert headers["authorization"] == f"Bearer {SECRET}"  # the key is really used (so hiding it means something)
    assert body["model"] == "fake-model" and body["temperature"] == 0.0 and body["seed"] == 7
    assert body["max_tokens"] == 64 and body["stop"] == ["<|im_end|>"]
    assert body["messages"][0] == {"role": "system", "content": "be brief"}
    assert body["response_format"] == {"type": "json_schema",
                                       "json_schema": {"name": "answer", "schema": SCHEMA, "strict": True}}


@pytest.mark.parametrize("mode, style, expected", [
    ("chat", "json_object_schema", {"type": "json_object", "schema": SCHEMA}),
    ("chat", "none", None),
    ("completion", "json_schema", {"type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMA,
                                                                          "strict": True}}),
    ("completion", "json_object_schema", {"type": "json_object", "schema": SCHEMA}),
])
def test_response_format_styles_and_extra_body(fake, mode, style, expected):
    backend = _backend(fake, mode=mode, response_format=style, extra_body='{"top_k": 1}')
    try:
        prompt = "<|im_start|>user\nJapan<|im_end|>\n" if mode == "completion" else None
        out = backend.generate([_request("Japan", prompt=prompt)], GenerationParams())
        backend.generate([_request("Japan", prompt=prompt)], GenerationParams(constrained=False))
    finally:
        backend.close()
    path, _, body = fake.requests[0]
    assert path == f"/v1/{'chat/completions' if mode == 'chat' else 'completions'}"
    assert body.get("response_format") == expected and body["top_k"] == 1
    assert "response_format" not in fake.requests[1][2]  # --no-constrained sends no format
    if mode == "completion":
        assert body["prompt"] == "<|im_start|>user\nJapan<|im_end|>\n" and "messages" not in body
        assert out[0].text == "echo:<|im_start|>user\nJapan<|im_end|>\n"
    assert backend.supports_json_schema is (style != "none")


def test_completion_mode_needs_a_rendered_prompt(fake):
    backend = _backend(fake, mode="completion")
    with pytest.raises(BackendError, match=r"mode=completion.*--template NAME"):
        backend.generate([_request("x")], GenerationParams())
    backend.close()
    assert fake.requests == []  # refused before sending anything


def test_chat_mode_warns_once_that_a_named_template_is_not_sent(fake):
    backend = _backend(fake)
    try:
        with pytest.warns(UserWarning, match="chat mode sends messages") as caught:
            backend.generate([_request("a", prompt="P1"), _request("b", prompt="P2")], GenerationParams())
            backend.generate([_request("c", prompt="P3")], GenerationParams())
    finally:
        backend.close()
    assert len(caught) == 1
    assert sorted(b["messages"][-1]["content"] for _, _, b in fake.requests) == ["a", "b", "c"]


def test_batch_runs_concurrently_and_keeps_order(fake):
    texts = ["sleep:0.6 a", "sleep:0.4 b", "sleep:0.2 c", "d"]
    backend = _backend(fake, concurrency=4)
    try:
        start = time.perf_counter()
        out = backend.generate([_request(t) for t in texts], GenerationParams())
        elapsed = time.perf_counter() - start
    finally:
        backend.close()
    assert [g.text for g in out] == ["echo:" + t for t in texts]
    assert elapsed < 1.0  # sequential would take 1.2 s


def test_requests_per_second_spaces_requests_out(fake):
    backend = _backend(fake, concurrency=4, requests_per_second=5)
    try:
        start = time.perf_counter()
        out = backend.generate([_request(str(i)) for i in range(6)], GenerationParams())
        elapsed = time.perf_counter() - start
    finally:
        backend.close()
    assert [g.text for g in out] == [f"echo:{i}" for i in range(6)]
    assert elapsed >= 1.0  # the sixth request waits five intervals of 0.2 s, though four could run at once


def test_recovers_after_injected_failures(fake):
    fake.script = [("error", 429, {"Retry-After": "0.1"}), ("error", 500, {}), ("error", 429, {"Retry-After": "0.1"})]
    backend = _backend(fake, max_retries=3)
    try:
        start = time.perf_counter()
        out = backend.generate([_request("Nadim Ladki")], GenerationParams())
        elapsed = time.perf_counter() - start
    finally:
        backend.close()
    assert out[0].text == "echo:Nadim Ladki"
    assert fake.attempts() == 4 and len(fake.answered) == 1
    assert all(body == fake.requests[0][2] for _, _, body in fake.requests)  # the same request, resent
    # Retry-After honoured twice (0.1 s), and exponential backoff (1 s minus <= 25 % jitter) after the 500
    assert elapsed >= 0.2 + 0.75


@pytest.mark.parametrize("status", [429, 503])
def test_gives_up_after_the_bound_with_a_clear_message(fake, status):
    fake.default = ("error", status, {"Retry-After": "0.05"})
    backend = _backend(fake, max_retries=2)
    with pytest.raises(BackendError) as caught:
        backend.generate([_request("Nadim Ladki")], GenerationParams())
    backend.close()
    message = str(caught.value)
    assert fake.attempts() == 3
    assert message == (f"openai backend: {fake.url}/chat/completions HTTP {status} (injected {status}) "
                       f"after 3 attempts (max_retries=2)")
    assert SECRET not in message and "\n" not in message


def test_client_errors_are_not_retried(fake):
    fake.default = ("error", 400, {})
    backend = _backend(fake, max_retries=3)
    with pytest.raises(BackendError, match=r"HTTP 400 \(injected 400\) after 1 attempt \(max_retries=3\)"):
        backend.generate([_request("x")], GenerationParams())
    backend.close()
    assert fake.attempts() == 1


def test_per_request_timeout_fires_and_is_retried(fake):
    fake.default = ("slow", 30)
    backend = _backend(fake, timeout=0.5, max_retries=1)
    start = time.perf_counter()
    with pytest.raises(BackendError) as caught:
        backend.generate([_request("Nadim Ladki")], GenerationParams())
    elapsed = time.perf_counter() - start
    backend.close()
    assert str(caught.value) == (f"openai backend: {fake.url}/chat/completions timed out (limit 0.5 s per attempt) "
                                 f"after 2 attempts (max_retries=1)")
    assert fake.attempts() == 2 and fake.answered == []
    assert 1.0 <= elapsed < 5  # two 0.5 s attempts, far less than the server's 30 s

    fake.requests.clear()
    fake.script, fake.default = [("slow", 30)], ("ok",)
    backend = _backend(fake, timeout=0.5, max_retries=1)
    try:
        assert backend.generate([_request("again")], GenerationParams())[0].text == "echo:again"
    finally:
        backend.close()
    assert fake.attempts() == 2


def test_connection_refused_names_endpoint_and_attempts():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    backend = load_backend("openai", {"model": "m", "base_url": f"http://user:pw@127.0.0.1:{port}/v1?token=abc",
                                      "api_key": SECRET, "max_retries": "1"})
    with pytest.raises(BackendError) as caught:
        backend.generate([_request("x")], GenerationParams())
    backend.close()
    message = str(caught.value)
    assert message.startswith(f"openai backend: http://127.0.0.1:{port}/v1/chat/completions connection failed (")
    assert message.endswith("after 2 attempts (max_retries=1)")
    assert "pw" not in message and "abc" not in message and SECRET not in message


def test_api_key_never_in_describe_or_repr(fake, monkeypatch):
    monkeypatch.setenv("KGC_TEST_OPENAI_KEY", SECRET)
    from_env = load_backend("openai", {"model": "m", "base_url": fake.url, "api_key_env": "KGC_TEST_OPENAI_KEY",
                                       "extra_body": '{"top_k": 1, "api_key": "%s"}' % SECRET})
    from_option = _backend(fake)
    try:
        for backend in (from_env, from_option):
            backend.generate([_request("x")], GenerationParams())
            assert SECRET not in json.dumps(backend.describe())
        assert SECRET not in repr(from_option.options)  # api_key has repr=False
        assert from_env.describe()["api_key_source"] == "$KGC_TEST_OPENAI_KEY"
        assert from_env.describe()["extra_body"] == {"top_k": 1}
    finally:
        from_env.close()
        from_option.close()
    assert [h["authorization"] for _, h, _ in fake.requests] == [f"Bearer {SECRET}"] * 2


def test_missing_key_is_a_clear_error_only_for_openai(fake, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(BackendError, match=r"no API key for https://api.openai.com/v1: set \$OPENAI_API_KEY"):
        load_backend("openai", {"model": "gpt-4o-mini"})
    monkeypatch.setenv("OPENAI_BASE_URL", fake.url)  # a local server needs no key: a placeholder is sent
    backend = load_backend("openai", {"model": "m"})
    try:
        backend.generate([_request("x")], GenerationParams())
    finally:
        backend.close()
    assert fake.requests[0][1]["authorization"] == "Bearer sk-no-key-required"
    assert backend.describe()["base_url"] == fake.url and backend.describe()["api_key_source"] == "placeholder"


@pytest.mark.parametrize("pairs, message", [
    ({"mode": "chatty"}, "mode must be one of chat, completion"),
    ({"response_format": "json"}, "response_format must be one of"),
    ({"extra_body": "{top_k: 1}"}, "extra_body is not JSON"),
    ({"concurrency": "0"}, "concurrency must be at least 1"),
])
def test_bad_options_are_input_errors(pairs, message):
    with pytest.raises(InputError, match=message):
        load_backend("openai", {"model": "m", "base_url": "http://127.0.0.1:9/v1", **pairs})


def test_predict_failure_keeps_finished_batches_and_rerun_completes_once(fake, tmp_path):
    records = _convert(tmp_path, 6)
    out = tmp_path / "pred.jsonl"
    args = ["predict", "-i", records, "-o", out, "--backend", "openai", "-m", "fake-model", "-O",
            f"base_url={fake.url}", "-O", "api_key_env=KGC_TEST_OPENAI_KEY", "-O", "max_retries=1",
            "--batch-size", "2", "-q"]
    env = {"KGC_TEST_OPENAI_KEY": SECRET}
    fake.script, fake.default = [("ok",), ("ok",)], ("error", 500, {"Retry-After": "0.05"})
    first = _kgc(*args, env=env)
    assert first.returncode == 1
    assert first.stderr.strip().splitlines()[-1] == (
        f"Error: openai backend: {fake.url}/chat/completions HTTP 500 (injected 500) after 2 attempts (max_retries=1)")
    assert "Traceback" not in first.stderr and SECRET not in first.stdout + first.stderr
    kept = [r for _, r in read_jsonl(out)]
    assert len(kept) == 2 and all(r["output"].startswith("echo:") for r in kept)  # batch 1 is on disk
    assert not Path(f"{out}.meta.json").exists()

    fake.default = ("ok",)
    second = _kgc(*args, env=env)
    assert second.returncode == 0, second.stderr
    final = [r for _, r in read_jsonl(out)]
    inputs = [r for _, r in read_jsonl(records)]
    assert sorted(record_key(r) for r in final) == sorted(record_key(r) for r in inputs)  # each exactly once
    assert all(r["output"] == "echo:" + r["instruction"] for r in final)
    answered = [json.loads(b["messages"][-1]["content"])["input"] for b in fake.answered]
    assert sorted(answered) == sorted(json.loads(r["instruction"])["input"] for r in inputs)  # 6 answers in all
    meta_text = Path(f"{out}.meta.json").read_text(encoding="utf-8")
    meta = json.loads(meta_text)
    assert (meta["resumed_from"], meta["answered_now"], meta["backend"]) == (2, 4, "openai")
    assert meta["completion_tokens"] == 12 and meta["finish_reasons"] == {"stop": 4}
    assert SECRET not in meta_text and SECRET not in second.stdout + second.stderr


# ---------------------------------------------------------------------------------------------
# A real llama.cpp server (llama-cpp-python's) serving SmolLM2-135M-Instruct
# ---------------------------------------------------------------------------------------------

_SERVER_DEPS = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server(smollm2_gguf, tmp_path_factory):
    missing = [name for name in _SERVER_DEPS if importlib.util.find_spec(name) is None]
    if missing:
        pytest.fail(f"llama-cpp-python's server is not installed (missing {', '.join(missing)}); run bash .ci/setup")
    from kgc_backends.default_model import lora_gguf

    port = _free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with log.open("wb") as fh:  # the default model, IE adapter included: its answers are not empty
        proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_gguf), "--host",
                                 "127.0.0.1", "--port", str(port), "--model_alias", "smollm2", "--n_ctx", "2048",
                                 "--n_threads", "2", "--lora_path", str(lora_gguf())],
                                stdout=fh, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=2) as answer:
                    if answer.status == 200 and "smollm2" in answer.read().decode():
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not answer in 90 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield url, log
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def ner_records(tmp_path_factory):
    return _convert(tmp_path_factory.mktemp("conll"), 4)


def _check_answers(out: Path, records: Path) -> dict:
    import jsonschema

    from kgcore import load_task

    task = load_task("NER")
    predictions = [r for _, r in read_jsonl(out)]
    assert sorted(map(record_key, predictions)) == sorted(record_key(r) for _, r in read_jsonl(records))
    for record in predictions:
        items = task.items_from_schema(json.loads(record["instruction"])["schema"])
        jsonschema.validate(json.loads(record["output"]), task.answer_schema(items))
    meta = json.loads(Path(f"{out}.meta.json").read_text(encoding="utf-8"))
    assert meta["backend"] == "openai" and meta["model"] == "smollm2" and meta["answered_now"] == 4
    assert meta["prompt_tokens"] > 4 * 50 and meta["completion_tokens"] >= 4 * 5
    assert sum(meta["finish_reasons"].values()) == 4
    return meta


def _served(log: Path, path: str) -> int:
    return sum(f'"POST {path} HTTP/1.1" 200' in line for line in log.read_text(errors="replace").splitlines())


def test_llama_server_chat_mode_gives_schema_valid_json(llama_server, ner_records, tmp_path):
    url, log = llama_server
    before = _served(log, "/v1/chat/completions")
    out = tmp_path / "chat.jsonl"
    done = _kgc("predict", "-i", ner_records, "-o", out, "--backend", "openai", "-m", "smollm2", "-O",
                f"base_url={url}", "-O", "response_format=json_object_schema", "--max-new-tokens", "160", "-q")
    assert done.returncode == 0, done.stderr
    meta = _check_answers(out, ner_records)
    assert meta["mode"] == "chat" and meta["api_key_source"] == "placeholder"
    assert _served(log, "/v1/chat/completions") - before == 4


def test_llama_server_completion_mode_with_chat_template(llama_server, ner_records, tmp_path):
    url, log = llama_server
    before = _served(log, "/v1/completions")
    out = tmp_path / "completion.jsonl"
    # SmolLM2 speaks ChatML, which is the registered 'qwen' template; llama-cpp-python's server takes
    # grammars (not response_format) on /v1/completions, hence the gbnf style.
    done = _kgc("predict", "-i", ner_records, "-o", out, "--backend", "openai", "-m", "smollm2", "-O",
                f"base_url={url}", "-O", "mode=completion", "-O", "response_format=gbnf", "--template", "qwen",
                "--max-new-tokens", "160", "-q")
    assert done.returncode == 0, done.stderr
    meta = _check_answers(out, ner_records)
    assert meta["mode"] == "completion" and meta["template"] == "qwen"
    assert _served(log, "/v1/completions") - before == 4


def test_llama_server_rejects_json_schema_style_clearly(llama_server):
    url, _ = llama_server
    backend = load_backend("openai", {"model": "smollm2", "base_url": url, "max_retries": "1"})
    with pytest.raises(BackendError, match=rf"^openai backend: {url}/chat/completions HTTP 500 .* after 2 attempts"):
        backend.generate([_request("Nadim Ladki")], GenerationParams(max_new_tokens=8))
    backend.close()


def test_server_and_in_process_llamacpp_agree_on_greedy_answers(llama_server, ner_records, tmp_path, smollm2_gguf):
    """The same GGUF, adapter, template and grammar through HTTP or in-process give the same greedy answers
    (one request at a time in-process, as the server decodes them: batched arithmetic may flip near-ties)."""
    from kgc_backends.default_model import lora_gguf

    url, _ = llama_server
    outputs = {}
    # llama_cpp.server's repeat_penalty defaults to 1.1 (in-process llama.cpp: 1.0), which changes greedy answers
    for name, args in {"server": ["--backend", "openai", "-m", "smollm2", "-O", f"base_url={url}",
                                  "-O", "response_format=json_object_schema",
                                  "-O", 'extra_body={"repeat_penalty": 1.0}'],
                       "in-process": ["--backend", "llamacpp", "-m", str(smollm2_gguf),
                                      "-O", f"lora={lora_gguf()}", "-O", "parallel=0"]}.items():
        out = tmp_path / f"{name}.jsonl"
        done = _kgc("predict", "-i", ner_records, "-o", out, *args, "--max-new-tokens", "160", "-q", timeout=300)
        assert done.returncode == 0, done.stderr
        outputs[name] = {record_key(r): json.loads(r["output"]) for _, r in read_jsonl(out)}
    assert len(outputs["server"]) == 4 and outputs["server"] == outputs["in-process"]
    found = [mention for answer in outputs["server"].values() for mentions in answer.values() for mention in mentions]
    assert len(found) >= 4, outputs  # they agree on entities, not on empty lists
