"""The hooks this plugin adds to kgc: graph stores and exporters are components of their own kinds."""

from __future__ import annotations

from kgcore.hookspecs import Register, hookspec


@hookspec
def kgc_register_graph_stores(register: Register) -> None:
    """Register graph stores (``kgc_graph.GraphStore`` subclasses): where knowledge graphs live."""


@hookspec
def kgc_register_exporters(register: Register) -> None:
    """Register knowledge-graph exporters (``kgc_graph.Exporter`` subclasses) for ``kgc graph export --format``."""
