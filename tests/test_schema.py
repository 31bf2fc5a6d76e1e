"""Schema files in every supported form, and their errors."""

from __future__ import annotations

import pytest
from conftest import DATASETS, DEEPKE

from kgcore import load_task
from kgcore.errors import InputError
from kgcore.schema import load_schema

TASK = load_task


def test_three_line_forms_per_task():
    assert load_schema(DEEPKE / "NER" / "schema.json").keys() == ["人物", "地理位置", "组织机构"]
    assert len(load_schema(DEEPKE / "RE" / "schema.json", TASK("RE")).labels) == 49
    spo = load_schema(DEEPKE / "SPO" / "schema.json", TASK("SPO")).labels[0]
    assert (spo.subject_type, spo.name, spo.object_type, spo.key) == ("人物", "毕业院校", "学校", "人物_毕业院校_学校")
    ee = load_schema(DEEPKE / "EE" / "schema.json", TASK("EE"))
    assert len(ee.labels) == 65 and ee.label("组织关系-裁员").role_names == ["裁员方", "裁员人数", "时间"]
    kg = load_schema(DEEPKE / "KG" / "schema.json", TASK("KG"))
    assert kg.keys() == ["人物"] and len(kg.labels[0].roles) == 15


def test_datasets_forms():
    assert load_schema(DATASETS / "conll04" / "schema.json", TASK("RE")).keys()[0] == "work for"
    phee = load_schema(DATASETS / "phee" / "schema.json", TASK("EE"))
    assert phee.keys() == ["adverse event", "potential therapeutic event"]
    assert "treatment.drug" in phee.labels[0].role_names


def test_yaml_with_descriptions(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("labels:\n  - name: person\n    description: a human\n  - place\n", encoding="utf-8")
    schema = load_schema(path)
    assert schema.has_descriptions and schema.labels[0].description == "a human"
    assert schema.labels[1].description is None


@pytest.mark.parametrize("content,suffix,message", [
    ("labels:\n  - name: person\n    colour: red\n", ".yaml", "field 'labels.0'"),
    ("labels:\n  - [1, 2\n", ".yaml", ":3: invalid YAML"),
    ('["a"]\n[]\n', ".json", "exactly 3 JSON lines"),
    ('["a"]\n{}\n{}\n', ".json", ":2: line 2 must be the role list"),
    ('["a"]\n[]\n{"x": \n', ".json", ":3: invalid JSON"),
    ('{"labels": [{"name": "p", "roles": [3]}]}', ".json", "field 'labels.0"),
    ('42', ".json", "unrecognised schema"),
])
def test_schema_errors_name_file_line_and_field(tmp_path, content, suffix, message):
    path = tmp_path / f"schema{suffix}"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError) as info:
        load_schema(path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_conflicting_duplicate_label(tmp_path):
    path = tmp_path / "s.json"
    path.write_text('{"labels": [{"name": "a", "description": "x"}, {"name": "a", "description": "y"}]}')
    with pytest.raises(InputError, match="defined twice"):
        load_schema(path)
