"""In-context learning (the kgc_icl plugin): the reference's PromptCraft prompts (exact strings),
example files of both layouts, answer parsers, and `kgc icl` through a recording backend and the
real SmolLM2 GGUF.

The expected prompts are written by hand from DeepKE's deepke-llm branch
``example/llm/src/utils/prompt.py`` (commit da1d07e3de7f4307bb2270936e537e010a8191b8).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import DEEPKE

import kgcore
from kgc_icl import (
    LANGUAGES,
    TASKS,
    IclSpec,
    build_prompt,
    load_examples,
    parse_da,
    parse_ee,
    parse_icl_answer,
    parse_literal,
    parse_ner,
    parse_re,
    parse_rte,
    prompt_texts,
    run_icl,
)
from kgcore.backend import Backend, Generation, GenerationParams
from kgcore.cli import cli
from kgcore.errors import InputError
from kgcore.plugins import PluginHost, get_host, set_host

LLMICL = DEEPKE / "LLMICL"
BRANCH = DEEPKE / "deepke-llm-branch" / "ICL_Examples"

NER_EN_OUT = ("Your output format is only [{'E': type of entity from predefined entity types, 'W': entity in the "
              "input text},...] form, no other form.\n\n")
NER_ZH_OUT = "您输出的格式需要为：[{'E': 预先定义的实体类型, 'W': 输入文本中的实体},...]，没有其他格式要求。\n\n"
RE_EN_OUT = "Your output is only the relation type, no other words.\n\n"
RE_ZH_OUT = "您只需要输出关系的类型即可，不需要其他的文字输出。\n\n"
EE_EN_OUT = "Your output format is only [{event_type, arguments: [{role , argument}, ...]}, ...], no other form.\n\n"
EE_ZH_OUT = "您的输出全部为中文，且格式为：[{事件类型, 参数: [{角色, 参数内容}, ...]}, ...]，没有其他格式要求。\n\n"
RTE_EN_OUT = "Your output format is only [[ subject, predicate, object ], ...], no other form.\n\n"
RTE_ZH_OUT = "您输出的格式需要为：[[ 主语, 谓语, 宾语 ], ...]，没有其他格式要求。\n\n"

EN_PAIR = {"head_entity": "he", "head_type": "person", "tail_entity": "Patrick", "tail_type": "person"}
ZH_PAIR = {"head_entity": "长腿叔叔", "head_type": "电影名称", "tail_entity": "孔正锡", "tail_type": "人名"}


# -- NER ---------------------------------------------------------------------------------------

def test_ner_en_zero_shot_with_labels():
    assert build_prompt("ner", "Obama visited Berlin.", "en", labels="PER, LOC") == (
        "You are a highly intelligent and accurate Named-entity recognition(NER) system. You take Passage as input "
        "and your task is to recognize and extract specific types of named entities in that given passage and "
        "classify into a set of following predefined entity types:\nPER, LOC\n" + NER_EN_OUT
        + "Input: Obama visited Berlin.\nOutput: ")


def test_ner_en_domain_and_labels():
    assert build_prompt("ner", "t", "en", labels=["DISEASE", "TEST"], domain="medical") == (
        "You are a highly intelligent and accurate medical domain Named-entity recognition(NER) system. You take "
        "Passage as input and your task is to recognize and extract specific types of medical domain named entities "
        "in that given passage and classify into a set of following predefined entity types:\nDISEASE, TEST\n"
        + NER_EN_OUT + "Input: t\nOutput: ")


def test_ner_en_without_domain_or_labels_is_an_ner_instruction():
    # the reference's NER_EN holds the relation-extraction sentence: fixed on purpose
    prompt = build_prompt("ner", "t", "en")
    assert prompt == (
        "You are a highly intelligent and accurate Named-entity recognition(NER) system. You take Passage as input "
        "and your task is to recognize and extract specific types of named entities in that given passage and "
        "classify into a set of entity types.\n" + NER_EN_OUT + "Input: t\nOutput: ")
    assert "relation extraction" not in prompt


def test_ner_en_domain_only():
    assert build_prompt("ner", "t", "en", domain="sport") == (
        "You are a highly intelligent and accurate sport domain Named-entity recognition(NER) system. You take "
        "Passage as input and your task is to recognize and extract specific types of sport domain named entities in "
        "that given passage and classify into a set of entity types.\n" + NER_EN_OUT + "Input: t\nOutput: ")


def test_ner_zh_variants():
    assert build_prompt("ner", "文本", "zh") == (
        "您是一个高度智能和精确的命名实体识别（NER）系统。您将文本作为输入，您的任务是识别和提取给定文章中特定类型的"
        "命名实体，并将其分类为一组实体类型。\n" + NER_ZH_OUT + "输入：文本\n输出：")
    assert build_prompt("ner", "文本", "ch", labels="人物，地点") == (
        "您是一个高度智能和精确的命名实体识别（NER）系统。您将文本作为输入，您的任务是识别和提取给定段落中的特定类型的"
        "命名实体，并将其分类为一组预定义的实体类型：\n人物，地点\n" + NER_ZH_OUT + "输入：文本\n输出：")
    assert build_prompt("ner", "文本", "cn", labels="人物,地点", domain="历史") == (
        "您是一个高度智能和精确的历史域命名实体识别（NER）系统。您将文本作为输入，您的任务是识别和提取给定段落中的特定类型的"
        "历史域名实体，并将其分类为一组预定义的实体类型：\n人物，地点\n" + NER_ZH_OUT + "输入：文本\n输出：")
    assert build_prompt("ner", "文本", "zh", domain="历史") == (
        "您是一个高度智能和精确的历史域命名实体识别（NER）系统。您将文本作为输入，您的任务是识别和提取给定文章中特定类型的"
        "历史域命名实体，并将其分类为一组实体类型。\n" + NER_ZH_OUT + "输入：文本\n输出：")


def test_ner_zh_few_shot_with_branch_examples():
    examples = load_examples("ner", "zh", BRANCH)
    assert build_prompt("ner", "马云在杭州创办了阿里巴巴。", "ch", examples=examples) == (
        "您是一个高度智能和精确的命名实体识别（NER）系统。您将文本作为输入，您的任务是识别和提取给定文章中特定类型的"
        "命名实体，并将其分类为一组实体类型。\n" + NER_ZH_OUT
        + "示例: \n"
        "输入: 阿尔茨海默病的研究发现，淀粉样β42、tau蛋白、脑脊液生物标志物、淀粉样β寡聚体和突触标志物等生物标志物具有诊断价值。"
        "此外，MRI和氟脱氧葡萄糖PET用于检测与疾病相关的大脑变化。\n"
        "输出: [{'E': 'DISEASE', 'W': '阿尔茨海默病'}, {'E': 'BIOMARKER', 'W': '淀粉样β42'}, "
        "{'E': 'BIOMARKER', 'W': 'tau蛋白'}, {'E': 'BIOMARKER', 'W': '脑脊液生物标志物'}, "
        "{'E': 'BIOMARKER', 'W': '淀粉样β寡聚体'}, {'E': 'BIOMARKER', 'W': '突触标志物'}, {'E': 'TEST', 'W': 'MRI'}, "
        "{'E': 'TEST', 'W': '氟脱氧葡萄糖PET'}]\n"
        "输入: 1961年，陕西省西安市的秦始皇给国务院打钱。\n"
        "输出: [{'E': 'ORG', 'W': '国务院'}, {'E': 'PER', 'W': '秦始皇'}, {'E': 'LOC', 'W': '陕西省'}, "
        "{'E': 'LOC', 'W': '西安市'}, {'E': 'TIME', 'W': '1961年'}]\n"
        "输入：马云在杭州创办了阿里巴巴。\n输出：")


def test_ner_en_few_shot_with_branch_examples():
    samples = json.loads((BRANCH / "ner_en.json").read_text(encoding="utf-8"))["samples"]
    block = "".join(f"Input: {s['text']}\nOutput: {s['data']}\n" for s in samples)
    prompt = build_prompt("ner", "x", "en", labels="DISEASE", examples=load_examples("ner", "en", BRANCH))
    assert prompt.endswith("DISEASE\n" + NER_EN_OUT + "Examples: \n" + block + "Input: x\nOutput: ")
    assert "Output: [{'E': 'DISEASE', 'W': \"Alzheimer's disease\"}, {'E': 'BIOMARKER', 'W': 'Amyloid β42'}," in prompt


def test_llmicl_ner_samples_without_text_are_output_only_examples():
    examples = load_examples("ner", "cn", LLMICL)
    assert examples == [{"input": None, "output": [{"E": "ORG", "W": "国务院"}, {"E": "PER", "W": "秦始皇"},
                                                   {"E": "LOC", "W": "陕西省"}, {"E": "LOC", "W": "西安市"},
                                                   {"E": "TIME", "W": "1961年"}]}]
    assert build_prompt("ner", "文本", "zh", examples=examples).endswith(
        NER_ZH_OUT + "示例: \n输出: [{'E': 'ORG', 'W': '国务院'}, {'E': 'PER', 'W': '秦始皇'}, {'E': 'LOC', 'W': '陕西省'}, "
        "{'E': 'LOC', 'W': '西安市'}, {'E': 'TIME', 'W': '1961年'}]\n输入：文本\n输出：")


# -- RE ----------------------------------------------------------------------------------------

def test_re_en_zero_shot_domain_labels():
    assert build_prompt("re", "Bob is Tom's father.", "en", labels="parents,age", domain="family",
                        head_entity="Tom", head_type="person", tail_entity="Bob", tail_type="person") == (
        "You are a highly intelligent and accurate family domain relation extraction(RE) system. Given a context, a "
        "pair of head and tail entities in the context, your task is to extract the specific type of family domain "
        "relationship between the head and tail entities from candidate relations:\nparents, age\n" + RE_EN_OUT
        + "Context: Bob is Tom's father.\nThe relation between (person) 'Tom' and (person) 'Bob' in the context is: ")


def test_re_en_few_shot_with_llmicl_examples():
    assert build_prompt("re", "He met his father Patrick.", "en", examples=load_examples("re", "en", LLMICL),
                        **EN_PAIR) == (
        "You are a highly intelligent and accurate relation extraction(RE) system. Given a context, a pair of head and "
        "tail entities in the context, your task is to extract the specific type of relationship between the head and "
        "tail entities.\n" + RE_EN_OUT
        + "Examples: \n"
        "Context: The Dutch newspaper Brabants Dagblad said the boy was probably from Tilburg in the southern "
        "Netherlands and that he had been on safari in South Africa with his mother Trudy , 41, father Patrick, 40, "
        "and brother Enzo, 11.Output: The relation between (person) 'he' and (person) 'Patrick' in the context is: "
        "parents\n"
        "Context: Vagni, 62, was kidnapped along with fellow International Committee of the Red Cross-LRB-ICRC-RRB-"
        "workers Mary Jean Lacaba of the Philippines and Andreas Notter of Switzerland in January.Output: The relation "
        "between (person) 'Vagni' and (number) '62' in the context is: age\n"
        "Context: Graham, a Southern Tutchone tribal member from Canada, is charged with first- and second-degree "
        "murder and could be sent to prison for life if convicted.Output: The relation between (person) 'Graham' and "
        "(country) 'Canada' in the context is: origin\n"
        "Context: He met his father Patrick.\n"
        "The relation between (person) 'he' and (person) 'Patrick' in the context is: ")


def test_re_zh_few_shot_with_llmicl_examples_and_labels():
    assert build_prompt("re", "孔正锡执导了《长腿叔叔》。", "cn", labels="导演，主演", examples=load_examples("re", "cn", LLMICL),
                        **ZH_PAIR) == (
        "您是一个高度智能和精确的关系抽取（RE）系统。给定上下文以及上下文中包含的一对头实体和尾实体，您的任务是提取给定头实体和"
        "尾实体间特定类型的关系，候选的关系类型如下：\n导演，主演\n" + RE_ZH_OUT
        + "示例: \n"
        "上下文: 孔正锡，导演，2005年以一部温馨的爱情电影《长腿叔叔》敲开电影界大门。输出: 上下文头实体（电影名称）‘长腿叔叔’和"
        "尾实体（人名）‘孔正锡’间的关系类型是： 导演\n"
        "上下文: 《我家有喜2》（又名《开门见喜》）是由丁仰国导演执导，张佳编剧，海陆、高梓淇、万茜、李佳航、关雪盈、陈晓联袂主演的"
        "都市轻喜剧。输出: 上下文头实体（电视剧名称）‘我家有喜’和尾实体（人名）‘丁仰国’间的关系类型是： 导演\n"
        "上下文：孔正锡执导了《长腿叔叔》。\n上下文中头实体（电影名称）‘长腿叔叔’和尾实体（人名）‘孔正锡’之间的关系类型是：")


def test_re_zh_domain_zero_shot():
    assert build_prompt("re", "文本", "zh", domain="影视", **ZH_PAIR) == (
        "您是一个高度智能和精确的影视域关系抽取（RE）系统。给定上下文以及上下文中包含的一对头实体和尾实体，您的任务是提取给定"
        "头实体和尾实体间特定类型的影视域关系。\n" + RE_ZH_OUT
        + "上下文：文本\n上下文中头实体（电影名称）‘长腿叔叔’和尾实体（人名）‘孔正锡’之间的关系类型是：")


def test_re_needs_the_entity_pair():
    with pytest.raises(InputError, match="--head-type, --tail-entity"):
        build_prompt("re", "t", "en", head_entity="he")


# -- EE ----------------------------------------------------------------------------------------

def test_ee_en_zero_shot_plain_and_domain():
    assert build_prompt("ee", "A tank fired.", "en") == (
        "You are a highly intelligent and accurate event extraction model. You take Passage as input and convert it "
        "into events arguments. You can identify all events of target types mentioned in the sentence, and extract "
        "corresponding event arguments playing target roles.\n" + EE_EN_OUT + "Input: A tank fired.\nOutput: ")
    assert build_prompt("ee", "t", "en", domain="war", labels="ignored") == (
        "You are a highly intelligent and accurate war domain event extraction model. You take Passage as input and "
        "convert it into war domain events arguments.You can identify all events of target types mentioned in the "
        "sentence, and extract corresponding event arguments playing target roles.\n" + EE_EN_OUT
        + "Input: t\nOutput: ")


def test_ee_zh_few_shot_with_branch_examples():
    assert build_prompt("ee", "文本", "ch", domain="体育", examples=load_examples("ee", "ch", BRANCH)) == (
        "您是一个高度智能和精确的体育域事件提取模型。您将文本作为输入并将其转换为体育域事件参数。您可以识别句子中提到的所有目标类型的"
        "事件，并提取扮演目标角色的相应事件参数。\n" + EE_ZH_OUT
        + "示例: \n"
        "输入: 历经4小时51分钟的体力、意志力鏖战，北京时间9月9日上午纳达尔在亚瑟·阿什球场，以7比5、6比3、5比7、4比6和6比4击败赛会"
        "5号种子俄罗斯球员梅德韦杰夫，夺得了2019年美国网球公开赛男单冠军。\n"
        "输出: [{'event_type': '竞赛行为-胜负', 'arguments': [{'role': '时间', 'argument': '北京时间9月9日上午'}, "
        "{'role': '胜者', 'argument': '纳达尔'}, {'role': '败者', 'argument': '5号种子俄罗斯球员梅德韦杰夫'}, "
        "{'role': '赛事名称', 'argument': '2019年美国网球公开赛'}]}, {'event_type': '竞赛行为-夺冠', 'arguments': "
        "[{'role': '时间', 'argument': '北京时间9月9日上午'}, {'role': '夺冠赛事', 'argument': '2019年美国网球公开赛'}, "
        "{'role': '冠军', 'argument': '纳达尔'}]}]\n"
        "输入：文本\n输出：")


# -- RTE ---------------------------------------------------------------------------------------

def test_rte_en_few_shot_with_llmicl_examples():
    assert build_prompt("rte", "Alice knows Bob.", "en", examples=load_examples("rte", "en", LLMICL)) == (
        "You are a highly intelligent and accurate Resource Description Framework (RDF) data model. You take Passage "
        "as input and convert it into RDF triples. A triple is a set of three entities that codifies a statement about "
        "semantic data in the form of subject-predicate-object expressions.\n" + RTE_EN_OUT
        + "Examples: \n"
        "Input: Bob is a person. He is a friend of Alice, and he is born on the 4th July. He is interested in the Mona "
        "Lisa. The Mona Lisa was created by Leonardo da Vinci. The video 'La Joconde à Washington' is about the mona "
        "lisa.\n"
        "Output: [['Bob', 'is a', 'person'], ['Bob', 'is a friend of', 'Alice'], ['Bob', 'is born on', 'the 4th of "
        "July 1990'], ['Bob', 'is interested in', 'the Mona Lisa'], ['the Mona Lisa', 'was created by', 'Leonardo da "
        "Vinci'], [\"the video 'La Joconde à Washington\", 'is about', 'the Mona Lisa']]\n"
        "Input: Alice knows Bob.\nOutput: ")


def test_rte_zh_zero_shot_domain():
    assert build_prompt("rte", "文本", "zh", domain="影视") == (
        "您是一个高度智能和精确的影视域资源描述框架（RDF）数据模型。您将文本作为输入，并将其转换为影视域RDF三元组。三元组是由三个"
        "实体组成的集合，以主语-谓语-宾语表达式的形式对语义数据进行编码。\n" + RTE_ZH_OUT + "输入：文本\n输出：")


# -- DA ----------------------------------------------------------------------------------------

def test_da_en_zero_shot():
    assert build_prompt("da", "parents", "en", labels="person,country") == (
        "One sample in relation extraction datasets consists of a relation, a context, a pair of head and tail "
        "entities in the context and their entity types. The head entity has the relation with the tail entity and "
        "entities are pre-categorized as the following types: \nperson, country\n"
        "Generate more samples for the relation 'parents':\n")


def test_da_zh_few_shot_with_branch_examples():
    assert build_prompt("da", "导演", "zh", labels="电影名称，人名", examples=load_examples("da", "zh", BRANCH)) == (
        "关系提取数据集中的一个样本由关系、文本、文本中的一对头实体和尾实体及它们的实体类型组成。头实体与尾实体间存在关系，"
        "依次被预先分类为以下类型：\n电影名称，人名\n"
        "这里有一些关于关系‘导演’的样本: \n"
        "关系: 导演\n上下文: 孔正锡，导演，2005年以一部温馨的爱情电影《长腿叔叔》敲开电影界大门。\n头实体: 长腿叔叔\n"
        "头实体类型: 电影名称\n尾实体: 孔正锡\n尾实体类型: 人名\n"
        "关系: 导演\n上下文: 《我家有喜2》（又名《开门见喜》）是由丁仰国导演执导，张佳编剧，海陆、高梓淇、万茜、李佳航、关雪盈、"
        "陈晓联袂主演的都市轻喜剧。\n头实体: 我家有喜\n头实体类型: 电视剧名称\n尾实体: 丁仰国\n尾实体类型: 人名\n"
        "请为关系‘导演’生成更多的样例数据：\n")


def test_da_needs_labels():
    with pytest.raises(InputError, match="needs --labels"):
        build_prompt("da", "parents", "en")
    with pytest.raises(InputError, match="needs --labels"):
        IclSpec("da")


# -- instructions, languages, labels -----------------------------------------------------------

def test_custom_instruction_replaces_the_default_and_gets_a_newline():
    assert build_prompt("rte", "t", "en", instruction="List triples.") == "List triples.\nInput: t\nOutput: "
    assert build_prompt("ner", "t", "zh", instruction="") == "\n输入：t\n输出："


def test_language_aliases_and_errors():
    assert build_prompt("ee", "t", "ch") == build_prompt("ee", "t", "cn") == build_prompt("ee", "t", "ZH")
    with pytest.raises(InputError, match="unknown language 'fr'"):
        build_prompt("ee", "t", "fr")
    with pytest.raises(InputError, match="unknown ICL task 'kg'"):
        build_prompt("kg", "t", "en")


def test_prompt_data_covers_every_task_and_language():
    for language in LANGUAGES:
        texts = prompt_texts(language)
        for part in ("instructions", "task_prompts"):
            assert set(texts[part]) == set(TASKS), (language, part)
        assert set(texts["examples"]["header"]) == set(texts["examples"]["entry"]) == set(TASKS)
        assert all("answer_format" in variants for variants in texts["instructions"].values())


def test_labels_are_split_on_both_commas_and_stripped():
    prompt = build_prompt("ner", "t", "en", labels=" PER ，LOC,, ORG ")
    assert "entity types:\nPER, LOC, ORG\n" in prompt


# -- example files -----------------------------------------------------------------------------

@pytest.mark.parametrize("folder", [LLMICL, BRANCH])
@pytest.mark.parametrize("task", ["ner", "re", "ee", "rte", "da"])
@pytest.mark.parametrize("language", ["en", "zh", "ch", "cn"])
def test_every_fixture_example_file_loads(folder, task, language):
    examples = load_examples(task, language, folder)
    assert examples
    keys = {"input", "output"} if task in ("ner", "ee", "rte") else {
        "context", "head_type", "head_entity", "tail_type", "tail_entity", "relation"}
    assert all(set(e) == keys for e in examples)
    build_prompt(task, "text", language, labels="a,b", examples=examples, **EN_PAIR)


def test_zh_suffix_conventions_and_direct_files(tmp_path):
    assert load_examples("rte", "zh", LLMICL) == load_examples("rte", "zh", LLMICL / "rte_cn.json")
    assert load_examples("re", "ch", BRANCH) == load_examples("re", "zh", BRANCH / "re_ch.json")
    assert len(load_examples("ner", "en", BRANCH / "ner_en_ex.json")) == 8  # any file name
    (tmp_path / "ee_zh.json").write_text((LLMICL / "ee_cn.json").read_text(encoding="utf-8"), encoding="utf-8")
    assert load_examples("ee", "cn", tmp_path) == load_examples("ee", "cn", LLMICL)  # _zh first


def test_example_file_errors_name_file_and_field(tmp_path):
    with pytest.raises(InputError, match=r"no example file for task 'da' and language 'zh' \(looked for da_zh.json, "
                                         r"da_ch.json, da_cn.json\)"):
        load_examples("da", "zh", tmp_path)
    bad = tmp_path / "ner_en.json"
    bad.write_text('{"samples": [{"text": "a", "data": [{"E": "PER"}]}]}', encoding="utf-8")
    with pytest.raises(InputError) as info:
        load_examples("ner", "en", tmp_path)
    assert str(info.value) == f"{bad}: each entity is {{\"E\": type, \"W\": mention}} (field 'samples[0].data[0]')"
    bad.write_text('{"samples": [{"text": "a"}]}', encoding="utf-8")
    with pytest.raises(InputError, match=r"missing field \(field 'samples\[0\].data'\)"):
        load_examples("ner", "en", bad)
    bad.write_text('[{"text": "a"}]', encoding="utf-8")
    with pytest.raises(InputError, match=r"rte_en.json: missing field \(field '\[0\].labels'\)"):
        load_examples("rte", "en", bad.rename(tmp_path / "rte_en.json"))
    broken = tmp_path / "re_en.json"
    broken.write_text('[\n{"text": "a",\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"re_en.json:3: invalid JSON"):
        load_examples("re", "en", tmp_path)
    broken.write_text('[{"text": "a", "head_type": "p", "head_entity": "x", "tail_type": "p", "tail_entity": 3, '
                      '"relation": "r"}]', encoding="utf-8")
    with pytest.raises(InputError, match=r"expected a string \(field '\[0\].tail_entity'\)"):
        load_examples("re", "en", tmp_path)
    with pytest.raises(InputError, match="no such file or folder"):
        load_examples("re", "en", tmp_path / "missing")


# -- answer parsers ----------------------------------------------------------------------------

def test_parse_ner_python_literals_and_damage():
    clean = parse_ner("[{'E': 'PER', 'W': 'Obama'}, {'E': 'LOC', 'W': 'Berlin'}]")
    assert (clean.status, clean.result) == ("ok", [{"E": "PER", "W": "Obama"}, {"E": "LOC", "W": "Berlin"}])
    assert clean.triples == [("Obama", "type", "PER"), ("Berlin", "type", "LOC")]
    prose = parse_ner("Output: ```\n[{'E': 'DISEASE', 'W': \"Alzheimer's disease\"}]\n``` done")
    assert (prose.status, prose.result) == ("extracted", [{"E": "DISEASE", "W": "Alzheimer's disease"}])
    apostrophe = parse_ner("[{'E': 'PER', 'W': 'O'Brien'}, {'E': 'LOC', 'W': 'Berlin'}]")
    assert (apostrophe.status, apostrophe.result) == ("repaired", [{"E": "PER", "W": "O'Brien"},
                                                                   {"E": "LOC", "W": "Berlin"}])
    cut = parse_ner("[{'E': 'PER', 'W': 'Obama'}, {'E': 'LOC'")  # truncated by max_new_tokens
    assert (cut.status, cut.result, cut.dropped) == ("repaired", [{"E": "PER", "W": "Obama"}], 1)
    assert parse_ner('[{"E": "PER", "W": "Obama"}]').status == "ok"
    assert parse_ner("[]").result == []
    failed = parse_ner("There are no entities.")
    assert (failed.ok, failed.result, failed.triples) == (False, None, [])


def test_parse_rte():
    parsed = parse_rte("[['Bob', 'is a', 'person'], ['Bob', 'knows'], [\"the video 'X'\", 'is about', 'Y']]")
    assert parsed.result == [["Bob", "is a", "person"], ["the video 'X'", "is about", "Y"]]
    assert parsed.triples == [("Bob", "is a", "person"), ("the video 'X'", "is about", "Y")]
    assert parsed.dropped == 1
    assert parse_rte("The triple is ['Bob', 'is a', 'person'].").result == [["Bob", "is a", "person"]]


def test_parse_ee_english_and_chinese_keys():
    en = parse_ee("[{'event_type': 'Die', 'arguments': [{'role': 'Victim', 'argument': 'cameraman'}, "
                  "{'role': 'Place', 'argument': 'Baghdad'}]}]")
    assert en.result == [{"event_type": "Die", "arguments": [{"role": "Victim", "argument": "cameraman"},
                                                             {"role": "Place", "argument": "Baghdad"}]}]
    assert en.triples == [("Die", "Victim", "cameraman"), ("Die", "Place", "Baghdad")]
    zh = parse_ee("[{'事件类型': '竞赛行为-胜负', '参数': [{'角色': '胜者', '参数内容': '纳达尔'}]}]")
    assert zh.result == [{"event_type": "竞赛行为-胜负", "arguments": [{"role": "胜者", "argument": "纳达尔"}]}]
    mapping = parse_ee('[{"event_type": "Attack", "arguments": {"Attacker": "tank", "Place": ["Baghdad"]}}]')
    assert mapping.triples == [("Attack", "Attacker", "tank"), ("Attack", "Place", "Baghdad")]


def test_parse_re():
    assert parse_re("parents", ["parents", "age"], "he", "Patrick").triples == [("he", "parents", "Patrick")]
    echoed = parse_re("The relation between (person) 'he' and (person) 'Patrick' in the context is: Parents.",
                      ["parents", "age"], "he", "Patrick")
    assert (echoed.status, echoed.result) == ("extracted", "parents")
    assert parse_re("导演。\n其他说明", (), "长腿叔叔", "孔正锡").result == "导演"
    assert parse_re("I think the answer is age.", ["parents", "age"]).result == "age"
    assert parse_re("none of them", ["parents", "age"]).status == "failed"
    assert parse_re("parents or age?", ["parents", "age"]).error == "the answer names several relations: parents, age"
    assert parse_re("  ").status == "failed"


def test_parse_da_collects_samples():
    parsed = parse_da("Relation: parents\nContext: Tom and his father Bob.\nHead Entity: Tom\nHead Type: person\n"
                      "Tail Entity: Bob\nTail Type: person\n\nRelation: parents\nContext: unfinished")
    assert parsed.result["samples"][0] == {"relation": "parents", "context": "Tom and his father Bob.",
                                           "head_entity": "Tom", "head_type": "person", "tail_entity": "Bob",
                                           "tail_type": "person"}
    assert len(parsed.result["samples"]) == 2 and parsed.triples == [("Tom", "parents", "Bob")]
    zh = parse_da("关系：导演\n上下文：x\n头实体：电影\n头实体类型：电影名称\n尾实体：张三\n尾实体类型：人名")
    assert zh.triples == [("电影", "导演", "张三")]
    free = parse_da("Some free text.")
    assert (free.status, free.result) == ("ok", {"text": "Some free text.", "samples": []})


def test_parse_literal_status_and_dispatch():
    assert parse_literal("{'E': 'PER', 'W': 'a'}, {'E': 'LOC', 'W': 'b'}")[1] == "extracted"
    assert parse_literal("")[1:] == ("failed", "empty answer")
    assert parse_icl_answer("re", "Age", labels="parents,age", head_entity="a", tail_entity="b").triples == [
        ("a", "age", "b")]


# -- running through a backend -----------------------------------------------------------------

@dataclass(frozen=True)
class RecorderOptions:
    model: str = ""


class Recorder(Backend):
    """Answers every prompt with a fixed text and records what it was given."""

    name = "recorder"
    Options = RecorderOptions
    answer = "[{'E': 'PER', 'W': 'Obama'}]"
    seen: list = []

    def generate(self, requests, params):
        Recorder.seen.append((list(requests), params))
        return [Generation(self.answer, 10, 5) for _ in requests]


def test_run_icl_sends_the_prompt_as_the_user_turn():
    Recorder.seen = []
    spec = IclSpec("ner", "en", "PER,LOC", examples=load_examples("ner", "en", BRANCH))
    results = list(run_icl(["Obama spoke.", "Merkel spoke."], Recorder(RecorderOptions()), spec, batch_size=1))
    assert [r.answer.result for r in results] == [[{"E": "PER", "W": "Obama"}]] * 2
    assert len(Recorder.seen) == 2
    requests, params = Recorder.seen[0]
    assert requests[0].messages == ({"role": "user", "content": spec.prompt("Obama spoke.")},)
    assert requests[0].prompt is None and requests[0].json_schema == spec.answer_schema()
    assert (params.temperature, params.max_new_tokens) == (0.0, 512)
    free = list(run_icl(["Obama spoke."], Recorder(RecorderOptions()), spec, params=GenerationParams(constrained=False)))
    assert Recorder.seen[-1][0][0].json_schema is None and free[0].answer.result == results[0].answer.result
    assert results[0].as_dict() == {"text": "Obama spoke.", "task": "ner", "language": "en",
                                    "result": [{"E": "PER", "W": "Obama"}], "triples": [["Obama", "type", "PER"]],
                                    "parse": "ok"}


@pytest.fixture
def recorder_host():
    class Plugin:
        @kgcore.hookimpl
        def kgc_register_backends(self, register):
            register("recorder", Recorder)

    Recorder.seen = []
    host = PluginHost.discover()
    host.register(Plugin(), name="recorder-plugin")
    set_host(host)
    yield host
    set_host(None)


def kgc(args: list[str], **kwargs):
    """``kgc ARGS`` in-process, with the plugins' commands (``kgc icl``) added as ``kgc`` itself does."""
    get_host().add_commands(cli)
    return CliRunner().invoke(cli, args, **kwargs)


def test_cli_icl_works_through_any_backend(recorder_host, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text('Bob is the father of Tom.\n\n{"text": "Ann is 40.", "head_entity": "Ann", '
                     '"tail_entity": "40", "tail_type": "number"}\n', encoding="utf-8")
    Recorder.answer = "parents"
    result = kgc(["icl", "-b", "recorder", "-t", "re", "-i", str(texts), "--labels", "parents,age",
                                      "--head-entity", "Tom", "--head-type", "person", "--tail-entity", "Bob",
                                      "--tail-type", "person", "--examples", str(LLMICL), "--raw"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [(l["head_entity"], l["tail_entity"], l["tail_type"]) for l in lines] == [
        ("Tom", "Bob", "person"), ("Ann", "40", "number")]
    assert lines[0]["result"] == "parents" and lines[0]["triples"] == [["Tom", "parents", "Bob"]]
    assert lines[1]["raw"] == "parents" and lines[1]["parse"] == "ok"
    (requests, params), = Recorder.seen
    assert "Context: Ann is 40.\nThe relation between (person) 'Ann' and (number) '40' in the context is: " in \
        requests[1].messages[-1]["content"]
    assert (params.temperature, params.max_new_tokens, params.top_p) == (0.0, 512, 1.0)
    assert None not in (params.temperature, params.max_new_tokens, params.top_p, params.seed)


def test_cli_icl_takes_texts_as_kgc_extract_does(tmp_path):
    prompt = build_prompt("ner", "文本", "zh")
    for args, stdin in ((["文本"], None), (["--text", "文本"], None), (["--text_input", "文本"], None),
                        ([], "文本\n\n"), (["-i", "-"], "文本\n")):
        done = kgc(["icl", "-t", "NER", "--language", "ch", "--dry-run", *args], input=stdin)
        assert done.exit_code == 0, (args, done.output)
        assert [json.loads(line)["prompt"] for line in done.output.splitlines()] == [prompt], args
    texts = tmp_path / "texts.txt"
    texts.write_text("a\n\n{not json\n{\"id\": 1}\n", encoding="utf-8")
    bad = kgc(["icl", "-t", "ner", "-i", str(texts), "--dry-run"])
    assert bad.exit_code == 1
    assert f"{texts}:4: a JSON line needs a 'text' string (field 'text')" in bad.output
    assert [json.loads(line)["text"] for line in bad.output.splitlines()[:2]] == ["a", "{not json"]


def test_cli_icl_dry_run_and_usage_errors(tmp_path):
    both = kgc(["icl", "-t", "ner", "--text", "t", "--zero-shot", "--examples", str(BRANCH)])
    assert both.exit_code == 2 and "contradict" in both.output
    twice = kgc(["icl", "-t", "ner", "t", "--text", "u"])
    assert twice.exit_code == 2 and "give TEXT or --text, not both" in twice.output
    texts = tmp_path / "texts.txt"
    texts.write_text("u\n", encoding="utf-8")
    text_and_file = kgc(["icl", "-t", "ner", "t", "-i", str(texts), "-m", "/nonexistent.gguf"])
    assert text_and_file.exit_code == 2 and "give TEXT or --input, not both" in text_and_file.output
    no_pair = kgc(["icl", "-t", "re", "--text", "t", "-m", "/nonexistent.gguf"])
    assert no_pair.exit_code == 1 and "needs the entity pair" in no_pair.output  # before any model is loaded


# -- the real model ----------------------------------------------------------------------------

def _icl(model: Path, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "kgcore.cli", "icl", "--backend", "llamacpp", "--model", str(model),
                           "-O", "n_ctx=2048", "--language", "en", "--max-new-tokens", "64", "--raw", *args],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_cli_icl_few_shot_through_llamacpp_follows_the_prompts_format(smollm2_gguf):
    """SmolLM2 with the built-in few-shot examples, its answer constrained to the format the prompt asks
    for; the answers are pinned (greedy) and parse into results and triples."""
    import jsonschema

    ner = _icl(smollm2_gguf, "--task", "ner", "--labels", "PER,LOC,ORG", "Angela Merkel met Joe Biden in Washington.")
    assert ner["result"] == [{"E": "PER", "W": "Joe Biden"}, {"E": "LOC", "W": "Angela Merkel"},
                             {"E": "ORG", "W": "Joe Biden"}, {"E": "PER", "W": "Angela Merkel"}]
    assert ner["triples"][0] == ["Joe Biden", "type", "PER"] and len(ner["triples"]) == 4
    assert ner["parse"] == "repaired" and ner["raw"].endswith('{"')  # cut by --max-new-tokens, the rest kept
    rte = _icl(smollm2_gguf, "--task", "rte", "Tim Cook works for Apple.")
    assert rte["parse"] == "ok" and rte["result"] == rte["triples"] == [["Tim Cook", "Apple", "Apple"],
                                                                        ["Apple", "Tim Cook", "Apple"]]
    jsonschema.validate(json.loads(rte["raw"]), IclSpec("rte").answer_schema())
    free = _icl(smollm2_gguf, "--task", "rte", "--no-constrained", "Tim Cook works for Apple.")
    assert free["raw"] != rte["raw"]  # the schema is what shaped the answer


def test_icl_answer_schemas_follow_the_prompts_formats():
    import jsonschema

    ner = IclSpec("ner", labels=("PER", "LOC")).answer_schema()
    jsonschema.validate([{"E": "PER", "W": "Ann"}], ner)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate([{"E": "ORG", "W": "Acme"}], ner)  # only the given labels
    ee = IclSpec("ee", labels=("attack",)).answer_schema()
    jsonschema.validate([{"event_type": "attack", "arguments": [{"role": "attacker", "argument": "rebels"}]}], ee)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate([{"event_type": "attack", "arguments": [{"role": "attacker"}]}], ee)
    assert IclSpec("ee", "zh").answer_schema() is None  # the Chinese prompt's keys: free text
    assert IclSpec("re", head_entity="a", head_type="b", tail_entity="c", tail_type="d").answer_schema() is None