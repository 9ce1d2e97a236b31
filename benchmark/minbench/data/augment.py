"""Batched augmentation and normalisation on the device the model runs on.

Why here and not in DataLoader workers: per-sample PIL/albumentations transforms cost a few
milliseconds of CPU per image, which starves a GPU (and on a CPU box, competes with
decoding). On the device one batch is transformed by a handful of large tensor ops:

- geometry (random resized crop, horizontal and vertical flips, rotation) is ONE affine map
  per sample, all composed into a Bx2x3 matrix and applied by one ``F.grid_sample``; masks
  go through the same grid (nearest), boxes through the same matrix, so they stay aligned.
- colour (brightness, contrast, saturation, hue, grayscale) is ONE per-sample 3x3 matrix plus
  an offset: each of those jitters is linear in RGB (hue as a rotation about the grey axis
  in YIQ space), so their product is applied with one batched matmul, clamped once, then
  normalised. Grayscale is MineralNet's trick: it pushes a model from colour toward
  crystal form, which is what identifies many species.

On a CPU the same maps run through OpenCV instead (``backend="opencv"``, the default there):
its fixed-point uint8 warp and per-pixel 3x4 colour transform, one call per image, then a
NumPy normalisation, cost about 0.8 ms per 224 px image on one core (all three) against
3.1 ms for the torch ops, and there the "device" is the very cores that would otherwise
decode. The images of a batch are split over ``torch.get_num_threads()`` Python threads
(OpenCV and NumPy release the GIL). Parameters and matrices are the same, so one seed
gives the same augmentation on either backend, up to uint8 rounding (about 1/255; tested).

Both backends, and ``eval_transform``, return Bx3xSxS float32 in ``channels_last`` memory
layout: the cache's HWC order, so no transposing copy.

Random parameters are drawn per sample on the CPU from a ``torch.Generator`` (the caller
seeds it from (seed, epoch, batch index)), then moved to the device: results do not depend
on the device or on how many workers loaded the batch. The torch backend has no Python
loop over samples.

What stays on the CPU: decoding, EXIF rotation and the whole-image resize, once, when the
cache is built (``minbench.data.decode``; PIL box resize). Per-sample ops that have no
cheap batched form (JPEG re-compression, blur kernels of random size, ...) can be given to
the data module as an albumentations pipeline (``cpu_transform=``): it runs in the
DataLoader workers on the cached uint8 image (and mask), before this module's ops.

Differences from torchvision's transforms: jitter ops run in a fixed order and clamp once
at the end (not after each op); the crop's scale/ratio are clamped instead of retried;
pixels from outside the image after rotation are filled by reflection.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# ITU-R BT.601 luma, as torchvision's rgb_to_grayscale uses
_LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the training augmentation (0 / 1.0 switches an op off)."""

    crop_scale: tuple[float, float] = (0.25, 1.0)   # area fraction of the random resized crop
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # aspect ratio of the crop
    hflip: float = 0.5
    vflip: float = 0.5        # a specimen photo has no privileged "up" for its crystals
    rotate: float = 30.0      # degrees, uniform in [-rotate, rotate]
    brightness: float = 0.3   # factor in [1 - b, 1 + b]
    contrast: float = 0.3
    saturation: float = 0.3
    hue: float = 0.03         # fraction of a full turn, in [-h, h]
    grayscale: float = 0.2    # probability


def sample_params(batch_size: int, cfg: AugmentConfig, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Per-sample random parameters (CPU tensors), all drawn from ``generator``."""
    def uniform(lo, hi):
        return lo + (hi - lo) * torch.rand(batch_size, generator=generator, dtype=torch.float64)

    area = uniform(*cfg.crop_scale)
    log_ratio = uniform(math.log(cfg.crop_ratio[0]), math.log(cfg.crop_ratio[1]))
    ratio = torch.exp(log_ratio)
    w = torch.sqrt(area * ratio).clamp(max=1.0)   # crop width / image width
    h = torch.sqrt(area / ratio).clamp(max=1.0)
    cx = (1 - w) * (2 * torch.rand(batch_size, generator=generator, dtype=torch.float64) - 1)
    cy = (1 - h) * (2 * torch.rand(batch_size, generator=generator, dtype=torch.float64) - 1)
    flip_x = torch.where(torch.rand(batch_size, generator=generator) < cfg.hflip, -1.0, 1.0).double()
    flip_y = torch.where(torch.rand(batch_size, generator=generator) < cfg.vflip, -1.0, 1.0).double()
    angle = uniform(-cfg.rotate, cfg.rotate) * math.pi / 180
    return {
        "w": w, "h": h, "cx": cx, "cy": cy, "flip_x": flip_x, "flip_y": flip_y, "angle": angle,
        "brightness": uniform(1 - cfg.brightness, 1 + cfg.brightness),
        "contrast": uniform(1 - cfg.contrast, 1 + cfg.contrast),
        "saturation": uniform(1 - cfg.saturation, 1 + cfg.saturation),
        "hue": uniform(-cfg.hue, cfg.hue),
        "gray": (torch.rand(batch_size, generator=generator) < cfg.grayscale),
    }


def affine_matrices(p: dict[str, torch.Tensor]) -> torch.Tensor:
    """Bx2x3 maps from output to input coordinates (``affine_grid``'s normalised [-1, 1])."""
    cos, sin = torch.cos(p["angle"]), torch.sin(p["angle"])
    # input = centre + R(angle) @ diag(flip_x * w, flip_y * h) @ output
    sx, sy = p["flip_x"] * p["w"], p["flip_y"] * p["h"]
    theta = torch.stack([
        torch.stack([cos * sx, -sin * sy, p["cx"]], dim=1),
        torch.stack([sin * sx, cos * sy, p["cy"]], dim=1),
    ], dim=1)
    return theta


def colour_matrices(p: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(Bx3x3 matrix K, B contrast weight) with jitter(x) = K x + (1 - c) b mean_grey(x)."""
    b = p["brightness"]
    c = p["contrast"]
    s = p["saturation"]
    n = b.shape[0]
    eye = torch.eye(3, dtype=torch.float64).expand(n, 3, 3)
    luma = torch.tensor(_LUMA, dtype=torch.float64)
    to_grey = torch.ones(3, 1, dtype=torch.float64) @ luma[None]            # 3x3: every channel = luma
    sat = s[:, None, None] * eye + (1 - s)[:, None, None] * to_grey
    # hue: rotate the chroma plane (I, Q) of YIQ about the grey (Y) axis
    yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]],
                       dtype=torch.float64)
    a = 2 * math.pi * p["hue"]
    rot = torch.zeros(n, 3, 3, dtype=torch.float64)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2] = torch.cos(a), -torch.sin(a)
    rot[:, 2, 1], rot[:, 2, 2] = torch.sin(a), torch.cos(a)
    hue = torch.linalg.inv(yiq) @ rot @ yiq
    grey = torch.where(p["gray"][:, None, None], to_grey.expand(n, 3, 3), eye)
    k = (c * b)[:, None, None] * (grey @ hue @ sat)
    return k, (1 - c) * b


def _grey_mean(x: torch.Tensor) -> torch.Tensor:
    """Per-sample mean luma of Bx3xHxW (torchvision's contrast pivots on the grey image's mean)."""
    luma = torch.tensor(_LUMA, dtype=x.dtype, device=x.device)
    return torch.einsum("bchw,c->b", x, luma) / (x.shape[2] * x.shape[3])


def _mean_std(mean, std, device) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.tensor(mean, dtype=torch.float32, device=device),
            torch.tensor(std, dtype=torch.float32, device=device))


def eval_transform(images: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """No augmentation: the cached whole-image resize, normalised (a CAM maps back exactly).

    BxSxSx3 uint8 to Bx3xSxS float32 in ``channels_last`` memory layout, i.e. the cache's own
    HWC order: no transposing copy (which cost more than the rest of this function on a CPU),
    and the layout convolutions run fastest in on GPUs (tensor cores) and oneDNN CPUs.
    One converting copy, then one in-place scale and shift over rows of W*3 values, each
    with the per-channel constants tiled W times (so the inner loop is long and vectorises).
    """
    n, h, w, c = images.shape
    scale, shift = _row_constants(mean, std, w, images.device)
    out = torch.empty(n, h, w, c, dtype=torch.float32, device=images.device)
    rows = out.view(n * h, w * c)
    rows.copy_(images.reshape(n * h, w * c))
    rows.mul_(scale).sub_(shift)
    return out.permute(0, 3, 1, 2)


def _row_constants(mean, std, width: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(x / 255 - mean) / std as x * scale - shift, both tiled over a row of ``width`` RGB pixels."""
    m, sd = _mean_std(mean, std, device)
    return (1 / (255 * sd)).repeat(width), (m / sd).repeat(width)


def sampling_grid(theta: torch.Tensor, size: int) -> torch.Tensor:
    """``F.affine_grid(theta, [B, C, size, size], align_corners=False)``, built by broadcasting.

    The same numbers with two broadcast passes instead of a batched matmul over a base grid
    (several times faster on a CPU).
    """
    coords = (torch.arange(size, dtype=theta.dtype, device=theta.device) * 2 + 1) / size - 1
    grid = torch.empty(theta.shape[0], size, size, 2, dtype=theta.dtype, device=theta.device)
    for k in range(2):  # the x and y coordinates, not samples
        a, b, t = (theta[:, k, j, None, None] for j in range(3))
        torch.add(a * coords[None, None, :], b * coords[None, :, None] + t, out=grid[..., k])
    return grid


def transform_boxes(boxes: torch.Tensor, theta: torch.Tensor, size: int) -> torch.Tensor:
    """Bx4 pixel boxes [x1,y1,x2,y2] of the input to the output of ``theta`` (enclosing box).

    NaN boxes (unknown) stay NaN; boxes are clipped to the output image.
    """
    a, t = theta[:, :, :2].to(boxes.dtype), theta[:, :, 2].to(boxes.dtype)
    inv = torch.linalg.inv(a)
    x1, y1, x2, y2 = boxes.unbind(1)
    corners = torch.stack([torch.stack([x1, y1], 1), torch.stack([x2, y1], 1),
                           torch.stack([x1, y2], 1), torch.stack([x2, y2], 1)], dim=1)  # Bx4x2
    norm = corners / size * 2 - 1                                   # pixel edges -> [-1, 1]
    out = torch.einsum("bij,bkj->bki", inv, norm - t[:, None, :])
    out = ((out + 1) / 2 * size).clamp(0, size)
    return torch.cat([out.amin(1), out.amax(1)], dim=1)


BACKENDS = ("auto", "torch", "opencv")


def train_transform(images: torch.Tensor, generator: torch.Generator, cfg: AugmentConfig = AugmentConfig(),
                    masks: torch.Tensor | None = None, boxes: dict[str, torch.Tensor] | None = None,
                    mean=IMAGENET_MEAN, std=IMAGENET_STD, backend: str = "auto"):
    """Augment and normalise a batch on its device.

    ``images`` BxSxSx3 uint8; ``masks`` Bx1xSxS uint8 (optional); ``boxes`` name -> Bx4 float
    pixel boxes (optional). Returns (Bx3xSxS float32 normalised, masks, boxes), the last two
    transformed with the same geometry (None when not given). ``backend``: ``torch``
    (batched tensor ops, any device), ``opencv`` (CPU tensors only) or ``auto`` (OpenCV on
    a CPU, torch elsewhere).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
    if backend == "auto":
        backend = "opencv" if images.device.type == "cpu" else "torch"
    p = sample_params(images.shape[0], cfg, generator)
    theta64 = affine_matrices(p)
    apply = _augment_opencv if backend == "opencv" else _augment_torch
    y, out_masks = apply(images, masks, theta64, p, mean, std)
    out_boxes = None
    if boxes is not None:
        out_boxes = {name: transform_boxes(b, theta64.to(b.device), images.shape[1]) for name, b in boxes.items()}
    return y, out_masks, out_boxes


def _augment_torch(images, masks, theta64, p, mean, std):
    n, size = images.shape[0], images.shape[1]
    device = images.device
    grid = sampling_grid(theta64.to(device=device, dtype=torch.float32), size)
    x = images.permute(0, 3, 1, 2).float()                            # 0..255, scaled below
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    # colour jitter, the /255 and the normalisation folded into one matrix and offset:
    # z = (clamp(K x / 255 + o, 0, 1) - m) / s = clamp(K' x + o', -m / s, (1 - m) / s)
    m, sd = _mean_std(mean, std, device)
    k, w_mean = colour_matrices(p)
    k = k.to(device=device, dtype=torch.float32) / (255 * sd[None, :, None])
    o = w_mean.to(device=device, dtype=torch.float32) * _grey_mean(x) / 255
    offset = (o[:, None] - m[None, :]) / sd[None, :]
    y = torch.baddbmm(offset[:, :, None], k, x.view(n, 3, size * size)).view(n, 3, size, size)
    y = y.clamp_((-m / sd)[None, :, None, None], ((1 - m) / sd)[None, :, None, None])
    # eval_transform's layout; one copy, cheaper than a matmul over a BxHWx3 view's rows of 3
    y = y.contiguous(memory_format=torch.channels_last)
    out_masks = None
    if masks is not None:
        out_masks = F.grid_sample(masks.float(), grid, mode="nearest", padding_mode="reflection",
                                  align_corners=False).to(torch.uint8)
    return y, out_masks


def pixel_affine(theta: torch.Tensor, size: int) -> np.ndarray:
    """``affine_matrices``' maps (normalised, ``align_corners=False``) as Bx2x3 float32 maps
    from output to input pixel coordinates (OpenCV's ``WARP_INVERSE_MAP``)."""
    to_norm = np.array([[2 / size, 0, 1 / size - 1], [0, 2 / size, 1 / size - 1], [0, 0, 1]])
    full = np.concatenate([theta.detach().cpu().numpy(), np.tile([[[0.0, 0.0, 1.0]]], (len(theta), 1, 1))], 1)
    return (np.linalg.inv(to_norm) @ full @ to_norm)[:, :2].astype(np.float32)


def _augment_opencv(images, masks, theta64, p, mean, std):
    import cv2

    if images.device.type != "cpu":
        raise ValueError("the opencv backend takes CPU tensors")
    n, size = images.shape[0], images.shape[1]
    src = np.ascontiguousarray(images.numpy())
    warped = np.empty_like(src)
    out = np.empty((n, size, size, 3), np.float32)
    maps = pixel_affine(theta64, size)
    k, w_mean = colour_matrices(p)
    # the 3x4 colour map of each image; its offset column needs the warped image's mean grey
    transform = np.zeros((n, 3, 4), np.float32)
    transform[:, :, :3] = k.numpy()
    contrast_weight = w_mean.numpy()
    scale, shift = (t.numpy() for t in _row_constants(mean, std, size, "cpu"))
    m_src = None if masks is None else np.ascontiguousarray(masks[:, 0].numpy())
    m_out = None if masks is None else np.empty_like(m_src)

    def augment(lo: int, hi: int) -> None:
        # BORDER_REFLECT (edge pixel repeated) is grid_sample's reflection with align_corners=False;
        # cv2.transform is uint8 in, uint8 out: it rounds and saturates, which is the clamp to [0, 1]
        for i in range(lo, hi):
            cv2.warpAffine(src[i], maps[i], (size, size), dst=warped[i],
                           flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT)
            r, g, b, _ = cv2.mean(warped[i])
            transform[i, :, 3] = contrast_weight[i] * (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b)
            cv2.transform(warped[i], transform[i], dst=warped[i])
            if m_src is not None:
                cv2.warpAffine(m_src[i], maps[i], (size, size), dst=m_out[i],
                               flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT)
        # eval_transform's normalisation, in NumPy: torch's OpenMP threads would spin-wait
        # after it and take the cores from the next batch's OpenCV calls
        rows = out[lo:hi].reshape(-1, size * 3)
        np.multiply(warped[lo:hi].reshape(-1, size * 3), scale, out=rows)
        rows -= shift

    _in_threads(augment, n)
    out_masks = None if m_out is None else torch.from_numpy(m_out)[:, None]
    return torch.from_numpy(out).permute(0, 3, 1, 2), out_masks


_POOL: tuple[int, int, ThreadPoolExecutor] | None = None   # (pid, threads, pool)


def _in_threads(fn, n: int) -> None:
    """``fn(lo, hi)`` over ``torch.get_num_threads()`` contiguous chunks of range(n), in threads.

    OpenCV and NumPy release the GIL, so the chunks run on separate cores. One Python loop
    over OpenCV's own multi-threaded kernels gave about 10% fewer images/s in ``minbench
    bench data`` on 2 cores: its threads synchronise on every small image.
    """
    global _POOL
    threads = max(1, min(n, torch.get_num_threads()))
    if threads == 1:
        fn(0, n)
        return
    if _POOL is None or _POOL[0] != os.getpid() or _POOL[1] < threads:   # a forked child has no threads
        _POOL = (os.getpid(), threads, ThreadPoolExecutor(threads, thread_name_prefix="minbench-augment"))
    bounds = np.linspace(0, n, threads + 1).round().astype(int)
    for job in [_POOL[2].submit(fn, lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]:
        job.result()
