"""Hidden labels: ``minbench data seal`` writes a public dataset and a truth bundle, and
``minbench score --truth`` gives the numbers of the original dataset to the last digit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from minbench.cards import all_cards, get_card
from minbench.cli import main
from minbench.data.public import TRUTH_JSON, read_truth, seal_dataset
from minbench.errors import UserError
from minbench.export.codabench import starting_kit
from minbench.scoring.formats import write_ranked_csv
from minbench.scoring.score import load_task_data, score_submission
from minbench.scoring.truth import NoTruthError

TASKS = list(all_cards())


@pytest.fixture(scope="module")
def sealed(tiny_dataset, tmp_path_factory):
    """Each task sealed on its own (with a dev/final split) and its no-training submission."""
    out = {}
    for task in TASKS:
        root = tmp_path_factory.mktemp(f"sealed-{task}")
        seal_dataset(tiny_dataset, root / "public", root / "truth", [task], private_fraction=0.5, seed=3)
        starting_kit(get_card(task), root / "public", root / "kit")
        out[task] = root
    return out


def _submissions(task: str, root: Path, full: Path) -> list[Path]:
    card = get_card(task)
    kit = root / "kit" / (task if card.submission_format == "mask_pngs" else f"{task}.csv")
    subs = [kit]
    if card.submission_format == "ranked_csv":  # a varied ranking too: every class of the task, shuffled per row
        data = load_task_data(task, full)
        classes = list(data.card.classes(data.manifest))
        rng = np.random.default_rng(1)
        ranked = [list(rng.permutation(classes))[: card.max_ranks] for _ in range(len(data.rows))]
        subs.append(write_ranked_csv(root / "varied.csv", data.rows["sample_id"].tolist(), ranked))
    return subs


def _same(a, b) -> dict:
    ja, jb = a.to_json(per_sample=True), b.to_json(per_sample=True)
    for j in (ja, jb):
        j.pop("scored_at")
    return ja == jb, ja, jb


@pytest.mark.parametrize("task", TASKS)
def test_score_with_truth_equals_the_original(task, sealed, tiny_dataset):
    root = sealed[task]
    data = load_task_data(task, root / "public", truth=root / "truth")
    for sub in _submissions(task, root, tiny_dataset):
        full = score_submission(task, sub, tiny_dataset, ci_metrics="all")
        hidden = score_submission(task, sub, task_data=data, ci_metrics="all")
        same, ja, jb = _same(full, hidden)
        assert same, (ja, jb)
        original = json.loads((tiny_dataset / "dataset.json").read_text())
        assert hidden.dataset["fingerprint"] == original["truth_fingerprint"]  # the original's boards
        assert hidden.dataset["image_fingerprint"] == original["fingerprint"]


@pytest.mark.parametrize("task", TASKS)
def test_public_dataset_holds_no_test_truth(task, sealed, tiny_dataset):
    card = get_card(task)
    pub = pd.read_parquet(sealed[task] / "public" / "manifest.parquet")
    orig = pd.read_parquet(tiny_dataset / "manifest.parquet")
    test = card.positions(orig, "test")
    for column in card.truth_columns(orig.columns, "test"):
        values = pub[column].iloc[test]
        assert not values.astype(bool).any() if values.dtype != float else values.isna().all(), column
    train = card.positions(orig, "train")
    assert pub.iloc[train]["species"].tolist() == orig.iloc[train]["species"].tolist()
    for rel in orig["mask_path"].iloc[test]:
        assert not rel or not (sealed[task] / "public" / rel).exists()
        assert not rel or (sealed[task] / "truth" / rel).is_file()
    info = json.loads((sealed[task] / "public" / "dataset.json").read_text())
    assert info["public"]["tasks"] == [task]
    assert info["public"]["of"]["fingerprint"] == json.loads((tiny_dataset / "dataset.json").read_text())["fingerprint"]
    assert set(info["unavailable_tasks"]) == set(TASKS) - {task}
    from minbench.data.check import check_dataset

    report = check_dataset(sealed[task] / "public", quick=True)
    assert report.ok, report.problems  # (a task it does not serve may warn: its training rows were sealed)


@pytest.mark.parametrize("task", TASKS)
def test_parts_are_a_stratified_partition(task, sealed, tiny_dataset):
    bundle = read_truth(sealed[task] / "truth")
    test_ids = bundle.tasks[task]["test_ids"]
    dev, final = bundle.part_ids(task, "dev"), bundle.part_ids(task, "final")
    assert sorted(dev + final) == sorted(test_ids) and not set(dev) & set(final)
    assert abs(len(final) - 0.5 * len(test_ids)) <= 0.5
    sub = _submissions(task, sealed[task], tiny_dataset)[0]
    whole = score_submission(task, sub, task_data=load_task_data(task, sealed[task] / "public",
                                                                 truth=sealed[task] / "truth"))
    part = score_submission(task, sub, task_data=load_task_data(task, sealed[task] / "public",
                                                                truth=sealed[task] / "truth", part="final"))
    assert part.n_samples == len(final) and part.dataset["part"] == "final"
    keep = whole.per_sample["sample_id"].isin(final).to_numpy()
    assert part.per_sample["sample_id"].tolist() == whole.per_sample["sample_id"][keep].tolist()


def test_conflicting_tasks_are_refused(tiny_dataset, tmp_path):
    with pytest.raises(UserError, match="training rows of fewshot-10.*separate"):
        seal_dataset(tiny_dataset, tmp_path / "p", tmp_path / "t", ["size", "fewshot-10"])
    assert not (tmp_path / "p").exists() and not (tmp_path / "t").exists()


def test_compatible_tasks_seal_together(tiny_dataset, tmp_path):
    tasks = ["fewshot-10", "fewshot-98", "fewshot-360", "segmentation"]
    seal_dataset(tiny_dataset, tmp_path / "p", tmp_path / "t", tasks)
    for task in tasks:
        data = load_task_data(task, tmp_path / "p", truth=tmp_path / "t")
        assert data.info.fingerprint == load_task_data(task, tiny_dataset).info.fingerprint


def _cli(argv, capsys) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err.strip()


def test_bad_input_is_one_line_and_writes_nothing(sealed, tiny_dataset, tmp_path, capsys):
    root = sealed["fewshot-10"]
    sub = root / "kit" / "fewshot-10.csv"
    out = tmp_path / "s.json"
    base = ["score", "--task", "fewshot-10", "--predictions", str(sub), "--out", str(out)]
    # a public dataset without its truth
    code, err = _cli([*base, "--data", str(root / "public")], capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "--truth" in err and str(root / "public") in err
    # the truth of another dataset (another seal: another public fingerprint, another task)
    code, err = _cli([*base, "--data", str(root / "public"), "--truth", str(sealed["fewshot-98"] / "truth")], capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "--truth" in err
    # a bundle for an unknown task
    bad = tmp_path / "bad-truth"
    import shutil

    shutil.copytree(root / "truth", bad)
    raw = json.loads((bad / TRUTH_JSON).read_text())
    raw["tasks"]["fewshot-11"] = raw["tasks"].pop("fewshot-10")
    (bad / TRUTH_JSON).write_text(json.dumps(raw))
    code, err = _cli([*base, "--data", str(root / "public"), "--truth", str(bad)], capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "fewshot-11" in err and str(bad / TRUTH_JSON) in err
    # --truth with a dataset that holds its own truth
    code, err = _cli([*base, "--data", str(tiny_dataset), "--truth", str(root / "truth")], capsys)
    assert code == 2 and "not a public dataset" in err
    assert not out.exists()


def test_no_truth_error_names_the_submission(sealed):
    root = sealed["size"]
    with pytest.raises(NoTruthError) as info:
        score_submission("size", root / "kit" / "size.csv", root / "public")
    assert info.value.predictions == root / "kit" / "size.csv"


def test_cli_seal_then_score(tiny_dataset, tmp_path, capsys):
    assert main(["data", "seal", "--data", str(tiny_dataset), "--out", str(tmp_path / "p"), "--truth",
                 str(tmp_path / "t"), "--task", "zeroshot"]) == 0
    starting_kit(get_card("zeroshot"), tmp_path / "p", tmp_path / "kit")
    sub = tmp_path / "kit" / "zeroshot.csv"
    assert main(["score", "--task", "zeroshot", "--predictions", str(sub), "--data", str(tmp_path / "p"),
                 "--truth", str(tmp_path / "t"), "--out", str(tmp_path / "a.json"), "--no-leaderboard"]) == 0
    assert main(["score", "--task", "zeroshot", "--predictions", str(sub), "--data", str(tiny_dataset),
                 "--out", str(tmp_path / "b.json"), "--no-leaderboard"]) == 0
    a, b = (json.loads((tmp_path / n).read_text()) for n in ("a.json", "b.json"))
    for j in (a, b):
        j.pop("scored_at")
    assert a == b
    code = main(["data", "seal", "--data", str(tiny_dataset), "--out", str(tmp_path / "p"), "--truth",
                 str(tmp_path / "t2"), "--task", "zeroshot"])
    assert code == 2 and "already exists" in capsys.readouterr().err


def test_run_on_a_public_dataset_writes_the_submission_only(sealed, tiny_dataset, tmp_path, capsys):
    """``run`` predicts on the public dataset, says in one line that it cannot score, exits 0;
    the submission scored with ``--truth`` is the submission scored on the original."""
    root = sealed["size"]
    out = tmp_path / "run"
    assert main(["run", "--task", "size", "--data", str(root / "public"), "--out", str(out), "--quiet",
                 "--no-leaderboard"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("public dataset:")]
    sub = out / "seed0" / "predictions.csv"
    assert lines == [f"public dataset: predictions written to {sub}, no truth here to score them "
                     "(minbench score --truth TRUTH)"]
    assert sub.is_file() and not (out / "seed0" / "score.json").exists()
    hidden = score_submission("size", sub, task_data=load_task_data("size", root / "public", truth=root / "truth"))
    same, ja, jb = _same(score_submission("size", sub, tiny_dataset), hidden)
    assert same, (ja, jb)


def test_segmentation_run_on_a_public_dataset(sealed, tmp_path, monkeypatch, capsys):
    """The masks are written (a given classifier: the default one would train and score on a
    few-shot task this public dataset does not serve); the run says it cannot score them."""
    from test_segmentation_pipeline import tiny_checkpoint

    monkeypatch.chdir(tmp_path)
    ckpt = tiny_checkpoint(tmp_path / "clf.ckpt")
    out = tmp_path / "segrun"
    assert main(["run", "--task", "segmentation", "--data", str(sealed["segmentation"] / "public"), "--out", str(out),
                 "--quiet", "--no-leaderboard", "--set", f"model.init_args.classifier={ckpt}",
                 "--set", "data.init_args.image_size=40"]) == 0
    assert "public dataset: predictions written to" in capsys.readouterr().out
    from minbench.pipelines.segmentation import PREDICTIONS_DIR

    masks = sorted(p.name for p in (out / "seed0" / PREDICTIONS_DIR).glob("*.png"))
    ids = read_truth(sealed["segmentation"] / "truth").tasks["segmentation"]["test_ids"]
    assert masks == sorted(f"{i}.png" for i in ids)


def test_a_few_shot_run_on_a_public_dataset_predicts_what_it_predicts_on_the_original(sealed, tiny_dataset,
                                                                                     tmp_path, capsys):
    """The sealed test rows have no species: the run still trains on the training rows and
    predicts every test row, byte for byte as on the dataset that holds the truth."""
    args = ["run", "--task", "fewshot-10", "--config", "colour-logistic", "--quiet", "--no-leaderboard"]
    assert main([*args, "--data", str(sealed["fewshot-10"] / "public"), "--out", str(tmp_path / "public")]) == 0
    assert main([*args, "--data", str(tiny_dataset), "--out", str(tmp_path / "full")]) == 0
    public, full = ((tmp_path / n / "seed0" / "predictions.csv").read_bytes() for n in ("public", "full"))
    assert public == full


def test_every_seed_of_a_run_on_a_public_dataset_writes_its_submission(sealed, tmp_path, capsys):
    """No seed stops the others: each is marked 'predicted' with its submission and named once."""
    import json as _json

    out = tmp_path / "seeds"
    assert main(["run", "--task", "fewshot-10", "--config", "colour-logistic", "--seeds", "0", "1", "--quiet",
                 "--no-leaderboard", "--data", str(sealed["fewshot-10"] / "public"), "--out", str(out)]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("public dataset:")]
    assert len(lines) == 2
    for seed in (0, 1):
        status = _json.loads((out / f"seed{seed}" / "status.json").read_text())
        assert status["state"] == "predicted" and (out / f"seed{seed}" / "predictions.csv").is_file()
    assert not (out / "summary.json").exists()
