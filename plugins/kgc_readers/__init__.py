"""Built-in dataset readers."""

from kgcore import hookimpl


@hookimpl
def kgc_register_readers(register):
    register("jsonl", "kgc_readers.jsonl:read", summary="sample.json lines (DeepKE/IEPile and datasets/ form)")
