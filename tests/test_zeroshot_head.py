"""Class texts, templates, class-name files and the chunked top-k scorer."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from minbench.errors import UserError
from minbench.models import zeroshot_head as zh


def _emb(n, d=16, seed=0):
    return F.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=-1)


@pytest.mark.parametrize("classes, chunk, k", [(50, 7, 10), (50, 50, 5), (50, 1000, 10), (6, 4, 10), (1, 1, 3)])
def test_chunked_top_k_equals_full_matrix_top_k(classes, chunk, k):
    cls, img = _emb(classes, seed=1), _emb(33, seed=2)
    scorer = zh.TopKScorer(cls, k=k, chunk=chunk)
    scorer.add(img[:20])
    scorer.add(img[20:])
    values, indices = scorer.result()
    ref_v, ref_i = torch.topk(img @ cls.T, min(k, classes), dim=1)
    assert torch.equal(indices, ref_i)
    assert torch.allclose(values, ref_v, atol=1e-6)


def test_combine_mixes_names_and_class_texts_and_keeps_names_without_one():
    names, text = _emb(3, seed=7), _emb(3, seed=8)
    has = torch.tensor([True, False, True])
    both = zh.combine(names, text, has, "both", alpha=0.5)
    assert torch.allclose(both[0], F.normalize(text[0] + names[0], dim=0), atol=1e-6)
    assert torch.allclose(both[1], names[1])
    assert torch.allclose(zh.combine(names, text, has, "class_text")[2], text[2])
    assert torch.allclose(zh.combine(names, text, has, "class_text")[1], names[1])
    assert torch.allclose(zh.combine(names, text, has, "names"), names)
    with pytest.raises(UserError, match="text source: 'poem'"):
        zh.combine(names, text, has, "poem")
    with pytest.raises(UserError, match="'descriptions' is no longer offered"):
        zh.combine(names, text, has, "descriptions")


def test_name_prompts_ensemble_templates_and_synonyms():
    names = zh.ClassNames(("quartz", "fluorite, green variety"), (("quartz", "rock crystal"), ("green fluorite",)))
    texts, owner = zh.name_prompts(names, ["a photo of {}.", "{} crystals"])
    assert texts == ["a photo of quartz.", "quartz crystals", "a photo of rock crystal.", "rock crystal crystals",
                     "a photo of green fluorite.", "green fluorite crystals"]
    assert owner == [0, 0, 0, 0, 1, 1]


@pytest.mark.parametrize("templates, message", [
    ([], "no templates"),
    (["a photo of a mineral."], "no '{}' placeholder"),
    (["{} and {}"], "exactly one"),
    (["a {name}"], "no '{}' placeholder"),
    (["{} {0}"], "exactly one"),
    (["a {}.", "a {}."], "given twice"),
])
def test_bad_templates_are_refused(templates, message):
    with pytest.raises(UserError, match=message):
        zh.validate_templates(templates)


def test_templates_from_files(tmp_path):
    txt = tmp_path / "t.txt"
    txt.write_text("# mine\na photo of {}.\n\n{} on matrix\n", encoding="utf-8")
    assert zh.load_templates(txt) == ["a photo of {}.", "{} on matrix"]
    js = tmp_path / "t.json"  # clip_benchmark's layout: {dataset: [templates]}
    js.write_text(json.dumps({"zeroshot": ["itap of a {}."], "cifar10": ["a {} photo."]}))
    assert zh.load_templates(js, key="zeroshot") == ["itap of a {}."]
    with pytest.raises(UserError, match="several template lists"):
        zh.load_templates(js, key="other")
    bad = tmp_path / "bad.txt"
    bad.write_text("a photo of a mineral\n")
    with pytest.raises(UserError, match=r"bad.txt: template 1 .* no '\{\}'"):
        zh.load_templates(bad)
    with pytest.raises(UserError, match="not found"):
        zh.load_templates(tmp_path / "missing.txt")


def test_class_name_files(tmp_path):
    txt = tmp_path / "c.txt"
    txt.write_text("quartz\ncalcite\n")
    names = zh.load_class_names(txt)
    assert names.classes == ("quartz", "calcite") and names.prompt_names == (("quartz",), ("calcite",))
    js = tmp_path / "c.json"
    js.write_text(json.dumps({"quartz": ["quartz", "rock crystal"], "calcite": "calcite spar"}))
    names = zh.load_class_names(js)
    assert names.prompt_names == (("quartz", "rock crystal"), ("calcite spar",))


@pytest.mark.parametrize("name, text, message", [
    ("empty.txt", "# nothing\n\n", "class list is empty"),
    ("dup.txt", "quartz\ncalcite\nQuartz \n", "'Quartz' appears more than once"),
    ("dup.json", '{"quartz": "a", "quartz": "b"}', "key 'quartz' appears more than once"),
    ("empty.json", "[]", "class list is empty"),
    ("nolist.json", '{"quartz": []}', "needs a name"),
    ("broken.json", "[1, 2", "not valid JSON"),
])
def test_bad_class_name_files_are_refused(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        zh.load_class_names(path)


def test_candidates_must_be_species_of_the_dataset():
    user = zh.ClassNames(("quartz", "calcit"), (("quartz",), ("calcit",)))
    with pytest.raises(UserError, match="'calcit' is not a species .*closest: calcite"):
        zh.resolve_candidates(["quartz"], ["quartz", "calcite"], user)
    default = zh.resolve_candidates(["b", "a"], ["a", "b", "c"], None)
    assert default.classes == ("a", "b")
    with pytest.raises(UserError, match="class list is empty"):
        zh.resolve_candidates([], ["a"], None)


def test_scorer_refuses_no_classes():
    with pytest.raises(UserError, match="no candidate classes"):
        zh.TopKScorer(torch.zeros(0, 8))
