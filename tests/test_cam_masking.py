"""From a score map to a mask (``minbench.models.masking``): threshold rules, upsampling,
their registries, and the split from the CAM extractor."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from minbench.errors import UserError
from minbench.models import cam as cams
from minbench.models import masking


def test_thresholds():
    cam = np.zeros((20, 20), dtype=np.float32)
    cam[5:10, 5:10] = 0.9
    cam[12:, 12:] = 0.3
    assert masking.threshold_cam(cam, "otsu").sum() == 25
    assert masking.threshold_cam(cam, "fixed", 0.2).sum() == 25 + 64
    ramp = np.linspace(0, 1, 1000, dtype=np.float32).reshape(20, 50)
    assert abs(masking.threshold_cam(ramp, "percentile", 70).mean() - 0.3) < 0.01
    assert abs(masking.threshold_cam(ramp, "fixed").mean() - 0.5) < 0.01  # default 0.5
    for rule in masking.THRESHOLDS:  # no evidence anywhere -> empty mask
        assert not masking.threshold_cam(np.zeros((8, 8)), rule).any()
    with pytest.raises(UserError, match="threshold-value"):
        masking.threshold_cam(cam, "fixed", 3.0)
    with pytest.raises(UserError, match="percentile"):
        masking.threshold_cam(cam, "percentile", 101)
    with pytest.raises(UserError, match="--threshold 'mean'"):
        masking.threshold_cam(cam, "mean")


def test_cam_to_mask_at_the_photo_resolution():
    cam = np.zeros((16, 16), dtype=np.float32)
    cam[:, :8] = 1.0
    for mode in masking.UPSAMPLING:
        mask = masking.cam_to_mask(cam, (90, 120), upsample=mode)
        assert mask.shape == (90, 120)
        assert abs(mask[:, :60].mean() - 1.0) < 0.05 and mask[:, 64:].mean() < 0.05
    with pytest.raises(UserError, match="upsample"):
        masking.upsample_cam(cam, (4, 4), "lanczos")


def test_rules_and_modes_are_registries_owned_by_masking_only():
    assert list(masking.THRESHOLD_RULES) == ["otsu", "fixed", "percentile", "val"]
    assert list(masking.UPSAMPLING) == ["bilinear", "bicubic", "nearest"]
    assert masking.DEFAULT_THRESHOLD_VALUE == {"otsu": None, "fixed": 0.5, "percentile": 70.0, "val": None}
    # one owner: the CAM module does not hand the masking names out a second time
    for name in ("THRESHOLDS", "UPSAMPLING", "cam_to_mask", "check_threshold", "threshold_cam", "otsu_mask"):
        assert not hasattr(cams, name)
    with pytest.raises(UserError, match="--upsample 'lanczos': unknown upsampling mode"):
        masking.check_upsample("lanczos")
    with pytest.raises(UserError, match="did you mean percentile"):
        masking.check_threshold("percentil", None)


def test_the_saliency_baselines_use_the_masking_steps_without_the_extractor():
    code = ("import sys; import minbench.models.saliency_baselines as sb; "
            "assert 'minbench.models.cam' not in sys.modules, 'cam imported'; "
            "assert sb.baseline_names() == ['centre', 'colour', 'border', 'blob']")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
