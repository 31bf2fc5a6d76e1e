"""Chat templates: exact prompts (hand-written from the reference table), the ``auto`` template as
llama.cpp and transformers apply it to a real GGUF model, and token ids against a real tokenizer."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import pytest

from kgc_backends.tokens import IGNORE_INDEX, encode_supervised, encode_turns, split_stops, tokenizer_bos

from kgc_templates.chat import SpecialToken, TurnTemplate

from kgcore.prompt import AUTO, load_chat_template
from kgcore.errors import InputError, UnknownComponentError
from kgcore.jsonl import read_jsonl
from kgcore.plugins import get_host

from conftest import DEEPKE

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_DIR = ROOT / "templates" / "chat"
REFERENCE_NAMES = {
    "alpaca", "aquila", "baichuan", "baichuan2", "belle", "bluelm", "chatglm2", "chatglm3", "deepseek", "default",
    "falcon", "intern", "llama2", "llama2_zh", "llama3", "llama3_zh", "mistral", "openba", "openchat", "qwen",
    "starchat", "vanilla", "vicuna", "xverse", "yayi", "zephyr", "ziya",
}


def first_instruction(task: str = "NER") -> str:
    _, record = next(iter(read_jsonl(DEEPKE / task / "test.json")))
    return record["instruction"]


@pytest.fixture(scope="module")
def registry():
    return get_host().registry


def template(name: str) -> TurnTemplate:
    return load_chat_template(name)


# -- exact strings ---------------------------------------------------------------------------

def test_oneke_prompt_llama2_zh():
    instruction = first_instruction()
    assert json.loads(instruction)["schema"] == ["组织机构", "地理位置", "人物"]  # a real converted record
    expected = ("<s>[INST] <<SYS>>\nYou are a helpful assistant. 你是一个乐于助人的助手。\n<</SYS>>\n\n"
                + instruction + " [/INST]")
    assert template("llama2_zh").render(instruction, bos="<s>") == expected


def test_reference_strings_by_hand():
    q = first_instruction("RE")
    assert template("qwen").render(q) == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n" + q + "<|im_end|>\n<|im_start|>assistant\n")
    assert template("alpaca").render(q) == (
        "Below is an instruction that describes a task. Write a response that appropriately completes the request."
        "\n\n### Instruction:\n" + q + "\n\n### Response:\n")
    assert template("llama3").render(q, bos="<|begin_of_text|>") == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\n" + q + "<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert template("vanilla").render(q) == q
    assert template("vanilla").render(q, system="ignored", history=[("a", "b")]) == q  # no system, no history
    assert template("chatglm3").render(q) == (
        "[gMASK]sop<|system|>\nYou are ChatGLM3, a large language model trained by Zhipu.AI. "
        "Follow the user's instructions carefully. Respond using markdown.<|user|>\n" + q + "<|assistant|>")


def test_system_history_and_turn_rules():
    # an empty system drops the prefix and its sep; a given system replaces the default
    assert template("alpaca").render("Q", system="") == "### Instruction:\nQ\n\n### Response:\n"
    assert template("default").render("Q", system="S") == "S\nHuman: Q\nAssistant:"
    # turn t>0: sep + bos + prompt; {{idx}} counts turns from 1; eos after each earlier response
    assert template("chatglm2").render("Q", history=[("q1", "a1")], eos="</s>") == (
        "[gMASK]sop\n\n[Round 1]\n\n问：q1\n\n答：a1\n\n[Round 2]\n\n问：Q\n\n答：")  # efficient_eos: no eos
    assert template("vicuna").render("Q", system="S", history=[("q1", "a1")], bos="<s>", eos="</s>") == (
        "<s>SUSER: q1 ASSISTANT:a1</s><s>USER: Q ASSISTANT:")
    assert template("mistral").render("Q", history=[("q1", "a1")], bos="<s>", eos="</s>") == (
        "<s>[INST] q1 [/INST]a1</s> <s>[INST] Q [/INST]")
    # llama2 style: no sep, system folded into the first query only, bos on every turn
    assert template("llama2").render("Q", system="S", history=[("q1", "a1")], bos="<s>", eos="</s>") == (
        "<s>[INST] <<SYS>>\nS\n<</SYS>>\n\nq1 [/INST]a1</s><s>[INST] Q [/INST]")
    # replace_eos: the template's own eos ends earlier turns, whatever the tokenizer's eos is; an empty
    # system still renders llama3's system header (its prefix has text besides {{system}})
    assert template("llama3").render("Q", system="", history=[("q1", "a1")], eos="</s>") == (
        "<|start_header_id|>system<|end_header_id|>\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nq1<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
        "a1<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nQ<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_long_system_texts_are_exact():
    llama2 = template("llama2").system
    assert llama2.startswith("You are a helpful, respectful and honest assistant. Always answer as helpfully as "
                             "possible, while being safe. Your answers should not include any harmful, unethical, ")
    assert "positive in nature.\n\nIf a question does not make any sense" in llama2
    assert llama2.endswith("If you don't know the answer to a question, please don't share false information.")
    assert "Co.,Ltd. Always answer as helpfully as possible, while being safe.  Your answers" in template("yayi").system
    assert template("deepseek").system.endswith("and other non-computer science questions, you will refuse to answer.")
    assert template("deepseek").sep == ("\n", SpecialToken("<|EOT|>"), "\n\n")


def test_stop_strings_and_eos():
    assert template("qwen").stop_strings("<|endoftext|>") == ("<|im_end|>",)  # replace_eos
    assert template("qwen").eos_token("<|endoftext|>") == "<|im_end|>"
    assert template("llama3").stop_strings(None) == ("<|eot_id|>",)
    assert template("chatglm3").stop_strings("</s>") == ("</s>", "<|user|>", "<|observation|>")
    assert template("vanilla").stop_strings("</s>") == ("</s>",)
    assert template("vanilla").eos_token(None) == "<|endoftext|>"
    assert template("aquila").stop_strings("</s>") == ("</s>",)


# -- every registered template -------------------------------------------------------------------

def test_every_reference_template_is_registered_from_its_file(registry):
    names = set(registry.names("chat_template"))
    assert names >= REFERENCE_NAMES | {AUTO}
    assert {p.stem for p in TEMPLATE_DIR.glob("*.yaml")} == REFERENCE_NAMES
    for name in REFERENCE_NAMES:
        assert registry.load("chat_template", name) == load_chat_template(TEMPLATE_DIR / f"{name}.yaml")


@pytest.mark.parametrize("name", sorted(REFERENCE_NAMES))
def test_every_template_renders(name):
    t = template(name)
    assert t.name == name and not t.auto
    text = t.render("QUERY-TEXT", history=[("EARLIER", "ANSWER")], bos="<BOS>", eos="<EOS>")
    assert text.count("QUERY-TEXT") == 1 and "{{" not in text
    assert text.startswith("<BOS>")
    assert ("EARLIER" in text) == t.use_history
    tokens = [p.text for p in (*t.prefix, *t.prompt, *t.sep) if isinstance(p, SpecialToken)]
    assert all(tok in text for tok in tokens)
    if t.llama2_style:
        assert text.count("<BOS>") == (2 if t.use_history else 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.system = "changed"  # type: ignore[misc]


def test_auto_is_registered_and_refuses_plain_rendering(registry):
    auto = load_chat_template(AUTO)
    assert auto.auto
    with pytest.raises(ValueError, match="the backend applies"):
        auto.render("Q")


def test_template_from_a_file_path(tmp_path, registry):
    path = tmp_path / "mine.yaml"
    path.write_text('system: "Be brief."\nprefix: ["{{system}}"]\nprompt: [{token: "<u>"}, "{{query}}", {token: "<a>"}]\n'
                    'sep: ["\\n"]\nstop_words: ["<a>"]\nefficient_eos: true\n', encoding="utf-8")
    t = load_chat_template(str(path))
    assert t.name == "mine" and t.efficient_eos
    assert t.render("Q") == "Be brief.\n<u>Q<a>"
    assert load_chat_template(path) == t
    bad = tmp_path / "bad.yaml"
    bad.write_text("prompt: ['{{query}}']\nstopwords: []\n", encoding="utf-8")
    with pytest.raises(InputError, match="stopwords"):
        load_chat_template(bad)
    with pytest.raises(InputError, match="not found"):
        load_chat_template(str(tmp_path / "missing.yaml"))
    with pytest.raises(UnknownComponentError, match="qwen"):
        load_chat_template("qwne")


# -- a real model: SmolLM2's GGUF and its tokenizer ------------------------------------------------



@pytest.fixture(scope="session")
def gguf_path(smollm2_gguf) -> Path:
    return smollm2_gguf


@pytest.fixture(scope="session")
def smol_tokenizer(gguf_path):
    import transformers

    return transformers.AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)


@pytest.fixture(scope="session")
def smol_tokenizer_all_tokens(smol_tokenizer):
    """A copy of the tokenizer that also knows every special token of every template."""
    tok = copy.deepcopy(smol_tokenizer)
    registry = get_host().registry
    extra = sorted({p.text for n in REFERENCE_NAMES for t in [registry.load("chat_template", n)]
                    for p in (*t.prefix, *t.prompt, *t.sep) if isinstance(p, SpecialToken)}
                   | {w for n in REFERENCE_NAMES for w in registry.load("chat_template", n).stop_words})
    tok.add_special_tokens({"additional_special_tokens": extra})
    return tok


def conversations() -> list[list[dict[str, str]]]:
    q = first_instruction()
    return [
        [{"role": "user", "content": q}],
        [{"role": "system", "content": "You are a helpful assistant. 你是一个乐于助人的助手。"},
         {"role": "user", "content": q}],
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
         {"role": "user", "content": first_instruction("EE")}],
    ]


@pytest.mark.slow
def test_auto_is_the_same_prompt_in_llama_cpp_and_transformers(gguf_path, smol_tokenizer):
    """``auto``: llama.cpp renders the GGUF's own Jinja template as transformers renders the tokenizer's."""
    from kgcore.backend import load_backend

    backend = load_backend("llamacpp", {"model": str(gguf_path), "n_ctx": "512"})
    try:
        for messages in conversations():
            ours = backend._chat_formatter()(messages=messages).prompt
            theirs = smol_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            assert ours == theirs
    finally:
        backend.close()
    assert ours.endswith("<|im_start|>assistant\n")


def _split(ids: list[int], labels: list[int]) -> tuple[list[int], list[int]]:
    """``(prompt_ids, learned_ids)`` of a training example."""
    start = next(i for i, label in enumerate(labels) if label != IGNORE_INDEX)
    return ids[:start], ids[start:]


@pytest.mark.slow
def test_encode_decodes_to_the_rendered_text(smol_tokenizer):
    tok = smol_tokenizer
    eos_before, size_before = tok.eos_token, len(tok)
    q, answer = first_instruction(), '{"人物": [], "地理位置": [], "组织机构": []}'
    alpaca = template("alpaca")
    bos = tokenizer_bos(tok)
    assert bos is None  # SmolLM2 adds no bos (add_bos_token is false)
    ids, labels = encode_supervised(alpaca, tok, q, answer)
    prompt_ids, response_ids = _split(ids, labels)
    assert tok.decode(prompt_ids, skip_special_tokens=False) == alpaca.render(q, bos=bos or "")
    assert response_ids[-1] == tok.eos_token_id  # not efficient_eos: eos after the response
    assert tok.decode(response_ids, skip_special_tokens=False) == answer + tok.eos_token
    assert labels == [IGNORE_INDEX] * len(prompt_ids) + response_ids
    assert (tok.eos_token, len(tok)) == (eos_before, size_before)  # the tokenizer is never changed


@pytest.mark.slow
def test_efficient_eos_and_special_tokens(smol_tokenizer):
    tok = smol_tokenizer
    qwen = template("qwen")  # special-token elements, efficient_eos, replace_eos (<|im_end|> is SmolLM2's eos)
    q, answer = first_instruction("RE"), "[]"
    ids, labels = encode_supervised(qwen, tok, q, answer)
    prompt_ids, learned = _split(ids, labels)
    im_start = tok.convert_tokens_to_ids("<|im_start|>")
    assert prompt_ids[0] == im_start and prompt_ids.count(im_start) == 3
    assert tok.decode(prompt_ids, skip_special_tokens=False) == qwen.render(q)
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    assert learned == tok.encode(answer, add_special_tokens=False) + [eos]  # no per-turn eos; one at the very end
    assert labels == [IGNORE_INDEX] * len(prompt_ids) + learned
    # with history, each later turn's labels start with eos (the reference's efficient_eos rule)
    history = [("q1", "a1")]
    turns = encode_turns(qwen, tok, q, answer, history=history)
    ids, labels = encode_supervised(qwen, tok, q, answer, history=history)
    first = len(turns[0][0]) + len(turns[0][1])
    assert labels[first] == eos and labels[first + 1:first + len(turns[1][0])] == [IGNORE_INDEX] * (len(turns[1][0]) - 1)
    assert tok.decode(ids, skip_special_tokens=False) == qwen.render(q, history=history) + answer + "<|im_end|>"
    assert split_stops(tok, qwen.stop_strings(tok.eos_token)) == ([eos], [])
    with pytest.raises(ValueError, match="train_on_prompt"):
        encode_supervised(qwen, tok, q, answer, train_on_prompt=True)


@pytest.mark.slow
def test_missing_tokens_are_errors_not_mutations(smol_tokenizer):
    tok = smol_tokenizer
    size = len(tok)
    with pytest.raises(ValueError, match="<reserved_102>"):
        encode_supervised(template("baichuan"), tok, "Q", "A")
    with pytest.raises(ValueError, match="<\\|eot_id\\|>"):  # llama3 replaces eos with a token SmolLM2 lacks
        encode_supervised(template("llama3"), tok, "Q", "A")
    assert len(tok) == size and tok.eos_token == "<|im_end|>"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(REFERENCE_NAMES))
def test_every_template_encodes_like_it_renders(smol_tokenizer_all_tokens, name):
    tok = smol_tokenizer_all_tokens
    t = template(name)
    q = first_instruction("EE")
    history = [("q1", "a1")]
    turns = encode_turns(t, tok, q, "A", history=history)
    prompt_ids = [i for source, target in turns[:-1] for i in source + target] + turns[-1][0]
    eos = t.eos_token(tok.eos_token)
    assert tok.decode(prompt_ids, skip_special_tokens=False) == t.render(q, history=history, eos=eos)
    special = [p.text for p in (*t.prefix, *t.prompt) if isinstance(p, SpecialToken)]
    assert all(tok.convert_tokens_to_ids(s) in prompt_ids for s in special)
