"""``kgc serve``: an HTTP API (extraction, the knowledge graph, the SPARQL protocol, health and metrics)
and a web page where a person turns text into a graph and looks at it (docs/serve.md).

``pip install 'kgcore[serve]'``. FastAPI and uvicorn load when the server starts.
"""

from kgcore import hookimpl


@hookimpl
def kgc_register_commands(cli):
    from .commands import serve

    cli.add_command(serve)
