"""Hooks as pluggy means them: misspelled hooks are caught, every hook (registration included) goes
through the plugin manager, kinds are checked against their base classes, plugins add kinds, and the
call semantics declared on the specs (firstresult, historic) hold."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

import kgcore
from kgcore import hookimpl
from kgcore.errors import PluginLoadError
from kgcore.hookspecs import hookspec
from kgcore.plugins import PluginHost


class Misspelled:
    """Registers its task through a hook name with a typo: nothing would ever call it."""

    @hookimpl
    def kgc_register_task(self, register):
        register("TYPO", "kgc_tasks.entities:NER")


def test_misspelled_hook_is_an_error_in_strict_mode():
    host = PluginHost(strict=True)
    host.register(Misspelled(), name="typo")
    with pytest.raises(PluginLoadError) as info:
        host.registry
    assert str(info.value) == ("plugin 'typo' (Misspelled): unknown hook 'kgc_register_task' "
                               "(did you mean 'kgc_register_tasks'?)")


def test_misspelled_hook_is_a_warning_row_otherwise(tmp_path):
    site = tmp_path / "site"
    info = site / "kgc_typo-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: kgc-typo\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[kgc]\ntypo = kgc_typo\n")
    (site / "kgc_typo.py").write_text("from kgcore import hookimpl\n\n\n@hookimpl\ndef kgc_register_task(register):\n"
                                      "    register('TYPO', 'kgc_tasks.entities:NER')\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KGC_")}
    env["PYTHONPATH"] = str(site)
    done = subprocess.run([sys.executable, "-m", "kgcore.cli", "plugins"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    row = lines.index(next(l for l in lines if l.startswith("typo ")))
    assert lines[row + 1].split() == ["WARNING:", "unknown", "hook", "'kgc_register_task'", "(did", "you", "mean",
                                      "'kgc_register_tasks'?)"]
    assert "kgc: warning: kgc plugin 'typo': unknown hook 'kgc_register_task'" in done.stderr
    strict = subprocess.run([sys.executable, "-m", "kgcore.cli", "tasks"], cwd=tmp_path,
                            env={**env, "KGC_STRICT_PLUGINS": "1"}, capture_output=True, text=True, timeout=120)
    assert strict.returncode == 1
    assert strict.stderr.strip() == ("Error: plugin 'typo' (kgc_typo): unknown hook 'kgc_register_task' "
                                     "(did you mean 'kgc_register_tasks'?)")


def test_tracing_shows_registration_hooks(tmp_path):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("KGC_")}, "KGC_TRACE_HOOKS": "1"}
    done = subprocess.run([sys.executable, "-m", "kgcore.cli", "tasks"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for hook in ("kgc_register_tasks", "kgc_register_scorers", "kgc_register_commands", "kgc_run_start"):
        assert f"{hook} [hook]" in done.stderr, hook


class NotATask:
    @hookimpl
    def kgc_register_tasks(self, register):
        register("BAD", "kgc_scorers.f1:F1Scorer")


def test_components_are_checked_against_their_kind():
    host = PluginHost.discover()
    host.register(NotATask(), name="bad")
    with pytest.raises(PluginLoadError, match=r"task 'BAD' of plugin 'bad' is <class 'kgc_scorers.f1.F1Scorer'>, "
                                              r"not a subclass of kgcore.task.Task"):
        host.registry.load("task", "BAD")
    assert host.registry.load("task", "NER").name == "NER"  # the others still load


@hookspec
def kgc_register_glossaries(register):
    """Register glossaries (the spec of a kind that a plugin adds)."""


class Glossary:
    """A plugin that owns a kind (``glossary``); another plugin fills it."""

    @hookimpl
    def kgc_add_kinds(self, add):
        add("glossary", kgc_register_glossaries, dict, "instance")


class Terms:
    @hookimpl
    def kgc_register_glossaries(self, register):
        register("chemistry", {"H2O": "water"})


def test_a_plugin_adds_a_kind_that_others_fill():
    host = PluginHost(strict=True)
    host.register(Terms(), name="terms")  # before the kind exists: checked once everything is loaded
    host.register(Glossary(), name="glossary")  # kgc_add_kinds is historic: a late plugin still takes part
    assert host.registry.load("glossary", "chemistry") == {"H2O": "water"}
    assert [c.plugin for c in host.registry.components("glossary")] == ["terms"]


def test_default_backend_is_the_first_answer():
    host = PluginHost.discover()
    assert host.call("kgc_default_backend") == "llamacpp"

    class Mine:
        @hookimpl(tryfirst=True)
        def kgc_default_backend(self):
            return "openai"

    host.register(Mine(), name="mine")
    assert host.call("kgc_default_backend") == "openai"


def test_commands_reach_plugins_registered_later():
    host = PluginHost()
    group = click.Group("kgc")
    host.add_commands(group)

    class Late:
        @hookimpl
        def kgc_register_commands(self, cli):
            cli.add_command(click.Command("hello", callback=lambda: None))

    host.register(Late(), name="late")
    assert "hello" in group.commands


class Recorder:
    def __init__(self):
        self.calls: list[tuple] = []

    @hookimpl
    def kgc_run_start(self, command, options):
        self.calls.append(("start", command, sorted(options)))

    @hookimpl
    def kgc_run_end(self, command, result, error):
        self.calls.append(("end", command, type(result).__name__, type(error).__name__))


def test_run_hooks_fire_once_around_api_calls(deepke, tmp_path):
    host = PluginHost.discover()
    recorder = Recorder()
    host.register(recorder, name="recorder")
    kgcore.convert(deepke / "NER" / "sample.json", tmp_path / "t.json", task="NER", schema=deepke / "NER" / "schema.json",
                   options=kgcore.ConvertOptions(split="test"), progress=False, host=host)
    with pytest.raises(kgcore.InputError):
        kgcore.evaluate(tmp_path / "t.json", progress=False, host=host)  # test records hold no output yet
    assert [c[:2] for c in recorder.calls] == [("start", "convert"), ("end", "convert"),
                                               ("start", "evaluate"), ("end", "evaluate")]
    assert recorder.calls[1][2:] == ("ConvertStats", "NoneType")
    assert recorder.calls[3][2:] == ("NoneType", "InputError")


RECORDER = '''import json, os
from kgcore import hookimpl

@hookimpl
def kgc_run_start(command, options):
    with open(os.environ["RUNS"], "a") as fh:
        fh.write(json.dumps(["start", command]) + "\\n")

@hookimpl
def kgc_run_end(command, result, error):
    with open(os.environ["RUNS"], "a") as fh:
        fh.write(json.dumps(["end", command, error is None]) + "\\n")
'''


@pytest.mark.parametrize("args, command", [(["tasks"], "tasks"), (["backends", "--options", "hf"], "backends"),
                                           (["merge", "--base", "x", "--adapter", "."], "merge")])
def test_run_hooks_fire_for_every_command(args, command, tmp_path):
    site = tmp_path / "site"
    info = site / "kgc_runs-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: kgc-runs\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[kgc]\nruns = kgc_runs\n")
    (site / "kgc_runs.py").write_text(RECORDER)
    runs = tmp_path / "runs.jsonl"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("KGC_")}, "PYTHONPATH": str(site),
           "RUNS": str(runs)}
    done = subprocess.run([sys.executable, "-m", "kgcore.cli", *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    calls = [json.loads(line) for line in runs.read_text().splitlines()]
    assert calls == [["start", command], ["end", command, done.returncode == 0]], done.stderr


def test_hook_specs_declare_call_semantics():
    pm = PluginHost().pm
    assert pm.hook.kgc_default_backend.spec.opts["firstresult"]
    assert pm.hook.kgc_register_commands.spec.opts["historic"]
    assert pm.hook.kgc_add_kinds.spec.opts["historic"]
    assert not pm.hook.kgc_postprocess_prediction.spec.opts["firstresult"]
    assert Path(kgcore.hookspecs.__file__).name == "hookspecs.py"
