"""JSON-schema token masks with llguidance, shared by the hf and llama.cpp backends."""

from __future__ import annotations

import json
from typing import Any

from kgcore.backend import BackendError

#: Separators of the answers kgc's prompts show and its adapter learnt (``json.dumps``), no free whitespace.
JSON_STYLE = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
#: Lexer fuel for a grammar's start, 50× llguidance's default (about a second of work at most): answers that
#: quote a long text list every span of it.
INITIAL_LEXER_FUEL = 50_000_000


def compile_schema(schema: Any) -> str:
    """The llguidance grammar of a JSON schema (compiling is cheap next to decoding; cache it for reuse)."""
    import llguidance

    return llguidance.LLMatcher.grammar_from_json_schema(json.dumps(schema), defaults=JSON_STYLE)


def schema_matcher(tokenizer, grammar: str, backend: str):
    """A fresh matcher of ``grammar`` over ``tokenizer``; a clear error if llguidance cannot hold the schema."""
    import llguidance

    found = llguidance.LLMatcher(tokenizer, grammar, log_level=0,
                                 limits=llguidance.LLParserLimits(initial_lexer_fuel=INITIAL_LEXER_FUEL))
    if found.is_error():
        raise BackendError(f"{backend}: cannot constrain answers to this JSON schema: {found.get_error()}; "
                           "use --no-constrained")
    return found


def apply_bitmask(scores, bitmask) -> None:
    """Sets the scores of the tokens ``bitmask`` forbids to -inf, in place: llguidance's numpy kernel for
    numpy arrays and float32 CPU tensors (its torch kernel goes through torch.compile, slow to warm up on a
    CPU), its torch kernel elsewhere."""
    import numpy as np

    if isinstance(scores, np.ndarray):
        import llguidance.numpy

        llguidance.numpy.apply_token_bitmask_inplace(scores, bitmask)
        return
    import torch

    if scores.device.type == "cpu" and scores.dtype == torch.float32:
        import llguidance.numpy

        llguidance.numpy.apply_token_bitmask_inplace(scores.numpy(), bitmask.numpy())
    else:
        import llguidance.torch

        llguidance.torch.apply_token_bitmask_inplace(scores, bitmask.to(scores.device, non_blocking=True))
