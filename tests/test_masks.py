"""One mask reader: the data module, `data check` and the scorer read the same masks and
give the same verdicts (``minbench.data.masks``)."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from minbench.data import manifest
from minbench.data.check import check_dataset
from minbench.data.datamodule import MineralDataModule
from minbench.data.masks import BadMask, decode_submission_mask, read_truth_mask
from minbench.errors import UserError
from minbench.scoring.formats.mask_pngs import load_true_mask

W, H = 48, 32
# aligned with JPEG's 8x8 blocks, so compression noise cannot move the edge
TRUTH = np.zeros((H, W), bool)
TRUTH[8:24, 16:40] = True


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def _write(path, kind: str) -> None:
    """The reference mask TRUTH, drawn in the way ``kind`` says."""
    u8 = TRUTH.astype(np.uint8) * 255
    if kind == "white":
        Image.fromarray(u8).save(path, format="PNG")
    elif kind == "red":
        rgb = np.zeros((H, W, 3), np.uint8)
        rgb[TRUTH] = (255, 0, 0)
        Image.fromarray(rgb).save(path, format="PNG")
    elif kind == "palette":
        im = Image.fromarray(TRUTH.astype(np.uint8), mode="L").convert("P")
        im.putpalette([0, 0, 0, 0, 200, 0] + [0] * 762)  # index 1 = green
        im.save(path, format="PNG")
    elif kind == "16bit":
        Image.fromarray(TRUTH.astype(np.uint16) * 65535).save(path, format="PNG")
    elif kind == "rgba":  # opaque white mineral, transparent (but white underneath) background
        rgba = np.full((H, W, 4), 255, np.uint8)
        rgba[..., 3] = u8
        Image.fromarray(rgba, mode="RGBA").save(path, format="PNG")
    elif kind == "exif":  # stored sideways; orientation 6 turns it upright
        Image.fromarray(np.rot90(u8, 1).copy()).save(path, format="PNG", exif=_exif(6))
    elif kind == "jpeg":
        rgb = np.zeros((H, W, 3), np.uint8)
        rgb[TRUTH] = (240, 235, 230)
        Image.fromarray(rgb).save(path, format="JPEG", quality=60)
    elif kind == "empty":
        Image.fromarray(np.zeros((H, W), np.uint8)).save(path, format="PNG")
    elif kind == "garbage":
        path.write_bytes(b"not an image at all")
    elif kind == "wrong_size":
        Image.fromarray(np.zeros((H + 4, W), np.uint8)).save(path, format="PNG")
    elif kind == "odd_mode":
        Image.fromarray(TRUTH.astype(np.float32)).save(path, format="TIFF")  # mode F
    else:
        raise ValueError(kind)


GOOD = ("white", "red", "palette", "16bit", "rgba", "exif", "jpeg")
BAD = {"garbage": "unreadable", "wrong_size": "size", "odd_mode": "mode"}


def _dataset(folder, kinds) -> pd.DataFrame:
    (folder / "img").mkdir(parents=True)
    (folder / "mask").mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for i, kind in enumerate(kinds):
        photo = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
        Image.fromarray(photo).save(folder / "img" / f"{i}.jpg", quality=90)
        ext = {"jpeg": "jpg", "odd_mode": "tif"}.get(kind, "png")
        _write(folder / "mask" / f"{kind}.{ext}", kind)
        row = manifest.empty_row()
        row.update(sample_id=kind, image_path=f"img/{i}.jpg", width=W, height=H, species="quartz", source="synth",
                   segmentation=True, mask_path=f"mask/{kind}.{ext}")
        rows.append(row)
    df = pd.DataFrame(rows)
    manifest.write_dataset(folder, df, name="masks", version="1", source="synth")
    return manifest.read_manifest(folder)


def _module_masks(folder, tmp_path):
    """Masks as the data layer reads them at native size (for rows whose card makes the mask
    an input; the data module serves no test row's mask: the sealed protocol), by sample id;
    and the image cache's skip report."""
    from minbench.data.cache import ImageCache
    from minbench.data.datasets import NativeImages

    frame = manifest.read_manifest(folder)
    cache = ImageCache(folder, frame, 16, root=tmp_path / "cache")
    cache.ensure(np.arange(len(frame)))
    ok = np.flatnonzero(cache.ready(np.arange(len(frame))))
    batch = NativeImages(folder, frame, ok, None, with_mask=True).__getitems__(range(len(ok)))
    out = {sid: np.asarray(m, bool) for sid, m in zip(batch["sample_id"], batch["mask"])}
    sealed = MineralDataModule(folder, task="segmentation", image_size=None, batch_size=4, num_workers=0,
                               augment=False, cache_dir=tmp_path / "cache")
    assert all("mask" not in b for b in sealed.test_dataloader())
    return out, dict(zip(cache.skipped(np.arange(len(frame)))["sample_id"],
                         cache.skipped(np.arange(len(frame)))["reason"]))


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    folder = tmp_path_factory.mktemp("good_masks")
    return folder, _dataset(folder, (*GOOD, "empty"))


@pytest.mark.parametrize("kind", GOOD)
def test_every_colour_and_encoding_reads_as_the_drawn_mask(good, kind):
    folder, df = good
    row = next(df[df.sample_id == kind].itertuples(index=False))
    assert np.array_equal(load_true_mask(folder, row), TRUTH)


def test_data_module_check_and_scorer_read_identical_masks(good, tmp_path):
    folder, df = good
    served, skipped = _module_masks(folder, tmp_path)
    assert not skipped
    for row in df.itertuples(index=False):
        scorer = load_true_mask(folder, row)
        assert np.array_equal(served[row.sample_id], scorer), row.sample_id
        assert np.array_equal(scorer, TRUTH if row.sample_id != "empty" else np.zeros_like(TRUTH))
    report = check_dataset(folder)
    assert report.ok, report.problems
    # the empty truth mask is reported with its count and sample id, not scored silently
    assert report.summary["files"]["mask_empty"] == 1
    assert any(w.startswith("1 truth masks have no mineral pixel") and "empty" in w for w in report.warnings)


def test_bad_masks_get_the_same_verdict_everywhere(tmp_path):
    folder = tmp_path / "bad"
    df = _dataset(folder, ("white", *BAD))
    _, skipped = _module_masks(folder, tmp_path)
    report = check_dataset(folder)
    quick = check_dataset(folder, quick=True)
    for row in df.itertuples(index=False):
        if row.sample_id not in BAD:
            continue
        with pytest.raises(UserError) as scorer:
            load_true_mask(folder, row)
        verdict = str(scorer.value)
        assert "\n" not in verdict and str(folder / row.mask_path) in verdict
        assert skipped[row.sample_id] == verdict                       # the image cache skips the row with it
        assert any(verdict in p for p in report.problems), verdict     # `data check` reports it
        if BAD[row.sample_id] != "unreadable":                         # (a header read cannot judge garbage)
            assert any(verdict in p for p in quick.problems), verdict
    assert "white" not in skipped


def test_verdict_kinds_and_the_submission_rule():
    with pytest.raises(BadMask) as exc:
        read_truth_mask("/nonexistent/m.png", sample_id="s1")
    assert exc.value.kind == "missing" and "true mask of 's1' is missing" in str(exc.value)
    buf = io.BytesIO()
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(buf, format="PNG")
    with pytest.raises(BadMask, match="mode RGB; a mask has one channel") as exc:
        decode_submission_mask(buf.getvalue(), "x.png", W, H)  # submissions stay single-channel
    assert exc.value.kind == "mode"
    buf = io.BytesIO()
    Image.fromarray(np.full((H, W), 3, np.uint8)).save(buf, format="PNG")
    assert decode_submission_mask(buf.getvalue(), "x.png", W, H).all()  # nonzero = mineral


def test_tiny_dataset_masks_are_unchanged_by_the_truth_rule(tiny_dataset):
    """The embedded masks are white on black: the truth rule reads them as the old luma > 127 did."""
    df = manifest.read_manifest(tiny_dataset)
    rows = list(df[df.segmentation].itertuples(index=False))
    assert rows
    for row in rows:
        old = np.asarray(Image.open(tiny_dataset / row.mask_path).convert("L")) > 127
        assert np.array_equal(load_true_mask(tiny_dataset, row), old)


def _prepared_masks(out):
    df = manifest.read_manifest(out)
    return {r.sample_id: load_true_mask(out, r) for r in df[df.segmentation].itertuples(index=False)}


@pytest.fixture(scope="module")
def white_release(tmp_path_factory):
    from fixtures_release import build_release

    from minbench.data.release import prepare

    root = tmp_path_factory.mktemp("release_white")
    build_release(root / "src")
    prepare(root / "src", root / "out")
    return _prepared_masks(root / "out")


def test_a_release_drawn_in_red_prepares_the_same_masks(white_release, tmp_path):
    from fixtures_release import build_release

    from minbench.data.release import prepare

    build_release(tmp_path / "src", mask_colour=(255, 0, 0))
    prepare(tmp_path / "src", tmp_path / "out")
    red = _prepared_masks(tmp_path / "out")
    assert red.keys() == white_release.keys() and red
    for sid, mask in red.items():
        assert mask.any() and np.array_equal(mask, white_release[sid]), sid


def test_prepare_reports_empty_truth_masks(tmp_path, capsys):
    from fixtures_release import build_release

    from minbench.data.release import REPORT_FILE, prepare

    build_release(tmp_path / "src", mask_colour=(0, 0, 0))
    capsys.readouterr()
    prepare(tmp_path / "src", tmp_path / "out")
    report = json.loads((tmp_path / "out" / REPORT_FILE).read_text())
    err = capsys.readouterr().err
    n = report["segmentation"]["rows"]
    assert n >= 1 and report["segmentation"]["masks_empty"] == n == len(report["empty_masks"])
    lines = [line for line in err.splitlines() if "truth masks have no mineral pixel" in line]
    assert len(lines) == 1 and f"{n} truth masks" in lines[0] and report["empty_masks"][0] in lines[0]
    check = check_dataset(tmp_path / "out")
    assert check.summary["files"]["mask_empty"] == n
