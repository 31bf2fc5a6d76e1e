"""What is installed: ``kgc plugins``, ``kgc tasks``, ``kgc backends`` and ``kgc templates``."""

from kgcore import hookimpl


@hookimpl
def kgc_register_commands(cli):
    from .commands import backends, plugins, tasks, templates

    for command in (plugins, tasks, backends, templates):
        cli.add_command(command)
