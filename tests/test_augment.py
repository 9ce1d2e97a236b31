"""Batched device augmentation: exact where it must be, aligned, seeded, vectorised per sample."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from minbench.data import augment as A

MEAN = torch.tensor(A.IMAGENET_MEAN)[None, :, None, None]
STD = torch.tensor(A.IMAGENET_STD)[None, :, None, None]
OFF = A.AugmentConfig(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), hflip=0.0, vflip=0.0, rotate=0.0,
                      brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0, grayscale=0.0)


def _images(n=4, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, size, size, 3), generator=g, dtype=torch.uint8)


def _unnorm(x):
    return x * STD + MEAN


# Both backends give the same augmentation; OpenCV's works in uint8, hence its 1/255 rounding.
BACKENDS = pytest.mark.parametrize("backend, atol", [("torch", 1e-4), ("opencv", 1 / 255 + 1e-4)])


def test_sampling_grid_equals_affine_grid():
    theta = torch.randn(5, 2, 3)
    assert torch.allclose(A.sampling_grid(theta, 17), F.affine_grid(theta, [5, 3, 17, 17], align_corners=False),
                          atol=1e-5)


def test_eval_transform_is_plain_normalisation():
    x = _images()
    ref = (x.permute(0, 3, 1, 2).float() / 255 - MEAN) / STD
    out = A.eval_transform(x)
    assert out.is_contiguous(memory_format=torch.channels_last) and out.dtype == torch.float32
    assert torch.allclose(out, ref, atol=1e-5)


@BACKENDS
def test_all_ops_off_is_the_eval_transform(backend, atol):
    x = _images()
    out, _, _ = A.train_transform(x, torch.Generator().manual_seed(0), OFF, backend=backend)
    assert torch.allclose(_unnorm(out), _unnorm(A.eval_transform(x)), atol=atol)


@BACKENDS
def test_flips_are_exact(backend, atol):
    x = _images()
    cfg = A.AugmentConfig(**{**OFF.__dict__, "hflip": 1.0, "vflip": 1.0})
    out, _, _ = A.train_transform(x, torch.Generator().manual_seed(0), cfg, backend=backend)
    assert torch.allclose(_unnorm(out), _unnorm(A.eval_transform(x).flip(2, 3)), atol=atol)


@BACKENDS
def test_same_seed_same_batch_and_per_sample_parameters_differ(backend, atol):
    x = _images(8)
    cfg = A.AugmentConfig()
    a, _, _ = A.train_transform(x, torch.Generator().manual_seed(7), cfg, backend=backend)
    b, _, _ = A.train_transform(x, torch.Generator().manual_seed(7), cfg, backend=backend)
    c, _, _ = A.train_transform(x, torch.Generator().manual_seed(8), cfg, backend=backend)
    assert torch.equal(a, b) and not torch.allclose(a, c)
    same = _images(1).expand(8, -1, -1, -1).contiguous()   # one image, eight different augmentations
    d, _, _ = A.train_transform(same, torch.Generator().manual_seed(7), cfg, backend=backend)
    assert len({round(float(v), 4) for v in d.mean((1, 2, 3))}) == 8
    p = A.sample_params(8, cfg, torch.Generator().manual_seed(7))
    assert p["w"].unique().numel() == 8 and p["angle"].unique().numel() == 8


@BACKENDS
def test_masks_and_boxes_stay_aligned_with_the_image(backend, atol):
    n, size = 16, 64
    x = torch.zeros(n, size, size, 3, dtype=torch.uint8)
    mask = torch.zeros(n, 1, size, size, dtype=torch.uint8)
    x[:, 20:44, 16:40] = 255
    mask[:, :, 20:44, 16:40] = 1
    box = torch.tensor([[16.0, 20.0, 40.0, 44.0]]).expand(n, 4).clone()
    cfg = A.AugmentConfig(**{**A.AugmentConfig().__dict__, "brightness": 0.0, "contrast": 0.0,
                             "saturation": 0.0, "hue": 0.0, "grayscale": 0.0, "crop_scale": (0.6, 1.0)})
    out, m, boxes = A.train_transform(x, torch.Generator().manual_seed(3), cfg, masks=mask, boxes={"bbox": box},
                                      backend=backend)
    bright = _unnorm(out).mean(1) > 0.5
    for i in range(n):
        mi = m[i, 0].bool()
        iou = (bright[i] & mi).sum() / (bright[i] | mi).sum()
        assert iou > 0.9, (i, float(iou))
        ys, xs = torch.nonzero(mi, as_tuple=True)
        if len(xs):
            tight = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)
            b = boxes["bbox"][i]
            # the transformed box encloses the mask (a rotated box's hull is larger, never smaller)
            assert (b[:2] <= tight[:2] + 1.5).all() and (b[2:] >= tight[2:] - 1.5).all()
    assert m.dtype == torch.uint8 and set(m.unique().tolist()) <= {0, 1}
    nan = torch.full((n, 4), float("nan"))
    _, _, b2 = A.train_transform(x, torch.Generator().manual_seed(3), cfg, boxes={"cube_bbox": nan}, backend=backend)
    assert torch.isnan(b2["cube_bbox"]).all()


def _colour_only(**kw):
    return A.AugmentConfig(**{**OFF.__dict__, **kw})


@BACKENDS
def test_colour_jitter_matches_torchvision_per_op(backend, atol):
    x = _images(6, size=32)
    base = x.permute(0, 3, 1, 2).float() / 255
    for name, fn in [("brightness", TF.adjust_brightness), ("contrast", TF.adjust_contrast),
                     ("saturation", TF.adjust_saturation)]:
        g = torch.Generator().manual_seed(1)
        cfg = _colour_only(**{name: 0.5})
        factors = A.sample_params(6, cfg, torch.Generator().manual_seed(1))[name]
        out, _, _ = A.train_transform(x, g, cfg, backend=backend)
        ref = torch.stack([fn(img, float(f)) for img, f in zip(base, factors)])
        assert torch.allclose(_unnorm(out), ref, atol=max(2e-3, atol)), name


@BACKENDS
def test_grayscale_and_hue_keep_luma(backend, atol):
    x = _images(4)
    out, _, _ = A.train_transform(x, torch.Generator().manual_seed(0), _colour_only(grayscale=1.0), backend=backend)
    img = _unnorm(out)
    assert torch.allclose(img[:, 0], img[:, 1], atol=1e-4) and torch.allclose(img[:, 1], img[:, 2], atol=1e-4)
    assert torch.allclose(img[:, 0], TF.rgb_to_grayscale(x.permute(0, 3, 1, 2).float() / 255)[:, 0], atol=max(2e-3, atol))
    grey = torch.full((2, 8, 8, 3), 128, dtype=torch.uint8)
    out, _, _ = A.train_transform(grey, torch.Generator().manual_seed(0), _colour_only(hue=0.5), backend=backend)
    assert torch.allclose(_unnorm(out), torch.full_like(out, 128 / 255), atol=max(1e-3, atol))   # grey has no hue
    p = A.sample_params(3, OFF, torch.Generator().manual_seed(0))
    p["hue"] = torch.tensor([0.0, 1 / 3, 0.5], dtype=torch.float64)
    k, _ = A.colour_matrices(p)
    red = torch.tensor([0.8, 0.1, 0.1], dtype=torch.float64)
    out = k @ red
    luma = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64)
    assert torch.allclose(out[0], red)
    assert torch.allclose(out @ luma, (red @ luma).expand(3), atol=1e-6)   # a hue turn keeps luma
    assert out[1].argmax() != 0 and out[2].argmax() != 0                      # red is red no more


def test_backends_agree_on_the_same_seed():
    x, cfg = _images(8, size=48), A.AugmentConfig()
    mask = (x[..., :1] > 128).permute(0, 3, 1, 2).to(torch.uint8)
    a, ma, _ = A.train_transform(x, torch.Generator().manual_seed(5), cfg, masks=mask, backend="torch")
    b, mb, _ = A.train_transform(x, torch.Generator().manual_seed(5), cfg, masks=mask, backend="opencv")
    diff = (_unnorm(a) - _unnorm(b)).abs()
    assert diff.mean() < 1 / 255 and diff.max() < 4 / 255
    assert all(t.is_contiguous(memory_format=torch.channels_last) for t in (a, b, A.eval_transform(x)))
    assert (ma != mb).float().mean() < 0.02   # nearest-neighbour ties may round the other way
    with pytest.raises(ValueError, match="backend"):
        A.train_transform(x, torch.Generator(), cfg, backend="pillow")


def test_opencv_threads_do_not_change_the_batch():
    x, cfg = _images(7, size=40), A.AugmentConfig()
    mask = (x[..., :1] > 128).permute(0, 3, 1, 2).to(torch.uint8)
    threads = torch.get_num_threads()
    try:
        results = []
        for n in (1, 3):   # 3 threads over 7 images: uneven chunks
            torch.set_num_threads(n)
            results.append(A.train_transform(x, torch.Generator().manual_seed(2), cfg, masks=mask, backend="opencv"))
    finally:
        torch.set_num_threads(threads)
    (a, ma, _), (b, mb, _) = results
    assert torch.equal(a, b) and torch.equal(ma, mb)
