"""``check_dataset`` on tiny hand-made manifests: what it must find, and that a sound one passes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from minbench.cli import main
from minbench.data import manifest
from minbench.data.check import check_dataset, print_report
from minbench.errors import UserError

W, H = 40, 30


def _dataset(folder, *, edit=None):
    """Eight JPEGs, two fewshot classes, one zero-shot class, two masks; ``edit(df)`` before writing."""
    (folder / "img").mkdir(parents=True)
    (folder / "masks").mkdir()
    rows = []
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(folder / f"img/{i}.jpg", quality=90)
        row = manifest.empty_row()
        species = ["quartz", "calcite", "realgar"][i % 3]
        row.update(sample_id=f"s{i}", image_path=f"img/{i}.jpg", width=W, height=H, species=species,
                   source="synth", fewshot_10="" if species == "realgar" else ("test" if i >= 6 else "train"),
                   zeroshot=species == "realgar")
        if i < 2:
            mask = np.zeros((H, W), np.uint8)
            mask[5:20, 5:30] = 255
            Image.fromarray(mask).save(folder / f"masks/{i}.png")
            row.update(segmentation=True, mask_path=f"masks/{i}.png")
        rows.append(row)
    df = pd.DataFrame(rows)
    if edit:
        edit(df)
    manifest.write_dataset(folder, df, name="tiny", version="1", source="synth")
    return folder


def test_sound_dataset_passes_with_a_summary(tmp_path, capsys):
    report = check_dataset(_dataset(tmp_path / "d"))
    assert report.ok, report.problems
    s = report.summary
    assert s["rows"] == 8 and s["splits"]["fewshot_10"] == {"train": 4, "test": 2, "classes": 2, "test_classes": 2}
    assert s["splits"]["zeroshot"] == {"rows": 2, "classes": 1} and s["splits"]["segmentation"] == {"rows": 2}
    print_report(report)
    out = capsys.readouterr().out
    assert "fewshot_10" in out and "OK: the dataset is sound" in out


def test_corrupted_jpeg_and_missing_file_are_found(tmp_path):
    folder = _dataset(tmp_path / "d")
    data = (folder / "img/3.jpg").read_bytes()
    (folder / "img/3.jpg").write_bytes(data[: len(data) // 2])  # cut short: the header still reads
    (folder / "img/4.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "img/5.jpg").unlink()
    report = check_dataset(folder)
    assert not report.ok
    text = "\n".join(report.problems)
    assert "2 images fail to decode" in text and "s3: 3.jpg" in text and "s4: 4.jpg" in text
    assert "1 image files missing: s5: img/5.jpg" in text
    # The quick mode reads headers only: the cut file passes, the garbage one does not.
    quick = check_dataset(folder, quick=True)
    assert quick.summary["files"]["undecodable"] == 1 and quick.summary["files"]["missing"] == 1


def test_wrong_size_mask_and_image_size_mismatch_are_found(tmp_path):
    folder = _dataset(tmp_path / "d")
    Image.fromarray(np.full((H + 2, W, 1), 255, np.uint8)[..., 0]).save(folder / "masks/1.png")
    Image.fromarray(np.zeros((H, W + 4, 3), np.uint8)).save(folder / "img/2.jpg")
    report = check_dataset(folder)
    text = "\n".join(report.problems)
    # the scorer's own verdict on that mask, word for word
    assert (f"1 masks differ in size from their image: {folder / 'masks/1.png'}: true mask is {W}x{H + 2} "
            f"but the manifest says the image is {W}x{H}") in text
    assert f"s2: image is {W + 4}x{H}, manifest says {W}x{H}" in text


def test_split_leaks_are_found(tmp_path):
    def leak(df):
        df.loc[0, "zeroshot"] = True               # a fewshot class in the zero-shot set
        df.loc[7, "image_path"] = df.loc[0, "image_path"]  # the same photo in train and test
        df.loc[7, "fewshot_10"] = "test"
        df.loc[7, "species"] = "quartz"
    report = check_dataset(_dataset(tmp_path / "d", edit=leak))
    text = "\n".join(report.problems)
    assert "zeroshot: 1 classes are also fewshot_10 classes (e.g. 'quartz')" in text
    assert "fewshot_10: 1 images are in both train and test (e.g. img/0.jpg)" in text


def test_edited_manifest_breaks_the_fingerprint_and_schema_problems_are_listed(tmp_path):
    folder = _dataset(tmp_path / "d")
    df = pd.read_parquet(folder / "manifest.parquet")
    df.loc[1, "species"] = "pyrite"
    df.loc[2, "sample_id"] = "s0"
    df.to_parquet(folder / "manifest.parquet", index=False)
    report = check_dataset(folder)
    text = "\n".join(report.problems)
    assert "duplicate sample_id 's0'" in text and "does not match the manifest's" in text


def test_cli_check_exit_codes(tmp_path, capsys):
    folder = _dataset(tmp_path / "d")
    assert main(["data", "check", "--data", str(folder)]) == 0
    (folder / "img/0.jpg").write_bytes(b"broken")
    assert main(["data", "check", "--data", str(folder)]) == 1
    out = capsys.readouterr().out
    assert "problem:" in out and "1 problem(s) found" in out
    (folder / "manifest.parquet").write_bytes(b"not parquet")
    assert main(["data", "check", "--data", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a readable Parquet manifest" in err and "Traceback" not in err


def test_check_needs_a_manifest(tmp_path):
    with pytest.raises(UserError, match="no manifest here"):
        check_dataset(tmp_path)


def test_photo_test_in_one_subset_and_train_in_another_is_a_warning(tmp_path):
    def cross(df):
        df["fewshot_98"] = df["fewshot_10"]
        df.loc[6, "fewshot_98"] = "train"
    report = check_dataset(_dataset(tmp_path / "d", edit=cross))
    assert report.ok and "1 images are test in fewshot_10 but train in fewshot_98" in report.warnings


def test_embedded_synth_dataset_is_sound(request):
    pytest.importorskip("minbench.data.synth")  # the generator lands on main separately
    report = check_dataset(request.getfixturevalue("tiny_dataset"))
    assert report.ok, report.problems
