"""``--engine ray`` for ``kgc extract`` and ``kgc predict``: a corpus bigger than one machine, in shards,
through a pool of Ray actors that each hold one model, resumable (docs/scale-out.md).

``pip install 'kgcore[ray]'``. Ray loads only when a job runs on it.
"""

from kgcore import hookimpl


@hookimpl
def kgc_register_commands(cli):
    from .commands import _EXTRACT_OPTIONS, add_engine, extract_job, predict_job

    add_engine(cli.commands["extract"], extract_job, _EXTRACT_OPTIONS)
    add_engine(cli.commands["predict"], predict_job, [])
