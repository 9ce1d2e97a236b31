"""Colour statistics of a photo's non-backdrop pixels: the features of the colour-only reference.

``ColourStats`` is a backbone without weights (``backbone: colour-stats``, registered in
``minbench.models.backbones.HANDCRAFTED_BACKBONES``) for the training-free ``FeatureBaselineTask``:
a linear probe on these features (``baselines/colour-logistic.yaml``) shows how much of a task
colour alone solves. It learns nothing itself and reads nothing but the photo: the pixels it
describes are those the shared backdrop model (``saliency_baselines.non_backdrop_mask``)
finds off the backdrop (specimen, matrix, label, cube), so the grey backdrop that fills most
of a museum photo no longer dilutes the specimen's colour (``exclude_backdrop``; off, it
describes the whole photo).

What it computes, per image (``forward``: normalised B x 3 x S x S -> B x D):

1. **Undo the data module's normalisation** exactly: ``x * std + mean`` with the
   normalisation the batches were made with (the data's ``TaskContext.mean/std``, handed
   over by the task's ``configure_data``; by default the data module's own,
   ``minbench.data.augment.IMAGENET_MEAN/STD``), clamped to sRGB [0, 1] (``to_srgb``).
2. **The non-backdrop pixels** (``non_backdrop_pixels``): the backdrop model runs on each
   photo (OpenCV, on the CPU); every statistic below is taken over the pixels off the
   backdrop only (a photo where it finds none, e.g. one flat colour, counts whole).
3. **White balance from the backdrop** (``white_balance``, on by default): the median
   linear R, G, B of a ring along the photo's edge (``border``, 8 % of the side: the museum
   backdrop, neutral by design; the median ignores the cube or label that may reach the
   edge) is taken as the camera's colour cast, and each channel of every pixel is scaled so
   that it comes out grey (von Kries). A cast is a gain per channel (illuminant, camera
   white balance), which this undoes for every colour; a bluish or yellowish exposure of the
   same specimen no longer moves its pixels to other bins. (Earlier versions subtracted the
   ring's a*, b* instead, which is right only near grey: on the specimen's saturated pixels
   alone it over-corrects, and it did worse on the training images below.)
4. **Linear sRGB -> CIE L*a*b*** (D65 white; ``srgb_to_lab``, OpenCV's float conversion
   within 0.5): lightness is separated from chroma, and Euclidean distances in a*b* are
   close to perceived colour differences, so fixed-width bins mean the same thing for every
   hue (in RGB a bin is a different amount of colour change in every corner of the cube).
5. **Joint a*b* histogram** (``ab_bins`` x ``ab_bins``, default 9 x 9 over a*, b* in
   [-``ab_range``, ``ab_range``], beyond that into the edge bins): the hue and saturation of
   the pixels taken, lightness left out, so a brighter or dimmer exposure of the
   same colour falls into the same bin. Joint, not two marginals: a red and a green
   specimen can have the same a* and b* marginals in mixtures. An odd number of bins puts
   the neutral axis (greys of the backdrop and matrix) in the middle of one bin instead of
   on the corner of four, where noise would scatter it.
6. **L* histogram** (``l_bins``, default 8, over [0, 100]): lightness separately (dark
   versus pale varieties, glossy highlights), coarse because exposure varies.
7. **Moments**: per channel (L*, a*, b*) the mean, the standard deviation and the
   ``quantiles`` (default 10 %, 50 %, 90 %): where the bulk and the tails of each channel
   lie, finer than the bins, robust to a few odd pixels (the label, the cube).

Each block is first put on a unit scale, so that no block dominates the cosine similarity
the kNN head uses by its size alone, and its weight alone sets its share:

- each histogram is a distribution (sums to 1) and is taken to the **square root**
  (Hellinger's map): the cosine of two such vectors is the Bhattacharyya coefficient, and
  a colour that covers a small share of the specimen still counts. A square-rooted
  distribution already has unit L2 norm.
- the moments are put on a common scale (L* centred on 50; all divided by 50), a constant
  1 is put in front and the block is **L2-normalised**: the constant keeps the moments'
  magnitude meaningful after normalisation (without it, two images whose moments are
  proportional would look identical).
- the unit blocks are concatenated, each times its ``block_weights`` entry: a block's share
  of the cosine is its weight squared over the sum of the squares. The defaults (a*b* 1,
  L* 0.1, moments 0.2: shares of 95 %, 1 %, 4 %) come from leave-one-out kNN on the
  *training* images of the embedded data, whole photos (fewshot-10 and fewshot-98; no test
  image seen): there the a*b* histogram carries nearly all the class information, lightness
  is mostly exposure (an L*-only kNN is at the training-prior floor), and equal weights
  cost 7-18 points of leave-one-out top-1 against these. They matter to a cosine head
  (prototype, kNN) only: the logistic head standardises every feature and learns its own
  weights. On another dataset, set ``model_kwargs: {block_weights: [1, 1, 1]}`` to weigh
  the three equally.

On the training images of the embedded ``small`` data (no test image seen; top-1 of
leave-one-out kNN, k = 20, fewshot-10 / fewshot-98): whole photo with the former a*b*
white balance 30.8 / 13.5 %; non-backdrop pixels with it 30.0 / 12.4 %, with none 32.0 /
12.3 %, with von Kries 37.2 / 16.8 % (the default).

Past the backdrop mask (one OpenCV call per photo, on the CPU) everything is batched tensor
arithmetic on the batch's device; at 64 px one CPU thread embeds a few hundred photos a second.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from minbench.data.augment import IMAGENET_MEAN, IMAGENET_STD

#: sRGB (linear) -> CIE XYZ, D65 (IEC 61966-2-1)
_SRGB_TO_XYZ = ((0.4124564, 0.3575761, 0.1804375),
                (0.2126729, 0.7151522, 0.0721750),
                (0.0193339, 0.1191920, 0.9503041))
#: the D65 reference white in XYZ
_D65_WHITE = (0.95047, 1.0, 1.08883)
_EPS = (6 / 29) ** 3


def srgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1] (B x 3 x H x W) -> CIE L*a*b* (B x 3 x H x W; L* in [0, 100], a*, b*
    roughly in [-110, 100]), D65 white (what OpenCV's float ``COLOR_RGB2LAB`` computes)."""
    return linear_to_lab(srgb_to_linear(rgb))


def srgb_to_linear(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1] -> linear light (IEC 61966-2-1), any shape."""
    rgb = rgb.float().clamp(0.0, 1.0)
    return torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)


def linear_to_lab(linear: torch.Tensor) -> torch.Tensor:
    """Linear sRGB light (B x 3 x H x W) -> CIE L*a*b*, D65 white."""
    matrix = torch.tensor(_SRGB_TO_XYZ, dtype=linear.dtype, device=linear.device)
    white = torch.tensor(_D65_WHITE, dtype=linear.dtype, device=linear.device)
    xyz = torch.einsum("ij,bjhw->bihw", matrix, linear) / white[None, :, None, None]
    f = torch.where(xyz > _EPS, xyz.clamp_min(_EPS) ** (1 / 3), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    fx, fy, fz = f.unbind(1)
    return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], dim=1)


def to_srgb(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Normalised images (B x 3 x H x W) -> sRGB in [0, 1]: the normalisation ``mean``, ``std``
    undone exactly, clamped."""
    mean = torch.as_tensor(mean, dtype=torch.float32, device=images.device)
    std = torch.as_tensor(std, dtype=torch.float32, device=images.device)
    return (images.float() * std[None, :, None, None] + mean[None, :, None, None]).clamp(0.0, 1.0)


def non_backdrop_pixels(rgb: torch.Tensor) -> torch.Tensor:
    """The pixels off the backdrop of each photo (sRGB in [0, 1], B x 3 x H x W) -> B x H x W
    bool, on the batch's device: ``saliency_baselines.non_backdrop_mask`` per photo; a photo
    where it finds none (one flat colour) counts whole, so no statistic is left undefined."""
    from minbench.models.saliency_baselines import non_backdrop_mask

    pixels = (rgb.detach() * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    masks = [non_backdrop_mask(photo) for photo in pixels]
    out = torch.from_numpy(np.stack([m if m.any() else np.ones_like(m) for m in masks]))
    return out.to(rgb.device)


def _bin(values: torch.Tensor, lo: float, hi: float, bins: int) -> torch.Tensor:
    """Bin index of each value for ``bins`` equal bins over [lo, hi]; outside: the edge bins."""
    idx = ((values - lo) / (hi - lo) * bins).floor().long()
    return idx.clamp_(0, bins - 1)


def _histogram(index: torch.Tensor, weight: torch.Tensor, bins: int) -> torch.Tensor:
    """Per-row histogram (B x bins) of bin indices (B x N) counted with ``weight`` (B x N,
    0 or 1: the pixels taken), as a distribution."""
    counts = torch.zeros(index.shape[0], bins, dtype=torch.float32, device=index.device)
    counts.scatter_add_(1, index, weight)
    return counts / weight.sum(1, keepdim=True)


def masked_quantiles(values: torch.Tensor, taken: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Quantiles ``q`` (Q,) of the last axis of ``values`` (B x C x N) over the ``taken``
    pixels (B x N bool, at least one per row) -> B x Q x C, interpolated linearly between
    order statistics as ``torch.quantile`` does."""
    ordered = values.masked_fill(~taken[:, None], float("inf")).sort(dim=-1).values  # taken ones first
    n = taken.sum(1, keepdim=True).to(values.dtype)  # B x 1
    pos = q.to(values.device, values.dtype)[None] * (n - 1)  # B x Q
    lo, hi = pos.floor().long(), pos.ceil().long()
    c = values.shape[1]
    below = ordered.gather(2, lo[:, None].expand(-1, c, -1))
    above = ordered.gather(2, hi[:, None].expand(-1, c, -1))
    return (below + (above - below) * (pos - lo)[:, None]).transpose(1, 2)


class ColourStats(nn.Module):
    """Colour statistics of a photo's non-backdrop pixels (see the module docstring); no weights.

    Args:
        ab_bins: bins per axis of the joint a*b* histogram (odd: the greys in one bin).
        ab_range: a*, b* span of the histogram, [-ab_range, ab_range]; beyond it, edge bins.
        l_bins: bins of the L* histogram over [0, 100].
        quantiles: the quantiles of each of L*, a*, b* (beside their mean and std).
        white_balance: scale each linear channel so that the median of the photo's edge is grey.
        border: width of that edge ring, as a share of the side.
        block_weights: the weights of the a*b* histogram, L* histogram and moments blocks.
        exclude_backdrop: take the statistics over the non-backdrop pixels only (else the
            whole photo).
        mean, std: the normalisation of the input batches (per RGB channel); the task sets
            the data's own through ``set_input_normalisation``.

    ``num_features`` is the width of the output (as a timm model's pooled features).
    """

    BLOCKS = ("ab", "L", "moments")

    def __init__(self, ab_bins: int = 9, ab_range: float = 54.0, l_bins: int = 8,
                 quantiles: Sequence[float] = (0.1, 0.5, 0.9), white_balance: bool = True, border: float = 0.08,
                 block_weights: Sequence[float] = (1.0, 0.1, 0.2), exclude_backdrop: bool = True,
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        super().__init__()
        if ab_bins < 1 or l_bins < 1 or ab_range <= 0:
            raise ValueError("ab_bins and l_bins must be at least 1, ab_range positive")
        if not all(0.0 <= q <= 1.0 for q in quantiles):
            raise ValueError(f"quantiles {list(quantiles)}: each must lie in [0, 1]")
        if not 0.0 < border < 0.5:
            raise ValueError(f"border {border}: a share of the side in (0, 0.5)")
        if len(block_weights) != len(self.BLOCKS) or min(block_weights) < 0 or max(block_weights) <= 0:
            raise ValueError(f"block_weights {list(block_weights)}: {len(self.BLOCKS)} weights "
                             f"({', '.join(self.BLOCKS)}), none negative, one positive")
        self.ab_bins, self.ab_range, self.l_bins = int(ab_bins), float(ab_range), int(l_bins)
        self.white_balance, self.border = bool(white_balance), float(border)
        self.exclude_backdrop = bool(exclude_backdrop)
        self.block_weights = tuple(float(w) for w in block_weights)
        self.register_buffer("quantiles", torch.tensor(list(quantiles), dtype=torch.float32))
        self.register_buffer("mean", torch.zeros(3))
        self.register_buffer("std", torch.ones(3))
        self.set_input_normalisation(mean, std)
        self.n_moments = 3 * (2 + len(quantiles))
        self.num_features = self.ab_bins ** 2 + self.l_bins + 1 + self.n_moments

    def set_input_normalisation(self, mean: Sequence[float], std: Sequence[float]) -> None:
        """The per-channel ``mean`` and ``std`` the input batches were normalised with."""
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f"expected 3 channels of mean and std, got {list(mean)}, {list(std)}")
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.std.copy_(torch.as_tensor(std, dtype=torch.float32))

    def rgb(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised images (B x 3 x H x W) -> sRGB in [0, 1] (B x 3 x H x W)."""
        return to_srgb(images, self.mean, self.std)

    def cast(self, linear: torch.Tensor) -> torch.Tensor:
        """The colour cast of each photo (B x 3): the median linear R, G, B of its edge ring."""
        h, w = linear.shape[-2:]
        ring = torch.zeros(h, w, dtype=torch.bool, device=linear.device)
        bh, bw = max(1, round(self.border * h)), max(1, round(self.border * w))
        ring[:bh], ring[-bh:], ring[:, :bw], ring[:, -bw:] = True, True, True, True
        return linear[:, :, ring].median(dim=2).values

    def blocks(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The three feature blocks, each L2-normalised and unweighted: ``ab`` (joint a*b*
        histogram), ``L`` (L* histogram), ``moments`` (1, then mean, std, quantiles per channel)."""
        rgb = self.rgb(images)
        linear = srgb_to_linear(rgb)
        if self.white_balance:  # von Kries: scale each channel so that the backdrop comes out grey
            cast = self.cast(linear).clamp_min(1e-4)
            linear = linear * (cast.mean(1, keepdim=True) / cast)[:, :, None, None]
        lab = linear_to_lab(linear)
        light, a, b = lab.flatten(2).unbind(1)  # each B x N
        taken = (non_backdrop_pixels(rgb) if self.exclude_backdrop
                 else torch.ones(rgb.shape[0], *rgb.shape[2:], dtype=torch.bool, device=rgb.device)).flatten(1)
        weight = taken.float()
        r, n = self.ab_range, self.ab_bins
        ab = _histogram(_bin(a, -r, r, n) * n + _bin(b, -r, r, n), weight, n * n).sqrt()
        lhist = _histogram(_bin(light, 0.0, 100.0, self.l_bins), weight, self.l_bins).sqrt()
        centred = torch.stack([(light - 50.0), a, b], dim=1) / 50.0  # B x 3 x N, roughly [-1, 1]
        count = weight.sum(1)[:, None]
        mean = (centred * weight[:, None]).sum(2) / count
        std = (((centred - mean[..., None]) ** 2 * weight[:, None]).sum(2) / count).sqrt()
        moments = torch.cat([mean, std, masked_quantiles(centred, taken, self.quantiles).flatten(1)], dim=1)
        moments = torch.cat([torch.ones_like(moments[:, :1]), moments], dim=1)
        return {"ab": F.normalize(ab, dim=1), "L": F.normalize(lhist, dim=1), "moments": F.normalize(moments, dim=1)}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        blocks = self.blocks(images)
        return torch.cat([w * blocks[name] for name, w in zip(self.BLOCKS, self.block_weights)], dim=1)
