"""Greedy decoding of many requests at once on one llama.cpp context.

Every request gets its own sequence id in a unified KV cache, and one ``llama_decode`` call evaluates
a token of every running sequence (matrix-matrix work instead of one matrix-vector pass each). The
prompt prefix that requests share (chat template, instruction, schema) is evaluated once and kept in
sequence 0 across calls; each request copies it. JSON-schema constraints are llguidance matchers over
llama.cpp's vocabulary: their token masks are filled in parallel, and tokens the grammar forces
(``{"person": [``) are appended without being sampled (jump-forward decoding). A list item that
repeats an earlier one ends its list (:mod:`~kgc_backends.repeats`): the answer is rolled back to the
item before it, in the matcher and the KV cache, and ``]`` follows. A sequence that finishes frees its
slot for the next request (continuous batching).
"""

from __future__ import annotations

import ctypes
import json
import warnings
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kgcore.backend import BackendError, Generation

from .llamacpp import GRAMMAR_CACHE
from .masks import apply_bitmask, compile_schema, schema_matcher
from .repeats import ListRepeats

PREFIX_SEQ = 0  # holds the prompt prefix requests share


@dataclass
class _Sequence:
    index: int  # of the request
    seq_id: int
    feed: list[int]  # tokens to evaluate next
    position: int
    budget: int  # new tokens allowed
    matcher: Any = None
    repeats: ListRepeats | None = None  # watches a constrained answer's lists
    stops: tuple[str, ...] = ()
    prompt_tokens: int = 0
    answer: list[int] = field(default_factory=list)


class BatchDecoder:
    """Greedy, optionally grammar-constrained generation of many requests over one llama.cpp model.

    ``llm`` is a loaded ``llama_cpp.Llama``; the decoder makes its own context (``n_ctx`` cells shared
    by up to ``parallel`` sequences) with the same LoRA adapter applied. ``end_repeats=False`` lets
    constrained lists repeat items.
    """

    def __init__(self, llm, n_ctx: int, parallel: int, end_repeats: bool = True):
        import llama_cpp
        from llama_cpp import _internals

        self.lib, self.llm = llama_cpp, llm
        params = llama_cpp.llama_context_params.from_buffer_copy(llm.context_params)  # same arithmetic
        params.n_ctx, params.n_seq_max, params.kv_unified = n_ctx, parallel + 1, True
        self._context = _internals.LlamaContext(model=llm._model, params=params, verbose=False)
        self.ctx = self._context.ctx
        adapter = getattr(llm, "_lora_adapter", None)
        if adapter is not None:
            adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(adapter)
            scales = (ctypes.c_float * 1)(llm.lora_scale)
            if llama_cpp.llama_set_adapters_lora(self.ctx, adapters, 1, scales):
                raise BackendError("llamacpp: cannot apply the LoRA adapter to the batch context")
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.vocab = llama_cpp.llama_model_get_vocab(llm._model.model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)
        self.n_ctx, self.parallel, self.n_batch = n_ctx, parallel, params.n_batch
        self.end_repeats = end_repeats
        self.batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        self.prefix: list[int] = []  # held by PREFIX_SEQ
        self.evaluated = 0  # tokens through llama_decode, for benchmarks
        self._tokenizer = None
        self._executor = None
        self._grammars: dict[str, str] = {}

    # -- grammars ---------------------------------------------------------------------------
    def _matcher(self, schema):
        import llguidance
        import llguidance.llamacpp

        if self._tokenizer is None:
            with warnings.catch_warnings():  # llguidance still calls a llama.cpp function renamed since
                warnings.simplefilter("ignore", DeprecationWarning)
                self._tokenizer = llguidance.llamacpp.lltokenizer_from_vocab(self.vocab)
            self._executor = llguidance.LLExecutor()
        key = json.dumps(schema, sort_keys=True)
        grammar = self._grammars.pop(key, None) or compile_schema(schema)
        self._grammars[key] = grammar  # most recent last
        if len(self._grammars) > GRAMMAR_CACHE:  # answers that quote the text: a grammar per text
            del self._grammars[next(iter(self._grammars))]
        return schema_matcher(self._tokenizer, grammar, "llamacpp")

    # -- the prefix shared by every request -------------------------------------------------
    def _share_prefix(self, prompts: Sequence[list[int]]) -> int:
        """Keep in PREFIX_SEQ the longest prefix all ``prompts`` share (each keeps one token of its own)."""
        common = min(len(p) for p in prompts) - 1
        first = prompts[0]
        for prompt in prompts[1:]:
            common = next((k for k in range(common) if prompt[k] != first[k]), common)
        kept = next((k for k in range(min(common, len(self.prefix))) if self.prefix[k] != first[k]),
                    min(common, len(self.prefix)))
        self.lib.llama_memory_seq_rm(self.memory, PREFIX_SEQ, kept, -1)
        self.prefix = self.prefix[:kept]
        rest = first[kept:common]
        for start in range(0, len(rest), self.n_batch):
            chunk = rest[start:start + self.n_batch]
            self._decode([(PREFIX_SEQ, chunk, kept + start, False)])
        self.prefix = first[:common]
        return common

    # -- llama_decode ----------------------------------------------------------------------
    def _decode(self, entries: list[tuple[int, list[int], int, bool]]) -> list[int]:
        """Evaluates (seq_id, tokens, first position, logits of the last token?) in one call; returns the
        batch rows whose logits were asked for."""
        b = self.batch
        n, rows = 0, []
        for seq_id, tokens, position, want in entries:
            for k, token in enumerate(tokens):
                b.token[n], b.pos[n], b.n_seq_id[n] = token, position + k, 1
                b.seq_id[n][0] = seq_id
                b.logits[n] = want and k == len(tokens) - 1
                n += 1
            if want:
                rows.append(n - 1)
        b.n_tokens = n
        self.evaluated += n
        status = self.lib.llama_decode(self.ctx, b)
        if status != 0:
            raise BackendError(f"llamacpp: llama_decode failed ({status}): the KV cache is full or the batch invalid")
        return rows

    # -- generation ------------------------------------------------------------------------
    def generate(self, prompts: list[list[int]], schemas: list[Any], stops: list[tuple[str, ...]],
                 max_new_tokens: int) -> list[Generation]:
        """Greedy answers to ``prompts`` (token ids), each held to its JSON schema when it has one."""
        shared = self._share_prefix(prompts)
        queue = deque(sorted(range(len(prompts)), key=lambda i: -len(prompts[i])))  # longest first
        free = deque(range(1, self.parallel + 1))
        running: list[_Sequence] = []
        results: list[Generation | None] = [None] * len(prompts)
        reserved = shared  # KV cells promised: the prefix, and each running prompt with its token budget
        try:
            while queue or running:
                while queue and free:
                    i = queue[0]
                    budget = min(max_new_tokens, self.n_ctx - len(prompts[i]))
                    if running and reserved + len(prompts[i]) - shared + budget > self.n_ctx:
                        break
                    queue.popleft()
                    running.append(self._start(i, free.popleft(), prompts[i], shared, budget, schemas[i], stops[i]))
                    reserved += len(prompts[i]) - shared + budget
                still = []
                for seq, token in zip(running, self._choose(running, self._step(running))):
                    reason = self._advance(seq, token)
                    if reason is None:
                        still.append(seq)
                        continue
                    results[seq.index] = self._finish(seq, reason)
                    self.lib.llama_memory_seq_rm(self.memory, seq.seq_id, -1, -1)
                    free.append(seq.seq_id)
                    reserved -= seq.prompt_tokens - shared + seq.budget
                running = still
        finally:  # an error leaves no sequence behind (the shared prefix stays)
            for seq in running:
                self.lib.llama_memory_seq_rm(self.memory, seq.seq_id, -1, -1)
        return results  # type: ignore[return-value]

    def _start(self, index: int, seq_id: int, prompt: list[int], shared: int, budget: int, schema: Any,
               stops: tuple[str, ...]) -> _Sequence:
        """A sequence holding the shared prefix, fed the rest of its prompt and what its grammar forces first."""
        seq = _Sequence(index, seq_id, prompt[shared:], shared, budget, stops=stops, prompt_tokens=len(prompt))
        if schema is not None:
            seq.matcher = self._matcher(schema)
            seq.answer = seq.matcher.compute_ff_tokens()[:budget]
            seq.matcher.consume_tokens(seq.answer)
            seq.feed += seq.answer
            if self.end_repeats:
                seq.repeats = ListRepeats()
                seq.repeats.feed(self.llm.detokenize(seq.answer))
        self.lib.llama_memory_seq_cp(self.memory, PREFIX_SEQ, seq_id, -1, -1)
        return seq

    def _choose(self, running: list[_Sequence], rows: list[int]) -> list[int]:
        """The greedy next token of each sequence, among those its grammar allows."""
        import llguidance.numpy
        import numpy as np

        logits = np.stack([np.ctypeslib.as_array(self.lib.llama_get_logits_ith(self.ctx, row), shape=(self.n_vocab,))
                           for row in rows]).astype(np.float32, copy=True)
        constrained = [(seq.matcher, k) for k, seq in enumerate(running) if seq.matcher is not None]
        if constrained:
            bitmask = llguidance.numpy.allocate_token_bitmask(len(running), self.n_vocab)  # all allowed
            llguidance.numpy.fill_next_token_bitmask_par(self._executor, constrained, bitmask)
            apply_bitmask(logits, bitmask)
        return np.argmax(logits, axis=1).tolist()

    def _step(self, running: list[_Sequence]) -> list[int]:
        """Evaluates every sequence's feed; returns the batch row of each one's logits.

        The last call holds every sequence's last token (and as much before it as fits); what does
        not fit (long new prompts) is evaluated in calls before it.
        """
        room = self.n_batch - len(running)
        early, final = [], []
        for seq in running:
            keep = 1 + min(len(seq.feed) - 1, room)
            room -= keep - 1
            head = seq.feed[:len(seq.feed) - keep]
            for start in range(0, len(head), self.n_batch):
                early.append((seq.seq_id, head[start:start + self.n_batch], seq.position + start, False))
            final.append((seq.seq_id, seq.feed[len(head):], seq.position + len(head), True))
            seq.position += len(seq.feed)
        batch: list[tuple[int, list[int], int, bool]] = []
        size = 0
        for entry in early:
            if batch and size + len(entry[1]) > self.n_batch:
                self._decode(batch)
                batch, size = [], 0
            batch.append(entry)
            size += len(entry[1])
        if batch:
            self._decode(batch)
        return self._decode(final)

    def _advance(self, seq: _Sequence, token: int) -> str | None:
        """Takes the chosen token (and any the grammar then forces); returns why the sequence ends, if it does."""
        if self.lib.llama_vocab_is_eog(self.vocab, token):
            return "stop"
        seq.answer.append(token)
        seq.feed = [token]
        if seq.matcher is not None:
            seq.matcher.consume_token(token)
            if seq.matcher.is_error():
                return "stop"
            new = [token] + self._force(seq)
            while seq.repeats is not None:
                end = seq.repeats.feed(self.llm.detokenize(new))
                if end is None:
                    break
                if not self._end_list(seq, end):  # the grammar keeps this list open (minItems)
                    break
                new = self._force(seq)
            if seq.matcher.is_stopped():
                return "stop"
        if seq.stops and any(s in self._text(seq.answer) for s in seq.stops):
            return "stop"
        if len(seq.answer) >= seq.budget:
            return "length"
        return None

    def _force(self, seq: _Sequence) -> list[int]:
        """Appends the tokens the grammar forces next (within the budget); returns them."""
        forced = seq.matcher.compute_ff_tokens()[:max(0, seq.budget - len(seq.answer))]
        if forced:
            seq.matcher.consume_tokens(forced)
            seq.answer.extend(forced)
            seq.feed.extend(forced)
        return forced

    def _end_list(self, seq: _Sequence, end: int) -> bool:
        """Cuts the answer at byte ``end`` and closes the list there: the matcher and the KV cache drop
        what follows the cut; the cut's last bytes and ``]`` are fed anew. False if the grammar refuses."""
        kept, size = 0, 0
        for token in seq.answer:
            piece = len(self.llm.detokenize([token]))
            if size + piece > end:
                break
            kept, size = kept + 1, size + piece
        text = bytes(seq.repeats.text)
        close = self.llm.tokenize(text[size:end] + b"]", add_bos=False, special=False)
        matcher = seq.matcher.deep_copy()
        matcher.rollback(len(seq.answer) - kept)
        if matcher.validate_tokens(close) != len(close) or len(close) > seq.budget - kept:
            return False
        matcher.consume_tokens(close)
        seq.matcher = matcher
        evaluated = seq.position - seq.prompt_tokens  # answer tokens in the KV cache
        keep = min(kept, evaluated)
        self.lib.llama_memory_seq_rm(self.memory, seq.seq_id, seq.prompt_tokens + keep, -1)
        seq.position = seq.prompt_tokens + keep
        seq.feed = seq.answer[keep:kept] + close
        seq.answer = seq.answer[:kept] + close
        seq.repeats = ListRepeats()
        seq.repeats.feed(text[:end] + b"]")
        return True

    def _text(self, tokens: list[int]) -> str:
        return self.llm.detokenize(tokens).decode("utf-8", errors="ignore")

    def _finish(self, seq: _Sequence, reason: str) -> Generation:
        text = self._text(seq.answer)
        hits = [text.find(s) for s in seq.stops if s in text]
        if hits:
            text, reason = text[:min(hits)], "stop"
        return Generation(text, seq.prompt_tokens, len(seq.answer), reason)

    def close(self) -> None:
        if self.batch is not None:
            self.lib.llama_batch_free(self.batch)
            self.batch = None
        self._context.close()
