"""Class-set files: shipped sets, validation, the synthetic set matches the synth table."""

from __future__ import annotations

import json

import pytest
from refusals import assert_refuses
from tempfiles import assert_no_temp

from pathpt_engine.errors import ConfigError
from pathpt_engine.prompts.classsets import list_classsets, load_classset, save_classset, synth_classset


def test_shipped_sets_load():
    names = list_classsets()
    for want in ("brca", "brain", "ubc-ocean", "ebrains", "sarc", "thym", "ucs", "ucs_corrected", "synthetic"):
        assert want in names
    for n in names:
        cs = load_classset(n)
        assert cs.classes[0].normal and len(cs.templates) == 22
    assert load_classset("ebrains").n_classes == 31


def test_ucs_faithful_copy_and_prompt_counts():
    cs = load_classset("ucs")
    assert cs.class_names[0] == "Normal"
    assert "thymux uterus tissue" in cs.classes[0].synonyms
    assert cs.classes[2].synonyms[1].endswith("heterologous type")  # the reference's copy-paste bug
    assert [len(cs.prompts(i)) for i in range(3)] == [66, 44, 44]
    assert cs.learnable_names() == ["normal uterus tissue", "uterine Carcinosarcoma, heterologous type",
                                    "uterine carcinosarcoma, homologous type"]
    fixed = load_classset("ucs_corrected")
    assert "thymux uterus tissue" not in fixed.classes[0].synonyms
    assert fixed.classes[2].synonyms[1].endswith("homologous type")


def test_shipped_synthetic_json_matches_synth_table():
    from pathpt_engine.synth.subtypes import DEFAULT_SUBTYPES, SUBTYPES

    shipped = load_classset("synthetic")
    assert shipped == synth_classset()
    assert shipped.class_names == tuple(s.name for s in SUBTYPES[: DEFAULT_SUBTYPES + 1])
    assert load_classset("synthetic5") == synth_classset(5)


def test_subtype_index_accepts_names_and_ints():
    cs = load_classset("ucs")
    assert cs.subtype_index("Uterine Carcinosarcoma-MMMT-Homologous Type") == 1
    assert cs.subtype_index("0") == 0 and cs.subtype_index(1) == 1 and cs.subtype_index("1.0") == 1
    with pytest.raises(ValueError, match="unknown subtype 'Normal'"):
        cs.subtype_index("Normal")
    with pytest.raises(ValueError, match='label 2 out of range'):
        cs.subtype_index(2)


@pytest.mark.parametrize(("mutate", "fragment"), [
    (lambda d: d.pop("templates"), "missing key"),
    (lambda d: d["classes"][0].pop("normal"), "normal"),
    (lambda d: d["classes"][1].update(color="red"), "color"),
    (lambda d: d["templates"].append("no placeholder"), "CLASSNAME"),
    (lambda d: d["classes"][2].update(synonyms=[]), "synonyms"),
    (lambda d: d["classes"][2].update(name=d["classes"][1]["name"]), "duplicate"),
])
def test_validation_errors_name_the_file(tmp_path, mutate, fragment):
    data = load_classset("ucs").to_dict()
    mutate(data)
    err = assert_refuses(load_classset, tmp_path / "bad.json", json.dumps(data), fragment, ConfigError)
    assert "bad.json" in str(err.value)


def test_missing_and_broken_files(tmp_path):
    assert_refuses(load_classset, tmp_path / "nope.json", None, "not found", ConfigError)
    assert_refuses(load_classset, tmp_path / "broken.json", "{", "broken.json", ConfigError)


def test_save_roundtrip(tmp_path):
    cs = load_classset("thym")
    p = save_classset(cs, tmp_path / "t.json")
    assert load_classset(p) == cs
    assert_no_temp(tmp_path)  # the old glob ".*tmp" never matched a real temp name (".t.<pid>.<hex>.tmp.json")
