"""The catalog commands: installed plugins and the components they register."""

from __future__ import annotations

import dataclasses
import json

import click

from kgcore import get_host


def _listing(kind: str, options_of: str | None, width: int, default: str | None = None) -> None:
    registry = get_host().registry
    if options_of:
        for field in dataclasses.fields(registry.load(kind, options_of).Options):
            default = field.default if field.default is not dataclasses.MISSING else "(required)"
            click.echo(f"{field.name:<24} {str(field.type):<18} {default!r}")
        return
    for component in registry.components(kind):
        mark = " (default)" if component.name == default else ""
        click.echo(f"{component.name:<{width}} {component.summary}{mark}  [{component.plugin}]")


@click.command()
@click.option("--options", "options_of", default=None, metavar="NAME", help="List one backend's options.")
def backends(options_of):
    """List inference backends."""
    _listing("backend", options_of, 10, get_host().call("kgc_default_backend"))


@click.command()
@click.option("--options", "options_of", default=None, metavar="NAME", help="List one task's options (-T).")
def tasks(options_of):
    """List IE tasks."""
    _listing("task", options_of, 8)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins(as_json):
    """List installed plugins, their hooks, components, load errors and warnings."""
    host = get_host()
    registry = host.registry
    rows = []
    for info in host.plugins.values():
        components = [f"{c.kind.name}:{c.name}" for c in registry.components() if c.plugin == info.name]
        rows.append({"name": info.name, "distribution": info.distribution, "version": info.version,
                     "module": info.module, "hooks": info.hooks, "components": components, "error": info.error,
                     "warnings": info.warnings})
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for row in rows:
        status = f"ERROR: {row['error']}" if row["error"] else f"{len(row['components'])} components"
        dist = f"{row['distribution']} {row['version']}".strip() or "-"
        click.echo(f"{row['name']:<24} {dist:<24} {status}")
        if row["components"]:
            click.echo(f"{'':<24} {', '.join(row['components'])}")
        for warning in row["warnings"]:
            click.echo(f"{'':<24} WARNING: {warning}")


@click.command()
@click.option("--show", "show", default=None, help="Print one instruction text, or a chat template's rendering.")
def templates(show):
    """List instruction templates (TASK.LANGUAGE[.VARIANT]) and chat templates."""
    registry = get_host().registry
    if show and "." in show and not show.endswith((".yaml", ".yml")):  # TASK.LANGUAGE names
        instruction = registry.load("instruction", show)
        suffix = f"\n(with examples: +{instruction.example_suffix!r})" if instruction.example_suffix else ""
        click.echo(instruction.text + suffix)
        return
    if show == "auto":
        click.echo("auto: the model's own chat template (from its tokenizer or GGUF file) renders the instruction")
        return
    if show:
        from kgcore.prompt import load_chat_template

        click.echo(load_chat_template(show).render("{instruction}"))
        return
    click.echo("Instruction templates:")
    for component in registry.components("instruction"):
        click.echo(f"  {component.name:<16} {component.summary}…  [{component.plugin}]")
    click.echo("Chat templates (--template):")
    for component in registry.components("chat_template"):
        click.echo(f"  {component.name:<16} {component.summary}  [{component.plugin}]")
