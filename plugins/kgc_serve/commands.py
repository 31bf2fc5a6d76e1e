"""``kgc serve``: the HTTP API and the web page over one backend and one graph store."""

from __future__ import annotations

import click

from kgcore.cli import backend_options, make_backend, prompt_and_params


@click.command()
@click.option("--store", default="kg", show_default=True,
              help="The graph: a folder (an embedded store, created when missing) or a SPARQL endpoint URL.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; another than loopback needs --token or --no-auth.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--token", envvar="KGC_SERVE_TOKEN", default=None,
              help="Bearer token every API call must carry (env KGC_SERVE_TOKEN).")
@click.option("--no-auth", is_flag=True, help="Serve a non-loopback address without a token.")
@click.option("--allow-update", is_flag=True, help="Let /sparql run SPARQL updates.")
@click.option("--cors-origin", "cors_origins", multiple=True, metavar="ORIGIN",
              help="Let a web page from ORIGIN call the API (repeatable; none by default).")
@click.option("--max-body-bytes", type=click.IntRange(min=1), default=1_000_000, show_default=True)
@click.option("--max-text-chars", type=click.IntRange(min=1), default=20_000, show_default=True)
@click.option("--max-texts", type=click.IntRange(min=1), default=32, show_default=True,
              help="Texts in one extraction request.")
@click.option("--queue", type=click.IntRange(min=1), default=8, show_default=True,
              help="Extraction requests waiting or running at once; more get 503 with Retry-After.")
@backend_options
def serve(store, host, port, token, no_auth, allow_update, cors_origins, max_body_bytes, max_text_chars, max_texts,
          queue, backend, model, backend_option, template, system, max_new_tokens, temperature, constrained,
          quote, batch_size):
    """Serve the web page and the HTTP API (extract, graph, /sparql, /healthz, /metrics; OpenAPI at /docs)."""
    from .service import ServeConfig, is_loopback

    if token and no_auth:
        raise click.UsageError("give --token or --no-auth, not both")
    if not is_loopback(host) and not (token or no_auth):
        raise click.UsageError(f"--host {host} is reachable from other machines: give --token TOKEN (or, on a "
                               "network you trust, --no-auth)")
    config = ServeConfig(store=store, host=host, port=port, token=token or None, allow_update=allow_update,
                         max_body_bytes=max_body_bytes, max_text_chars=max_text_chars, max_texts=max_texts,
                         queue=queue, cors_origins=tuple(cors_origins))
    style, params = prompt_and_params(template, system, max_new_tokens, temperature, constrained, quote)
    run(config, lambda: make_backend(backend, model, backend_option), style, params, batch_size)


def run(config, backend_factory, style, params, batch_size: int = 8) -> None:
    """Open the store, load the backend once, and serve until interrupted."""
    import uvicorn
    from kgc_graph import Graph

    from kgcore import get_host

    from .app import create_app
    from .service import Service

    graph = Graph.open(config.store)
    try:
        engine = backend_factory()
    except BaseException:
        graph.close()
        raise
    service = Service(config, engine, graph, get_host(), style, params, batch_size=batch_size)
    try:
        described = engine.describe()
        shown = f"[{config.host}]" if ":" in config.host else config.host
        click.echo(f"kgc serve: http://{shown}:{config.port}/  (backend {described.get('backend')}, model "
                   f"{described.get('model')}, graph {config.store}; API docs at /docs)", err=True)
        uvicorn.run(create_app(service), host=config.host, port=config.port, log_level="warning",
                    server_header=False, timeout_keep_alive=5, limit_concurrency=64)
    finally:
        service.close()
