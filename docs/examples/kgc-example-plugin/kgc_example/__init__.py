"""Example kgc plugin: term extraction (``TERM``), its English instruction and a lenient scorer.

This entry module is imported by every ``kgc`` command, so it imports nothing but ``kgcore`` and
names its code as lazy ``"module:attr"`` strings, loaded only when a command uses them.
"""

from kgcore import Instruction, hookimpl


@hookimpl
def kgc_register_tasks(register):
    register("TERM", "kgc_example.task:TERM", summary="term (keyword) extraction by category")


@hookimpl
def kgc_register_instructions(register):
    text = ("You are an expert in term extraction. Extract from the input the terms of each category "
            "defined in the schema; return an empty list for a category with no term. "
            "Answer in JSON string format.")
    register("TERM.en", Instruction("TERM", "en", text, " You may refer to the examples."), summary=text[:60])


@hookimpl
def kgc_register_scorers(register):
    register("lenient", "kgc_example.scorer:LenientF1Scorer",
             summary="F1 ignoring case and extra whitespace")
