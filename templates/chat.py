"""Chat templates as data: the turn-based templates of ``chat/<name>.yaml`` (LLaMA-Factory's form).

A :class:`TurnTemplate` is plain data (``chat/<name>.yaml``, or any YAML file a user passes by
path) that renders text; backends with a tokenizer encode the same turns to token ids
(``kgc_backends.tokens``), so that train and predict prompts are identical:

* turn 0: ``bos + prefix(system) + sep + prompt(query)`` if the prefix renders non-empty, else
  ``bos + prompt(query)``; turn ``t > 0``: ``sep + bos + prompt(query)``; each response is followed
  by ``eos`` unless ``efficient_eos`` (then a single ``eos`` closes the whole sequence);
* ``llama2_style``: no ``sep``; the system block is folded into the first query
  (``prefix[0].replace("{{system}}", system) + query``) and every turn starts with ``bos``.

Parts of ``prefix``, ``prompt`` and ``sep`` are strings with ``{{system}}``, ``{{query}}`` and
``{{idx}}`` (1-based turn) placeholders, or :class:`SpecialToken` elements that encode as one id.
The template named ``auto`` stands for "the model's own template", which backends apply.
Nothing mutates a tokenizer: where the reference replaced the tokenizer's eos token, the template
computes the effective eos (:meth:`TurnTemplate.eos_token`) and leaves the tokenizer alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Union

from kgcore import InputError
from kgcore.prompt import AUTO, ChatTemplate

#: The eos text the reference adds when a tokenizer has none.
DEFAULT_EOS = "<|endoftext|>"


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


BOS = _Bos()


@dataclass(frozen=True)
class TurnTemplate(ChatTemplate):
    """One chat template as data. Build it from YAML data with :meth:`from_dict` / :func:`read_yaml`."""

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
    def from_dict(cls, data: Mapping[str, Any], *, name: str | None = None, source: str = "") -> TurnTemplate:
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
            raise ValueError("the 'auto' chat template is the model's own template, which the backend applies")

    def turns(self, query: str, system: str | None, history: Iterable[Sequence[str]]) -> list[tuple[list, str | None]]:
        """Prompt segments (str, :class:`SpecialToken` or :data:`BOS`) of each turn, with its response."""
        self._check_not_auto()
        system = self.system if system is None else system
        pairs = [(q, r) for q, r in history] if self.use_history else []
        pairs.append((query, None))
        turns = []
        for idx, (q, r) in enumerate(pairs):
            if self.llama2_style:  # no sep; system folded into the first query; bos on every turn
                if idx == 0:
                    q = self.prefix[0].replace("{{system}}", system) + q
                segments = [BOS, *_fill(self.prompt, query=q)]
            else:
                if idx == 0:
                    prefix = _fill(self.prefix, system=system)
                    segments = [BOS, *prefix, *_fill(self.sep)] if prefix else [BOS]
                else:
                    segments = [*_fill(self.sep), BOS]
                segments += _fill(self.prompt, query=q, idx=str(idx + 1))
            turns.append((segments, r))
        return turns

    # -- text ------------------------------------------------------------------------------
    def render(self, query: str, system: str | None = None, history: Iterable[Sequence[str]] = (),
               bos: str = "", eos: str = "") -> str:
        """The prompt text for ``query``, special tokens as text.

        ``system=None`` uses the template's default system text (``""`` means none). ``history``
        holds earlier ``(query, response)`` pairs; the tokenizer's ``eos`` text (or the template's own,
        for ``replace_eos`` templates) follows each earlier response unless ``efficient_eos``. Pass
        ``bos`` only when the tokenizer really prepends one.
        """
        eos = "" if self.efficient_eos else self.eos_token(eos) if (eos or self.replace_eos) else ""
        out = []
        for segments, response in self.turns(query, system, history):
            out += [bos if s is BOS else s.text if isinstance(s, SpecialToken) else s for s in segments]
            if response is not None:
                out.append(response + eos)
        return "".join(out)

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

        Backends that decode text pass these as ``stop``; backends with a tokenizer stop on the ids of
        those that are single tokens.
        """
        found = [self.eos_token(tokenizer_eos)] if (tokenizer_eos or self.replace_eos) else []
        for word in self.stop_words:
            if word not in found:
                found.append(word)
        return tuple(found)


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


# -- loading -----------------------------------------------------------------------------------

def read_yaml(path: Any) -> TurnTemplate:
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
    return TurnTemplate.from_dict(data, name=Path(path.name).stem, source=str(path))


#: The ``auto`` template: the model's own chat template, applied by the backend.
AUTO_TEMPLATE = TurnTemplate(name=AUTO, auto=True, description="the model's own chat template (tokenizer or GGUF)")
