"""llama.cpp through llama-cpp-python: GGUF models on CPU or GPU, JSON-schema grammars."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kgcore import InputError
from kgcore.backend import Backend, BackendError, Generation
from kgcore.prompt import UNQUOTABLE

# What llama-cpp-python's JSON-schema-to-grammar converter spells wrong: quotes (the grammar does not parse,
# and llama.cpp crashes on it), backslashes (read as JSON escapes: "a\\b" comes back as "a<backspace>"),
# control characters (llama.cpp aborts while sampling) and characters beyond U+FFFF (dropped).
_UNGRAMMATICAL = UNQUOTABLE
#: How many compiled grammars are kept (the oldest goes first).
GRAMMAR_CACHE = 64


@dataclass(frozen=True)
class LlamaCppOptions:
    model: str = ""  # empty: SmolLM2-135M-Instruct with kgc's IE adapter
    n_ctx: int = 4096
    n_threads: int = 0  # 0: all cores
    n_gpu_layers: int = 0
    n_batch: int = 512
    parallel: int = 8  # greedy requests decoded together (one KV sequence each)
    end_repeats: bool = True  # greedy, constrained: an item that repeats an earlier one of its list ends the list
    lora: str = ""  # a GGUF LoRA adapter; "none" disables the default model's adapter
    lora_scale: float = 1.0
    merge: str = "auto"  # off: the LoRA applied at run time; q8_0 or f16: merged once, cached; auto: q8_0
    #                      for the default model's adapter, off for a LoRA you name
    seed: int = 42


class LlamaCppBackend(Backend):
    """Greedy requests are decoded together (:class:`~kgc_backends.llamacpp_batch.BatchDecoder`: shared
    prompt prefix, llguidance masks, grammar-forced tokens appended unsampled); sampled ones one at a
    time through llama-cpp-python, their JSON-schema constraints as GBNF grammars compiled once per schema.

    Without a named chat template the GGUF's own template (``tokenizer.chat_template``) renders
    the messages, exactly as llama.cpp's server does.
    """

    name = "llamacpp"
    Options = LlamaCppOptions
    supports_json_schema = True
    packages = ("llama_cpp_python",)

    def __init__(self, options: LlamaCppOptions):
        from .lora_merge import MERGE_TYPES

        default_lora = None
        if not options.model:
            from .default_model import base_gguf, lora_gguf

            default_lora = lora_gguf() if options.lora == "" else None
            options = replace(options, model=str(base_gguf()), lora=str(default_lora or ""))
        if options.merge == "auto":
            options = replace(options, merge="q8_0" if default_lora else "off")
        if options.merge != "off" and options.merge not in MERGE_TYPES:
            raise BackendError(f"llamacpp: merge={options.merge!r}: expected auto, off, {' or '.join(MERGE_TYPES)}")
        if options.lora == "none":
            options = replace(options, lora="")
        super().__init__(options)
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise BackendError("llamacpp: llama-cpp-python is missing; run: CMAKE_ARGS=\"-DGGML_NATIVE=OFF "
                               "-DLLAVA_BUILD=OFF\" pip install --no-cache-dir 'kgcore[llamacpp]'") from exc

        if not Path(options.model).is_file():
            raise BackendError(f"llamacpp: no GGUF file at '{options.model}'")
        if options.lora and not Path(options.lora).is_file():
            raise BackendError(f"llamacpp: no LoRA adapter at '{options.lora}'")
        model, lora = options.model, options.lora
        if lora and options.merge != "off":
            from .lora_merge import merged_gguf

            model, lora = str(merged_gguf(model, lora, options.lora_scale, options.merge)), ""
        threads = options.n_threads or os.cpu_count()  # for the prompt too: llama.cpp would take every core
        self.llm = Llama(model_path=model, n_ctx=options.n_ctx, n_batch=options.n_batch, n_threads=threads,
                         n_threads_batch=threads, n_gpu_layers=options.n_gpu_layers,
                         lora_path=lora or None, lora_scale=options.lora_scale, seed=options.seed,
                         verbose=False)
        self._grammars: dict[str, object] = {}
        self._formatter = None
        self._decoder = None

    def _chat_formatter(self):
        if self._formatter is None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            template = self.llm.metadata.get("tokenizer.chat_template")
            if not template:
                raise BackendError("llamacpp: this GGUF has no chat template; pass --template NAME")
            text = lambda token_id: self.llm._model.token_get_text(token_id) if token_id >= 0 else ""
            self._formatter = Jinja2ChatFormatter(template=template, bos_token=text(self.llm.token_bos()),
                                                  eos_token=text(self.llm.token_eos()), add_generation_prompt=True)
        return self._formatter

    def _tokens(self, request) -> tuple[list[int], list[str]]:
        if request.prompt is not None:
            return self.llm.tokenize(request.prompt.encode("utf-8"), add_bos=True, special=True), []
        result = self._chat_formatter()(messages=[dict(m) for m in request.messages])
        stop = [result.stop] if isinstance(result.stop, str) else list(result.stop or [])
        tokens = self.llm.tokenize(result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True)
        return tokens, stop

    def _grammar(self, schema):
        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            from llama_cpp import LlamaGrammar

            bad = next((s for s in _literals(schema) if _UNGRAMMATICAL.search(s)), None)
            if bad is not None:
                raise InputError(f"llamacpp: cannot constrain answers to the label {bad!r}: llama.cpp grammars do "
                                 "not hold quotes, backslashes, control characters or characters beyond U+FFFF; "
                                 "rename it, or decode without constraints (--no-constrained)")

            self._grammars[key] = LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
            if len(self._grammars) > GRAMMAR_CACHE:  # answers that quote the text: a schema per text
                del self._grammars[next(iter(self._grammars))]
        return self._grammars[key]

    def generate(self, requests, params):
        prompts = []
        for request in requests:
            tokens, template_stop = self._tokens(request)
            if len(tokens) >= self.options.n_ctx:
                raise BackendError(f"llamacpp: prompt of {len(tokens)} tokens exceeds n_ctx={self.options.n_ctx}")
            prompts.append((tokens, tuple(dict.fromkeys([*params.stop, *template_stop]))))
        if params.temperature == 0 and self.options.parallel > 0 and prompts:
            if self._decoder is None:
                from .llamacpp_batch import BatchDecoder

                self._decoder = BatchDecoder(self.llm, self.options.n_ctx, self.options.parallel,
                                             self.options.end_repeats)
            return self._decoder.generate([p for p, _ in prompts],
                                          [r.json_schema if params.constrained else None for r in requests],
                                          [stop for _, stop in prompts], params.max_new_tokens)
        return [self._complete(request, tokens, stop, params) for request, (tokens, stop) in zip(requests, prompts)]

    def _complete(self, request, tokens, stop, params) -> Generation:
        """One request through llama-cpp-python (sampled requests, or `parallel=0`)."""
        constrain = params.constrained and request.json_schema is not None
        result = self.llm.create_completion(
            tokens, max_tokens=min(params.max_new_tokens, self.options.n_ctx - len(tokens)),
            temperature=params.temperature, top_p=params.top_p, seed=params.seed, stop=list(stop) or None,
            grammar=self._grammar(request.json_schema) if constrain else None)
        choice, usage = result["choices"][0], result["usage"]
        return Generation(choice["text"], usage["prompt_tokens"], usage["completion_tokens"],
                          choice.get("finish_reason") or "stop")

    def close(self) -> None:
        decoder, self._decoder = getattr(self, "_decoder", None), None
        if decoder is not None:
            decoder.close()
        llm, self.llm = getattr(self, "llm", None), None
        if llm is not None:
            llm.close()


def _literals(schema: Any) -> Iterator[str]:
    """The strings a grammar for ``schema`` spells out: property names, ``enum`` and ``const`` values."""
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "properties" and isinstance(value, dict):
                yield from value
                for child in value.values():
                    yield from _literals(child)
            elif key == "enum" and isinstance(value, list):
                yield from (v for v in value if isinstance(v, str))
            elif key == "const" and isinstance(value, str):
                yield value
            else:
                yield from _literals(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from _literals(item)
