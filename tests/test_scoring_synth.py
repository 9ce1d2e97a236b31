"""Every task scored on the embedded generator's tiny dataset: perfect answers score perfectly."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from minbench.cards import get_card, task_ids
from minbench.cli import main
from minbench.data.manifest import read_manifest
from minbench.scoring.formats import write_ranked_csv, write_size_csv
from minbench.scoring.formats.mask_pngs import load_true_mask, write_score_map


def _perfect(ds, task, out):
    card = get_card(task)
    df = read_manifest(ds)
    rows = card.rows(df, "test").reset_index(drop=True)
    if card.submission_format == "ranked_csv":
        classes = list(card.classes(df))
        k = min(3, len(classes))
        preds = [[sp] + [c for c in classes if c != sp][: k - 1] for sp in rows.species]
        write_ranked_csv(out, list(rows.sample_id), preds)
    elif card.submission_format == "size_csv":
        write_size_csv(out, list(rows.sample_id), list(rows.size_cm))
    else:
        out.mkdir()
        for r in rows.itertuples():
            truth = load_true_mask(ds, r)
            Image.fromarray(truth.astype(np.uint8)).save(out / f"{r.sample_id}.png")  # 0/1 values: nonzero counts
            write_score_map(out, r.sample_id, truth.astype(np.uint8))  # the truth as a map: AP 1
    return rows


@pytest.mark.parametrize("task", sorted(task_ids()))
def test_perfect_submission_on_the_tiny_synth_dataset(tiny_dataset, tmp_path, task, leaderboards):
    card = get_card(task)
    pred = tmp_path / ("masks" if card.submission_format == "mask_pngs" else "pred.csv")
    rows = _perfect(tiny_dataset, task, pred)
    assert main(["score", "--task", task, "--predictions", str(pred), "--data", str(tiny_dataset),
                 "--out", str(tmp_path / "score.json"), "--name", "oracle"]) == 0
    score = json.loads((tmp_path / "score.json").read_text())
    assert score["n_samples"] == len(rows) > 0
    want = {"topk_accuracy": 1.0, "macro_recall": 1.0, "mean_iou": 1.0, "dice": 1.0, "pixel_accuracy": 1.0,
            "pxap": 1.0, "mean_ap": 1.0, "mae": 0.0, "rmse": 0.0, "mape": 0.0, "r2": 1.0, "coverage": 1.0}
    for spec in card.metrics:
        assert score["metrics"][spec.name] == pytest.approx(want[spec.kind], abs=1e-9), spec.name
    (board,) = leaderboards.glob(f"{task}--*.json")
    entry = json.loads(board.read_text())["entries"][0]
    assert entry["name"] == "oracle" and entry["n_samples"] == len(rows)
