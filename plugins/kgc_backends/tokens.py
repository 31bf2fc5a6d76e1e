"""Token ids for transformers tokenizers, written once for the ``hf`` and ``vllm`` backends and training.

:func:`request_token_ids` is what both backends feed the model for a request, and what
``kgc train`` learns as the prompt, so a trained model sees at prediction time exactly the tokens
it was trained on. :func:`encode_supervised` encodes a named chat template's turns segment by
segment (special-token elements as single ids), as the reference's supervised preprocessing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from kgcore import Request
from kgc_templates.chat import BOS, SpecialToken, TurnTemplate

#: Label id that the loss ignores (``torch.nn.CrossEntropyLoss``'s default).
IGNORE_INDEX = -100


def request_token_ids(tokenizer: Any, request: Request) -> list[int]:
    """The prompt ids of a request: the tokenizer's own chat template over the messages when
    ``request.prompt`` is ``None``, else the rendered prompt plus bos where the tokenizer adds one."""
    if request.prompt is None:
        text = tokenizer.apply_chat_template(list(request.messages), add_generation_prompt=True, tokenize=False)
        return encode_text(tokenizer, text)
    ids = encode_text(tokenizer, request.prompt)
    if tokenizer_bos(tokenizer) is not None and not (ids and ids[0] == tokenizer.bos_token_id):
        ids.insert(0, tokenizer.bos_token_id)
    return ids


def encode_text(tokenizer: Any, text: str) -> list[int]:
    """``text`` as ids, without special tokens added (special-token text inside is still recognised)."""
    inner = getattr(tokenizer, "tokenizer", None)
    if type(inner).__module__.split(".")[0] == "tiktoken":  # Qwen (v1) remote-code tokenizer
        return list(tokenizer.encode(text, allowed_special="all"))
    return list(tokenizer.encode(text, add_special_tokens=False))


def tokenizer_bos(tokenizer: Any) -> str | None:
    """The bos text a prompt starts with for ``tokenizer``, or ``None`` if it adds none
    (bos only when the tokenizer has a bos id and ``add_bos_token`` is not false)."""
    if getattr(tokenizer, "bos_token_id", None) is None or not getattr(tokenizer, "add_bos_token", True):
        return None
    return tokenizer.bos_token or ""


def token_id(tokenizer: Any, text: str) -> int | None:
    """The id of ``text`` as one token of ``tokenizer``, or ``None`` if it is not one."""
    found = tokenizer.convert_tokens_to_ids(text)
    if isinstance(found, list):
        return None
    unk = getattr(tokenizer, "unk_token_id", None)
    if found is None or (unk is not None and found == unk and text != getattr(tokenizer, "unk_token", None)):
        return None
    return found


def split_stops(tokenizer: Any, stop: Sequence[str]) -> tuple[list[int], list[str]]:
    """Stop strings that are single special (or added) tokens become stop ids, since decoded text
    never shows them; the others stay strings."""
    special = set(getattr(tokenizer, "all_special_tokens", []))
    added = getattr(tokenizer, "get_added_vocab", None)
    if callable(added):
        special |= set(added())
    ids, strings = [], []
    for text in stop:
        found = token_id(tokenizer, text) if text in special else None
        if found is not None:
            if found not in ids:
                ids.append(found)
        elif text:
            strings.append(text)
    return ids, strings


def eos_token_id(template: TurnTemplate, tokenizer: Any) -> int:
    """Id of the template's eos (:meth:`TurnTemplate.eos_token`); an error if the tokenizer lacks that token."""
    text = template.eos_token(getattr(tokenizer, "eos_token", None))
    if not template.replace_eos and getattr(tokenizer, "eos_token", None) and tokenizer.eos_token_id is not None:
        return tokenizer.eos_token_id
    found = token_id(tokenizer, text)
    if found is None:
        raise ValueError(f"chat template '{template.name}' ends turns with '{text}', which the tokenizer does not "
                         f"have; add it as a special token (and resize the embeddings) or pick another template")
    return found


def encode_turns(template: TurnTemplate, tokenizer: Any, query: str, response: str, system: str | None = None,
                 history: Iterable[Sequence[str]] = ()) -> list[tuple[list[int], list[int]]]:
    """``(source_ids, target_ids)`` per turn (the reference's ``encode_multiturn``); targets end with eos
    unless ``efficient_eos``."""
    bos_ids = [tokenizer.bos_token_id] if tokenizer_bos(tokenizer) is not None else []
    eos_ids = [] if template.efficient_eos else [eos_token_id(template, tokenizer)]
    turns = template.turns(query, system, history)
    turns[-1] = (turns[-1][0], response)
    out = []
    for segments, answer in turns:
        source: list[int] = []
        for segment in segments:
            if segment is BOS:
                source += bos_ids
            elif isinstance(segment, SpecialToken):
                found = token_id(tokenizer, segment.text)
                if found is None:
                    raise ValueError(f"chat template '{template.name}' needs the special token '{segment.text}', "
                                     "which the tokenizer does not have (wrong template for this model?)")
                source.append(found)
            else:
                source += encode_text(tokenizer, segment)
        out.append((source, (encode_text(tokenizer, answer) if answer else []) + eos_ids))
    return out


def encode_supervised(template: TurnTemplate, tokenizer: Any, query: str, response: str, system: str | None = None,
                      history: Iterable[Sequence[str]] = (), train_on_prompt: bool = False) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)`` of a training example, as the reference's supervised preprocessing
    (without its length cut): prompts masked with :data:`IGNORE_INDEX`, responses and eos learned;
    with ``efficient_eos`` one eos ends the sequence and starts each later turn's labels."""
    if train_on_prompt and template.efficient_eos:
        raise ValueError(f"chat template '{template.name}' (efficient_eos) does not support train_on_prompt")
    eos_id = eos_token_id(template, tokenizer)
    input_ids: list[int] = []
    labels: list[int] = []
    for index, (source, target) in enumerate(encode_turns(template, tokenizer, query, response, system, history)):
        if train_on_prompt:
            mask = list(source)
        elif index and template.efficient_eos:
            mask = [eos_id] + [IGNORE_INDEX] * (len(source) - 1)
        else:
            mask = [IGNORE_INDEX] * len(source)
        input_ids += source + target
        labels += mask + target
    if template.efficient_eos:
        input_ids.append(eos_id)
        labels.append(eos_id)
    return input_ids, labels
