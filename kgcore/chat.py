"""Chat templates: how an instruction becomes the exact prompt a model was trained on.

A :class:`ChatTemplate` is plain data (``templates/chat/<name>.yaml``, or any YAML file a user
passes by path). It renders text for backends that take strings and encodes token ids for
training, following the same rules, so that train and predict prompts are identical:

* turn 0: ``bos + prefix(system) + sep + prompt(query)`` if the prefix renders non-empty, else
  ``bos + prompt(query)``; turn ``t > 0``: ``sep + bos + prompt(query)``; each response is followed
  by ``eos`` unless ``efficient_eos`` (then a single ``eos`` closes the whole sequence);
* ``llama2_style``: no ``sep``; the system block is folded into the first query
  (``prefix[0].replace("{{system}}", system) + query``) and every turn starts with ``bos``.

Parts of ``prefix``, ``prompt`` and ``sep`` are strings with ``{{system}}``, ``{{query}}`` and
``{{idx}}`` (1-based turn) placeholders, or :class:`SpecialToken` elements that encode as one id.

The template named ``auto`` stands for "the model's own template": a Jinja template read from a
tokenizer or from GGUF metadata and rendered with :func:`render_auto`.

Nothing here imports a heavy library at module level; jinja2 and gguf load on first use. Nothing
mutates a tokenizer: where the reference replaced the tokenizer's eos token, the template computes
the effective eos (:meth:`ChatTemplate.eos_token`) and leaves the tokenizer alone.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, NamedTuple, Union

from .errors import InputError

#: Name of the template that means "the model's own chat template".
AUTO = "auto"
#: The eos text the reference adds when a tokenizer has none.
DEFAULT_EOS = "<|endoftext|>"
#: Label id that the loss ignores (same as ``torch.nn.CrossEntropyLoss``'s default).
IGNORE_INDEX = -100


@dataclass(frozen=True)
class SpecialToken:
    """A special-token element: rendered as its literal text, encoded as one id."""

    text: str

    def __post_init__(self) -> None:
        if not isinstance(self.text, str) or not self.text:
            raise ValueError("a special token element needs a non-empty string")


Part = Union[str, SpecialToken]


class _Bos:
    """Where the bos token goes in a turn (rendered as ``bos`` text, encoded as the bos id)."""

    def __repr__(self) -> str:
        return "BOS"


_BOS = _Bos()


@dataclass(frozen=True)
class ChatTemplate:
    """One chat template. Build it from YAML data with :meth:`from_dict` / :func:`load_chat_template`."""

    name: str
    system: str = ""
    prefix: tuple[Part, ...] = ()
    prompt: tuple[Part, ...] = ("{{query}}",)
    sep: tuple[Part, ...] = ()
    stop_words: tuple[str, ...] = ()
    efficient_eos: bool = False
    replace_eos: bool = False
    use_history: bool = True
    llama2_style: bool = False
    #: ``True`` only for the ``auto`` template: render with the model's own Jinja template.
    auto: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        for name in ("prefix", "prompt", "sep"):
            object.__setattr__(self, name, tuple(_part(p, self.name, name) for p in getattr(self, name)))
        object.__setattr__(self, "stop_words", tuple(self.stop_words))
        if self.replace_eos and not self.stop_words:
            raise ValueError(f"chat template '{self.name}': replace_eos needs at least one stop word")
        if self.llama2_style and (len(self.prefix) != 1 or not isinstance(self.prefix[0], str)):
            raise ValueError(f"chat template '{self.name}': llama2_style needs a prefix of exactly one string")

    @property
    def summary(self) -> str:
        return self.description or f"chat template {self.name}"

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, name: str | None = None, source: str = "") -> ChatTemplate:
        """Build a template from YAML-style data (unknown keys are an error, not ignored)."""
        where = f" in {source}" if source else ""
        if not isinstance(data, Mapping):
            raise InputError(f"a chat template must be a mapping{where}, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown chat template key(s) {', '.join(unknown)}{where}; valid: {', '.join(sorted(known))}")
        values = dict(data)
        values["name"] = str(values.get("name") or name or "")
        if not values["name"]:
            raise InputError(f"chat template without a name{where}")
        for key in ("prefix", "prompt", "sep", "stop_words"):
            if key in values:
                value = values[key]
                if value is None:
                    value = []
                elif isinstance(value, (str, Mapping)):
                    value = [value]
                values[key] = tuple(value)
        if values.get("system") is None:
            values["system"] = ""
        try:
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise InputError(f"bad chat template{where}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """The YAML-style data of this template (inverse of :meth:`from_dict`)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("prefix", "prompt", "sep"):
                value = [{"token": p.text} if isinstance(p, SpecialToken) else p for p in value]
            elif f.name == "stop_words":
                value = list(value)
            out[f.name] = value
        return out

    # -- structure -------------------------------------------------------------------------
    def _check_not_auto(self) -> None:
        if self.auto:
            raise ValueError("the 'auto' chat template is the model's own template: render it with "
                             "kgcore.chat.render_auto() or the tokenizer's apply_chat_template()")

    def _turns(self, query: str, system: str | None, history: Iterable[Sequence[str]]) -> list[tuple[list, str | None]]:
        """Prompt segments (str, SpecialToken or BOS) of each turn, with that turn's response."""
        self._check_not_auto()
        system = self.system if system is None else system
        pairs = [(q, r) for q, r in history] if self.use_history else []
        pairs.append((query, None))
        turns = []
        for idx, (q, r) in enumerate(pairs):
            if self.llama2_style:  # no sep; system folded into the first query; bos on every turn
                if idx == 0:
                    q = self.prefix[0].replace("{{system}}", system) + q
                segments = [_BOS, *_fill(self.prompt, query=q)]
            else:
                if idx == 0:
                    prefix = _fill(self.prefix, system=system)
                    segments = [_BOS, *prefix, *_fill(self.sep)] if prefix else [_BOS]
                else:
                    segments = [*_fill(self.sep), _BOS]
                segments += _fill(self.prompt, query=q, idx=str(idx + 1))
            turns.append((segments, r))
        return turns

    # -- text ------------------------------------------------------------------------------
    def render(self, query: str, system: str | None = None, history: Iterable[Sequence[str]] = (),
               bos: str = "", eos: str = "") -> str:
        """The prompt text for ``query``: what :meth:`encode` tokenizes, with special tokens as text.

        ``system=None`` uses the template's default system text (``""`` means none). ``history``
        holds earlier ``(query, response)`` pairs; the tokenizer's ``eos`` text (or the template's own,
        for ``replace_eos`` templates) follows each earlier response unless ``efficient_eos``. Pass ``bos`` only when the tokenizer really prepends one (see
        :func:`tokenizer_bos`).
        """
        eos = "" if self.efficient_eos else self.eos_token(eos) if (eos or self.replace_eos) else ""
        out = []
        for segments, response in self._turns(query, system, history):
            out += [bos if s is _BOS else s.text if isinstance(s, SpecialToken) else s for s in segments]
            if response is not None:
                out.append(response + eos)
        return "".join(out)

    def messages(self, query: str, system: str | None = None) -> list[dict[str, str]]:
        """OpenAI-style messages for backends that apply a template themselves."""
        system = self.system if system is None else system
        return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": query}]

    # -- eos and stop strings ----------------------------------------------------------------
    def eos_token(self, tokenizer_eos: str | None) -> str:
        """The eos text training and generation must use with this template.

        ``replace_eos`` templates (llama3, qwen) end turns with their first stop word instead of the
        tokenizer's eos; a tokenizer without eos gets ``<|endoftext|>`` (as in the reference).
        """
        if self.replace_eos:
            return self.stop_words[0]
        return tokenizer_eos if tokenizer_eos else DEFAULT_EOS

    def stop_strings(self, tokenizer_eos: str | None = None) -> tuple[str, ...]:
        """Every string at which generation must stop: the effective eos, then the stop words.

        Backends that decode text (llama.cpp, OpenAI-compatible servers) pass these as ``stop``;
        backends with a tokenizer also stop on their ids (:meth:`stop_token_ids`).
        """
        found = [self.eos_token(tokenizer_eos)] if (tokenizer_eos or self.replace_eos) else []
        for word in self.stop_words:
            if word not in found:
                found.append(word)
        return tuple(found)

    def stop_token_ids(self, tokenizer: Any) -> list[int]:
        """Ids of the stop strings that are single tokens of ``tokenizer`` (eos id first)."""
        ids = []
        for text in self.stop_strings(getattr(tokenizer, "eos_token", None)):
            token_id = _token_id(tokenizer, text)
            if token_id is not None and token_id not in ids:
                ids.append(token_id)
        return ids

    # -- token ids ---------------------------------------------------------------------------
    def encode(self, tokenizer: Any, query: str, response: str | None = None, system: str | None = None,
               history: Iterable[Sequence[str]] = ()) -> tuple[list[int], list[int]]:
        """``(prompt_ids, response_ids)`` for one exchange, exactly as the reference's ``encode_oneturn``.

        ``prompt_ids`` hold bos (only if the tokenizer has one and adds it), the prompt (with
        any history turns), special-token elements as single ids. ``response_ids`` are the
        response followed by eos, unless ``efficient_eos`` (then :meth:`encode_supervised` adds
        one eos at the very end). ``response=None`` gives ``[]`` (prediction).
        """
        pairs = self.encode_turns(tokenizer, query, response, system, history)
        prompt_ids: list[int] = []
        for source, target in pairs[:-1]:
            prompt_ids += source + target
        prompt_ids += pairs[-1][0]
        return prompt_ids, (pairs[-1][1] if response is not None else [])

    def encode_turns(self, tokenizer: Any, query: str, response: str | None = None, system: str | None = None,
                     history: Iterable[Sequence[str]] = ()) -> list[tuple[list[int], list[int]]]:
        """``(source_ids, target_ids)`` per turn (the reference's ``encode_multiturn``)."""
        bos_ids = [tokenizer.bos_token_id] if tokenizer_bos(tokenizer) is not None else []
        eos_ids = [] if self.efficient_eos else [self.eos_token_id(tokenizer)]
        turns = self._turns(query, system, history)
        turns[-1] = (turns[-1][0], "" if response is None else response)
        out = []
        for segments, resp in turns:
            source = []
            for s in segments:
                if s is _BOS:
                    source += bos_ids
                elif isinstance(s, SpecialToken):
                    source.append(_special_id(tokenizer, s.text, self.name))
                else:
                    source += _encode_text(tokenizer, s)
            target = _encode_text(tokenizer, resp) if resp else []
            out.append((source, target + eos_ids))
        return out

    def encode_supervised(self, tokenizer: Any, query: str, response: str, system: str | None = None,
                          history: Iterable[Sequence[str]] = (), train_on_prompt: bool = False,
                          ignore_index: int = IGNORE_INDEX) -> tuple[list[int], list[int]]:
        """``(input_ids, labels)`` of a training example, as the reference's supervised preprocessing
        (without its length cut): prompts masked with ``ignore_index``, responses and eos learned;
        with ``efficient_eos`` one eos ends the sequence and starts each later turn's labels."""
        if train_on_prompt and self.efficient_eos:
            raise ValueError(f"chat template '{self.name}' (efficient_eos) does not support train_on_prompt")
        eos_id = self.eos_token_id(tokenizer)
        input_ids: list[int] = []
        labels: list[int] = []
        for idx, (source, target) in enumerate(self.encode_turns(tokenizer, query, response, system, history)):
            if train_on_prompt:
                mask = list(source)
            elif idx != 0 and self.efficient_eos:
                mask = [eos_id] + [ignore_index] * (len(source) - 1)
            else:
                mask = [ignore_index] * len(source)
            input_ids += source + target
            labels += mask + target
        if self.efficient_eos:
            input_ids.append(eos_id)
            labels.append(eos_id)
        return input_ids, labels

    def eos_token_id(self, tokenizer: Any) -> int:
        """Id of :meth:`eos_token` in ``tokenizer``; an error if the tokenizer lacks that token."""
        text = self.eos_token(getattr(tokenizer, "eos_token", None))
        if not self.replace_eos and getattr(tokenizer, "eos_token", None) and tokenizer.eos_token_id is not None:
            return tokenizer.eos_token_id
        token_id = _token_id(tokenizer, text)
        if token_id is None:
            raise ValueError(f"chat template '{self.name}' ends turns with '{text}', which the tokenizer does not "
                             f"have; add it as a special token (and resize the embeddings) or pick another template")
        return token_id


# -- helpers -----------------------------------------------------------------------------------

def _part(value: Any, template: str, where: str) -> Part:
    if isinstance(value, (str, SpecialToken)):
        return value
    if isinstance(value, Mapping) and set(value) == {"token"}:
        return SpecialToken(value["token"])
    raise ValueError(f"'{where}' of chat template '{template}' has {value!r}; "
                     f"each element is a string or {{token: TEXT}}")


def _fill(parts: Sequence[Part], system: str | None = None, query: str | None = None,
          idx: str | None = None) -> list[Part]:
    """Parts with placeholders replaced (first occurrence each, in this order) and empty strings dropped."""
    out: list[Part] = []
    for p in parts:
        if isinstance(p, str):
            if system is not None:
                p = p.replace("{{system}}", system, 1)
            if query is not None:
                p = p.replace("{{query}}", query, 1)
            if idx is not None:
                p = p.replace("{{idx}}", idx, 1)
            if not p:
                continue
        out.append(p)
    return out


def tokenizer_bos(tokenizer: Any) -> str | None:
    """The bos text a template must prepend for ``tokenizer``, or ``None`` if it adds none
    (bos only when the tokenizer has a bos id and ``add_bos_token`` is not false)."""
    if getattr(tokenizer, "bos_token_id", None) is None or not getattr(tokenizer, "add_bos_token", True):
        return None
    return tokenizer.bos_token or ""


def _encode_text(tokenizer: Any, text: str) -> list[int]:
    inner = getattr(tokenizer, "tokenizer", None)
    if type(inner).__module__.split(".")[0] == "tiktoken":  # Qwen (v1) remote-code tokenizer
        return list(tokenizer.encode(text, allowed_special="all"))
    return list(tokenizer.encode(text, add_special_tokens=False))


def _token_id(tokenizer: Any, text: str) -> int | None:
    """The id of ``text`` as one token of ``tokenizer``, or ``None`` if it is not one."""
    token_id = tokenizer.convert_tokens_to_ids(text)
    if isinstance(token_id, list):
        return None
    unk = getattr(tokenizer, "unk_token_id", None)
    if token_id is None or (unk is not None and token_id == unk and text != getattr(tokenizer, "unk_token", None)):
        return None
    return token_id


def _special_id(tokenizer: Any, text: str, template: str) -> int:
    token_id = _token_id(tokenizer, text)
    if token_id is None:
        raise ValueError(f"chat template '{template}' needs the special token '{text}', which the tokenizer "
                         f"does not have (wrong template for this model?)")
    return token_id


# -- loading -----------------------------------------------------------------------------------

def chat_template_from_yaml(path: Any) -> ChatTemplate:
    """Read one template file (a path, or an ``importlib.resources`` file); its name defaults to
    the file's stem."""
    import yaml

    if not hasattr(path, "read_text"):
        path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read chat template: {exc.strerror or exc}", path=str(path)) from None
    except yaml.YAMLError as exc:
        raise InputError(f"chat template is not valid YAML: {exc}", path=str(path)) from None
    return ChatTemplate.from_dict(data, name=Path(path.name).stem, source=str(path))


def load_chat_template(name_or_path: str | os.PathLike[str] | ChatTemplate, registry: Any = None) -> ChatTemplate:
    """A registered template by name (``auto`` included), or a YAML file by path (anything ending in
    ``.yaml``/``.yml`` or containing a path separator)."""
    if isinstance(name_or_path, ChatTemplate):
        return name_or_path
    text = os.fspath(name_or_path)
    if text.endswith((".yaml", ".yml")) or os.sep in text or (os.altsep and os.altsep in text):
        if not Path(text).is_file():
            raise InputError(f"chat template file not found: {text}")
        return chat_template_from_yaml(text)
    if registry is None:
        from .plugins import get_registry

        registry = get_registry()
    template = registry.load("chat_template", text)
    if isinstance(template, Mapping):
        template = ChatTemplate.from_dict(template, name=text)
    if not isinstance(template, ChatTemplate):
        raise InputError(f"chat template '{text}' is a {type(template).__name__}, not a ChatTemplate")
    return template


#: The ``auto`` template: the model's own Jinja chat template.
AUTO_TEMPLATE = ChatTemplate(name=AUTO, auto=True, description="the model's own chat template (tokenizer or GGUF)")


# -- the model's own (Jinja) template ------------------------------------------------------------

@functools.lru_cache(maxsize=16)
def _compile_jinja(source: str) -> Any:
    """Compile like transformers' ``apply_chat_template``: sandboxed, trim/lstrip blocks,
    loop controls, ``{% generation %}`` blocks, a ``tojson`` that does not escape HTML."""
    from datetime import datetime

    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class _Generation(jinja2.ext.Extension):  # ``{% generation %}...{% endgeneration %}`` renders its body
        tags = {"generation"}

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

        def _body(self, caller: Any) -> str:
            return caller()

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None,
               sort_keys: bool = False) -> str:
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    class _Namespace(jinja2.utils.Namespace):  # no underscore attributes (sandbox hardening)
        def __init__(*args: Any, **kwargs: Any) -> None:
            self, args = args[0], args[1:]
            attrs = dict(*args, **kwargs)
            for key in attrs:
                _Namespace._check(key)
            jinja2.utils.Namespace.__init__(self, attrs)

        def __setitem__(self, key: str, value: Any) -> None:
            _Namespace._check(key)
            jinja2.utils.Namespace.__setitem__(self, key, value)

        @staticmethod
        def _check(key: Any) -> None:
            if isinstance(key, str) and key.startswith("_"):
                raise jinja2.exceptions.SecurityError(f"chat templates cannot set namespace attribute {key!r}")

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[_Generation, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    env.globals["namespace"] = _Namespace
    return env.from_string(source)


def render_auto(messages: Sequence[Mapping[str, Any]], chat_template_jinja: str, bos_token: str | None = "",
                eos_token: str | None = "", *, add_generation_prompt: bool = True, **variables: Any) -> str:
    """Render a model's own Jinja chat template (from a tokenizer or GGUF ``tokenizer.chat_template``)
    the way ``transformers``' ``apply_chat_template(..., tokenize=False)`` does."""
    if not chat_template_jinja:
        raise ValueError("this model has no chat template of its own; pick a named template instead of 'auto'")
    template = _compile_jinja(chat_template_jinja)
    context = {"tools": None, "documents": None, **variables}
    if bos_token is not None:
        context["bos_token"] = bos_token
    if eos_token is not None:
        context["eos_token"] = eos_token
    return template.render(messages=[dict(m) for m in messages], add_generation_prompt=add_generation_prompt, **context)


class GGUFChatInfo(NamedTuple):
    """What a GGUF file says about its chat format."""

    chat_template: str | None
    bos_token: str | None
    eos_token: str | None


def read_gguf_chat_template(path: str | os.PathLike[str]) -> GGUFChatInfo:
    """``(chat_template, bos_token, eos_token)`` from a GGUF file's metadata (needs ``gguf``)."""
    path = Path(path)
    stat = path.stat()
    return _read_gguf(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _read_gguf(path: str, mtime_ns: int, size: int) -> GGUFChatInfo:
    try:
        import gguf
    except ModuleNotFoundError as exc:
        from .errors import MissingDependencyError

        raise MissingDependencyError("reading a GGUF chat template needs the 'gguf' package "
                                     "(pip install 'kgcore[hf]' or pip install gguf)") from exc
    reader = gguf.GGUFReader(path)

    def scalar(key: str) -> Any:
        f = reader.fields.get(key)
        return None if f is None else f.contents()

    tokens = reader.fields.get("tokenizer.ggml.tokens")

    def token(key: str) -> str | None:
        idx = scalar(key)
        if idx is None or tokens is None or not 0 <= int(idx) < len(tokens.data):
            return None
        return tokens.contents(int(idx))

    template = scalar("tokenizer.chat_template")
    return GGUFChatInfo(template if isinstance(template, str) else None,
                        token("tokenizer.ggml.bos_token_id"), token("tokenizer.ggml.eos_token_id"))


__all__ = [
    "AUTO", "AUTO_TEMPLATE", "ChatTemplate", "GGUFChatInfo", "IGNORE_INDEX", "SpecialToken",
    "chat_template_from_yaml", "load_chat_template", "read_gguf_chat_template", "render_auto", "tokenizer_bos",
]


def request_token_ids(tokenizer: Any, request: Any) -> list[int]:
    """The prompt token ids of a backend request, exactly as the hf backend sends them and training learns them.

    Without a rendered prompt the tokenizer's own chat template renders the messages; a prompt
    rendered by a named template gets the tokenizer's bos when the tokenizer would add one.
    """
    if request.prompt is None:
        text = tokenizer.apply_chat_template(list(request.messages), add_generation_prompt=True, tokenize=False)
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    ids = list(tokenizer(request.prompt, add_special_tokens=False)["input_ids"])
    bos = tokenizer.bos_token_id
    if bos is not None and getattr(tokenizer, "add_bos_token", True) and not (ids and ids[0] == bos):
        ids.insert(0, bos)
    return ids
