"""The ``hf`` backend: a transformers causal LM, optionally with PEFT adapters and bitsandbytes quantization.

Requests are tokenized (the model's own chat template when ``Request.prompt`` is ``None``, else the
prompt text as given), sorted by length and generated in left-padded sub-batches. Greedy decoding
when ``temperature == 0``. JSON-schema constraints use `llguidance` (a transformers logits
processor built here) when it is installed; without it ``supports_json_schema`` is false and
requests' schemas are ignored.

torch, transformers, peft and llguidance are imported only when the backend is constructed.
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from kgcore.backend import Backend, BackendError, Generation, GenerationParams, Request

from .loading import bitsandbytes_config, is_mergeable
from .masks import apply_bitmask, compile_schema, schema_matcher
from .tokens import request_token_ids, split_stops

_DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass
class HFOptions:
    #: Local checkpoint directory or hub name (hub names need network access).
    model: str
    #: Comma-separated PEFT adapter directories; several are stacked (their deltas add up).
    adapter: str = ""
    #: Merge adapters into the weights (faster); quantized models always keep them unmerged.
    merge_adapters: bool = True
    #: Tokenizer directory or name (default: the model's).
    tokenizer: str = ""
    #: auto (the checkpoint's dtype), float32, bfloat16 or float16.
    dtype: str = "auto"
    #: Where the weights go: "" = cpu without CUDA, else auto; or cpu, auto, cuda:0, ...
    device_map: str = ""
    load_in_4bit: bool = False
    load_in_8bit: bool = False
    #: nf4 or fp4 (4-bit only).
    bnb_4bit_quant_type: str = "nf4"
    bnb_4bit_use_double_quant: bool = True
    #: Compute dtype of 4-bit layers: auto (the model dtype, else bfloat16 on CUDA, float32 on CPU) or a dtype.
    bnb_4bit_compute_dtype: str = "auto"
    #: Run model code shipped with the checkpoint (only when you trust it).
    trust_remote_code: bool = False
    #: Most sequences per forward pass; 0 = all requests of one call together.
    batch_size: int = 0
    #: Cap on rows x (longest prompt + max new tokens) per sub-batch; 0 = no cap.
    max_batch_tokens: int = 0
    #: Attention implementation (sdpa, eager, flash_attention_2, ...); "" = transformers' default.
    attn_implementation: str = ""
    #: CPU threads for torch (process-wide); 0 = torch's default (all cores). 1 is faster on a busy machine.
    num_threads: int = 0


def _has_llguidance() -> bool:
    try:
        return importlib.util.find_spec("llguidance") is not None
    except (ImportError, ValueError):
        return False


class HFBackend(Backend):
    name = "hf"
    Options = HFOptions
    supports_json_schema: ClassVar[bool] = _has_llguidance()
    packages = ("torch", "transformers", "peft", "accelerate", "bitsandbytes", "llguidance")

    def __init__(self, options: HFOptions):
        super().__init__(options)
        if options.dtype not in _DTYPES:
            raise BackendError(f"hf: dtype must be one of {', '.join(_DTYPES)}, got '{options.dtype}'")
        if options.load_in_4bit and options.load_in_8bit:
            raise BackendError("hf: load_in_4bit and load_in_8bit exclude each other")
        if options.bnb_4bit_quant_type not in ("nf4", "fp4"):
            raise BackendError(f"hf: bnb_4bit_quant_type must be nf4 or fp4, got '{options.bnb_4bit_quant_type}'")
        # bitsandbytes (imported by peft when installed) warns about an optional kernel download on CPU, and
        # its 8-bit matmul warns at every call that it casts float32 inputs to float16.
        for name in ("bitsandbytes.backends.cpu.ops", "bitsandbytes.autograd._functions"):
            logging.getLogger(name).setLevel(logging.ERROR)
        model_path = Path(options.model).expanduser()
        if not model_path.exists() and (options.model.startswith((".", "/", "~"))
                                        or (str(model_path.parent) != "." and model_path.parent.is_dir())):
            raise BackendError(f"hf: model directory '{options.model}' does not exist")
        import torch
        import transformers

        self._torch = torch
        if options.num_threads > 0:
            torch.set_num_threads(options.num_threads)
        self.adapters = [a.strip() for a in options.adapter.split(",") if a.strip()]
        for adapter in self.adapters:
            if not (Path(adapter) / "adapter_config.json").is_file():
                raise BackendError(f"hf: adapter '{adapter}' is not a PEFT adapter directory (no adapter_config.json)")
        self.tokenizer = self._load_tokenizer(transformers)
        self.model = self._load_model(torch, transformers)
        self.model.eval()
        self.eos_ids = self._eos_ids()
        self._ll_tokenizer = None

    # -- loading --------------------------------------------------------------------------
    def _load_tokenizer(self, transformers):
        source = self.options.tokenizer or self.options.model
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(
                source, trust_remote_code=self.options.trust_remote_code)
        except (OSError, ValueError) as exc:
            raise BackendError(f"hf: cannot load the tokenizer of '{source}': {exc}") from exc
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            if tokenizer.eos_token is None:
                raise BackendError(f"hf: the tokenizer of '{source}' has neither a pad nor an eos token")
            tokenizer.pad_token = tokenizer.eos_token
        return tokenizer

    def _load_model(self, torch, transformers):
        o = self.options
        cuda = torch.cuda.is_available()
        kwargs: dict[str, Any] = {"trust_remote_code": o.trust_remote_code,
                                  "dtype": "auto" if o.dtype == "auto" else getattr(torch, o.dtype),
                                  "device_map": o.device_map or ("auto" if cuda else "cpu")}
        if o.attn_implementation:
            kwargs["attn_implementation"] = o.attn_implementation
        self.quantized = o.load_in_4bit or o.load_in_8bit
        if self.quantized:
            if importlib.util.find_spec("bitsandbytes") is None:
                raise BackendError("hf: load_in_4bit/load_in_8bit need bitsandbytes: pip install bitsandbytes")
            compute = o.bnb_4bit_compute_dtype
            if compute == "auto":
                compute = o.dtype if o.dtype != "auto" else ("bfloat16" if cuda else "float32")
            if compute not in _DTYPES[1:]:
                raise BackendError(f"hf: bnb_4bit_compute_dtype must be auto or a dtype, got '{compute}'")
            kwargs["quantization_config"] = bitsandbytes_config(
                transformers, torch, 4 if o.load_in_4bit else 8, o.bnb_4bit_quant_type, o.bnb_4bit_use_double_quant,
                compute)
        try:
            model = transformers.AutoModelForCausalLM.from_pretrained(o.model, **kwargs)
        except (OSError, ValueError) as exc:
            raise BackendError(f"hf: cannot load model '{o.model}': {exc}") from exc
        if self.adapters:
            model = self._attach_adapters(model)
        return model

    def _attach_adapters(self, model):
        from peft import PeftModel

        if self.options.merge_adapters and not self.quantized and all(map(is_mergeable, self.adapters)):
            # W + d1 + d2 + ...: the same model as keeping them all active, without the per-layer overhead.
            for path in self.adapters:
                model = PeftModel.from_pretrained(model, path).merge_and_unload()
            return model
        names = [f"adapter{i}" for i in range(len(self.adapters))]
        model = PeftModel.from_pretrained(model, self.adapters[0], adapter_name=names[0])
        for name, path in zip(names[1:], self.adapters[1:]):
            model.load_adapter(path, adapter_name=name)
        if len(names) > 1:
            model.base_model.set_adapter(names, inference_mode=True)  # all active: deltas add up
        return model

    def _eos_ids(self) -> list[int]:
        ids: list[int] = []
        configured = getattr(self.model.generation_config, "eos_token_id", None)
        for value in ([configured] if isinstance(configured, int) else list(configured or [])) + [
                self.tokenizer.eos_token_id]:
            if value is not None and value not in ids:
                ids.append(int(value))
        return ids

    # -- requests -> token ids ---------------------------------------------------------------
    def _encode(self, request: Request) -> list[int]:
        if request.prompt is None and not getattr(self.tokenizer, "chat_template", None):
            raise BackendError(f"hf: '{self.options.model}' has no chat template; pass --template NAME")
        return request_token_ids(self.tokenizer, request)

    def _stop_setup(self, stop: Sequence[str]) -> tuple[list[int], list[str]]:
        """Stop strings that are single special tokens join the eos ids; the rest go to ``stop_strings``."""
        ids, strings = split_stops(self.tokenizer, stop)
        return list(dict.fromkeys(self.eos_ids + ids)), strings

    def _chunks(self, order: list[int], lengths: list[int], max_new: int) -> list[list[int]]:
        size, budget = self.options.batch_size or len(order), self.options.max_batch_tokens
        chunks: list[list[int]] = []
        current: list[int] = []
        for index in order:  # ascending length: the last row of a chunk is its longest
            if current and (len(current) >= size or (
                    budget and (len(current) + 1) * (lengths[index] + max_new) > budget)):
                chunks.append(current)
                current = []
            current.append(index)
        if current:
            chunks.append(current)
        return chunks

    # -- generation -------------------------------------------------------------------------
    def generate(self, requests: Sequence[Request], params: GenerationParams) -> list[Generation]:
        if not requests:
            return []
        torch = self._torch
        encoded = [self._encode(r) for r in requests]
        eos_ids, stop_strings = self._stop_setup(params.stop)
        order = sorted(range(len(requests)), key=lambda i: (len(encoded[i]), i))
        results: list[Generation | None] = [None] * len(requests)
        if params.temperature > 0:
            torch.manual_seed(params.seed)
        for chunk in self._chunks(order, [len(e) for e in encoded], params.max_new_tokens):
            schemas = [requests[i].json_schema if params.constrained else None for i in chunk]
            texts = self._generate_chunk([encoded[i] for i in chunk], schemas, params, eos_ids, stop_strings)
            for i, generation in zip(chunk, texts):
                results[i] = generation
        return results  # type: ignore[return-value]

    def _generate_chunk(self, rows: list[list[int]], schemas: list[Any], params: GenerationParams,
                        eos_ids: list[int], stop_strings: list[str]) -> list[Generation]:
        torch = self._torch
        pad = self.tokenizer.pad_token_id
        width = max(len(r) for r in rows)
        input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], dtype=torch.long)
        attention = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], dtype=torch.long)
        device = self.model.device
        kwargs: dict[str, Any] = {
            "input_ids": input_ids.to(device), "attention_mask": attention.to(device),
            "max_new_tokens": params.max_new_tokens, "eos_token_id": eos_ids, "pad_token_id": pad,
            "do_sample": params.temperature > 0}
        if params.temperature > 0:
            kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=0)
        if stop_strings:
            kwargs.update(stop_strings=stop_strings, tokenizer=self.tokenizer)
        if any(s is not None for s in schemas) and self.supports_json_schema:
            from transformers import LogitsProcessorList

            kwargs["logits_processor"] = LogitsProcessorList([_GrammarProcessor(
                self._llg_tokenizer(eos_ids), schemas, width, eos_ids)])
        with torch.inference_mode():
            output = self.model.generate(**kwargs)
        new_tokens = output[:, width:].tolist()
        return [self._finish(tokens, len(row), params, eos_ids, stop_strings)
                for tokens, row in zip(new_tokens, rows)]

    def _finish(self, tokens: list[int], prompt_tokens: int, params: GenerationParams, eos_ids: list[int],
                stop_strings: list[str]) -> Generation:
        pad = self.tokenizer.pad_token_id
        reason = None
        cut = next((k for k, t in enumerate(tokens) if t in eos_ids), None)
        if cut is not None:
            tokens, reason, counted = tokens[:cut], "stop", cut + 1
        else:
            while tokens and tokens[-1] == pad:  # rows that stopped on a stop string are padded after it
                tokens = tokens[:-1]
            counted = len(tokens)
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        hits = [text.find(s) for s in stop_strings if s in text]
        if hits:
            text, reason = text[:min(hits)], "stop"
        if reason is None:
            reason = "length" if counted >= params.max_new_tokens else "stop"
        return Generation(text=text, prompt_tokens=prompt_tokens, completion_tokens=counted, finish_reason=reason)

    def _llg_tokenizer(self, eos_ids: list[int]):
        if self._ll_tokenizer is None:
            import llguidance.hf

            try:
                self._ll_tokenizer = llguidance.hf.from_tokenizer(self.tokenizer, eos_token=eos_ids[0])
            except ValueError as exc:  # slow (non-Rust) tokenizers
                raise BackendError(f"hf: JSON-schema constraints need a fast tokenizer: {exc}; "
                                   "use --no-constrained") from exc
        return self._ll_tokenizer

    # -- metadata ---------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["device"] = str(getattr(self, "model", None) and self.model.device)
        info["model_dtype"] = str(getattr(getattr(self, "model", None), "dtype", ""))
        if self.supports_json_schema:
            from importlib.metadata import version

            info["json_schema"] = f"llguidance {version('llguidance')}"
        return info

    def close(self) -> None:
        model = self.__dict__.pop("model", None)
        self.__dict__.pop("tokenizer", None)
        self._ll_tokenizer = None
        if model is not None:
            del model
            import gc

            gc.collect()
            torch = self._torch
            if torch.cuda.is_available():
                torch.cuda.empty_cache()


class _GrammarProcessor:
    """A transformers logits processor that keeps each row inside its JSON schema (llguidance).

    Rows without a schema pass through. A row's matcher consumes the token chosen at the previous
    step; once the JSON value is complete only eos is allowed. Rows that finished (eos) are left alone.
    The masks of all rows are filled in parallel into one bitmask and applied in place, as vLLM does.
    """

    def __init__(self, ll_tokenizer, schemas: list[Any], prompt_width: int, eos_ids: list[int]):
        import llguidance
        import llguidance.torch

        self.prompt_width, self.eos_ids = prompt_width, eos_ids
        self.matchers: list[Any] = []
        for schema in schemas:
            if schema is None:
                self.matchers.append(None)
                continue
            self.matchers.append(schema_matcher(ll_tokenizer, compile_schema(schema), "hf"))
        self.done = [m is None for m in self.matchers]
        self.executor = llguidance.LLExecutor()
        self.bitmask = llguidance.torch.allocate_token_bitmask(len(schemas), ll_tokenizer.vocab_size)
        self.fill = llguidance.torch.fill_next_token_bitmask_par

    def __call__(self, input_ids, scores):
        step = input_ids.shape[1] - self.prompt_width
        self.bitmask.fill_(-1)  # every token allowed
        rows = []
        for row, matcher in enumerate(self.matchers):
            if self.done[row]:
                continue
            if step > 0:
                token = int(input_ids[row, -1])
                if token in self.eos_ids:
                    self.done[row] = True
                    continue
                if not matcher.consume_token(token):
                    warnings.warn(f"hf: constrained decoding lost track ({matcher.get_error()}); "
                                  "the rest of this answer is unconstrained", stacklevel=2)
                    self.done[row] = True
                    continue
            rows.append((matcher, row))  # a complete answer's mask allows eos alone
        if rows:
            self.fill(self.executor, rows, self.bitmask)
        apply_bitmask(scores, self.bitmask)
        return scores


__all__ = ["HFBackend", "HFOptions"]

