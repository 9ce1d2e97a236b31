"""Which images exist and which sets they belong to: the shape of the real release's splits.

- Every class is a species. Species are ranked by how many specimens the "museum" holds:
  the table's commonness (1-5) times a random factor, so common species are common and the
  counts follow the real release's long tail (10 classes >= 462 images, 98 >= 78, 360 >= 17
  at full scale).
- ``zeroshot``: whole species held out of all training, drawn at random among the species
  that are not very common (commonness <= ``HELD_OUT_MAX_COMMONNESS``: a museum's commonest
  species are what a classifier trains on). A held-out species shares no species or class
  text with a trained class and never appears in a training photo, not even as a satellite;
  it may share habits, colours and lustre with trained species, as real unseen species do.
  Each has between ``zeroshot_min`` and ``zeroshot_max`` photos (long-tailed).
- Few-shot subsets are nested: ``fewshot_10`` = the 10 most frequent trained species,
  ``fewshot_98`` the 98 most frequent, ``fewshot_360`` the 360 most frequent (scaled down for
  ``tiny``). Every row of a subset is train or test, stratified per class (>= 1 of each), and
  a row keeps the same role in every subset it belongs to.
- ``segmentation``: few-shot *test* rows, from the fewshot-10 classes first (the classes
  the default CAM classifier is trained on), spread over the classes.
- ``size``: a random share of all rows (size_cm and px_per_cm are recorded for all rows).
- Satellites: another species, one of the main species' usual associations when one is
  available, else any; a few-shot photo only ever shows trained species.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from minbench.data.synth.species import SynthClass
from minbench.errors import UserError

# (rank, images per class) in the real release; counts between anchors follow a power law.
REAL_CURVE = ((1, 2066), (10, 462), (98, 78), (360, 17), (5000, 1))


@dataclass(frozen=True)
class SizeConfig:
    name: str
    width: int
    height: int
    fewshot: tuple[int, int, int]   # classes in fewshot_10 / _98 / _360
    scale: float                    # share of the real per-class counts
    min_per_class: int              # floor, so every class has train and test rows
    zeroshot_species: int           # unseen classes: whole species held out of training
    zeroshot_max: int               # images of the commonest unseen species
    zeroshot_min: int               # images of the rarest unseen species
    segmentation: int
    size_share: float
    satellite_share: float = 0.3
    test_share: float = 0.25


SIZES: dict[str, SizeConfig] = {
    "tiny": SizeConfig("tiny", 256, 192, (3, 8, 20), scale=0.03, min_per_class=3, zeroshot_species=8,
                       zeroshot_max=3, zeroshot_min=1, segmentation=10, size_share=0.4),
    # The fresh-machine default: every command in minutes on a laptop CPU.
    "small": SizeConfig("small", 1024, 768, (10, 98, 360), scale=1 / 16, min_per_class=3, zeroshot_species=60,
                        zeroshot_max=8, zeroshot_min=3, segmentation=48, size_share=0.4),
    # Big enough to rank methods: test splits of >= 500 (fewshot-10), >= 1,000 (fewshot-98 and
    # -360) images, >= 50 unseen species with >= 10 photos each and >= 1,000 in all, >= 150
    # segmentation and >= 1,000 size photos.
    "benchmark": SizeConfig("benchmark", 1024, 768, (10, 98, 360), scale=0.13, min_per_class=5,
                            zeroshot_species=70, zeroshot_max=40, zeroshot_min=14, segmentation=160,
                            size_share=0.3, test_share=0.45),
    "full": SizeConfig("full", 1024, 768, (10, 98, 360), scale=1.0, min_per_class=17, zeroshot_species=100,
                       zeroshot_max=60, zeroshot_min=17, segmentation=120, size_share=0.4),
}

# Held-out (zero-shot) species are drawn among species at most this common (table's 1-5).
HELD_OUT_MAX_COMMONNESS = 3
# How many specimens a museum holds per commonness level (relative), before a random factor.
COMMONNESS_WEIGHT = {1: 0.3, 2: 1.0, 3: 3.0, 4: 10.0, 5: 30.0}


def size_config(size: str) -> SizeConfig:
    try:
        return SIZES[size]
    except KeyError:
        raise UserError(f"--size {size!r}: unknown (choose one of {', '.join(SIZES)})") from None


def real_count(rank: float) -> float:
    """Images per class at a (1-based) frequency rank in the real release, interpolated log-log."""
    for (r0, c0), (r1, c1) in zip(REAL_CURVE, REAL_CURVE[1:]):
        if rank <= r1:
            t = (math.log(max(rank, r0)) - math.log(r0)) / (math.log(r1) - math.log(r0))
            return math.exp(math.log(c0) + t * (math.log(c1) - math.log(c0)))
    return 1.0


@dataclass
class RowPlan:
    index: int
    cls: int                 # index into the class tuple
    satellite: int | None    # class index of the satellite mineral, if any
    fewshot: tuple[str, str, str]
    zeroshot: bool
    segmentation: bool
    size: bool


@dataclass
class Plan:
    rows: list[RowPlan]
    fewshot_classes: tuple[list[int], list[int], list[int]]
    zeroshot_classes: list[int]


def make_plan(classes: tuple[SynthClass, ...], cfg: SizeConfig, seed: int) -> Plan:
    """Every row of the dataset with its class, satellite and set membership (deterministic in seed).

    One generator draws everything, in this order: the species' commonness, the held-out
    species, each row's test role and satellite, the rows' order, the size rows.
    """
    rng = np.random.default_rng([seed, 0x5EED])
    score = np.array([COMMONNESS_WEIGHT[c.family.commonness] * rng.lognormal(0, 0.7) for c in classes])
    order = np.argsort(-score, kind="stable").tolist()
    n10, n98, n360 = cfg.fewshot
    pool = [i for i in range(len(classes)) if classes[i].family.commonness <= HELD_OUT_MAX_COMMONNESS]
    if len(classes) < n360 + cfg.zeroshot_species or len(pool) < cfg.zeroshot_species:
        raise UserError(f"size {cfg.name!r} needs {n360} few-shot and {cfg.zeroshot_species} unseen species; "
                        f"the species table gives {len(classes)}")
    held = set(rng.choice(pool, cfg.zeroshot_species, replace=False).tolist())
    fewshot = [i for i in order if i not in held][:n360]
    zeroshot = [i for i in order if i in held]
    rows = _rows(classes, cfg, fewshot, zeroshot, rng)
    _pick_segmentation(rows, fewshot, cfg)
    n_size = max(1, int(round(cfg.size_share * len(rows))))
    for i in rng.choice(len(rows), n_size, replace=False):
        rows[int(i)].size = True
    return Plan(rows=rows, fewshot_classes=(fewshot[:n10], fewshot[:n98], fewshot),
                zeroshot_classes=zeroshot)


def _counts(cfg: SizeConfig, fewshot: list[int], zeroshot: list[int]) -> dict[int, int]:
    """Images per class: the real release's curve by rank for the few-shot classes; for the
    unseen species a long tail from ``zeroshot_max`` down to ``zeroshot_min``."""
    stretch = 360 / cfg.fewshot[2]
    counts = {ci: max(cfg.min_per_class, int(round(cfg.scale * real_count((r + 1) * stretch))))
              for r, ci in enumerate(fewshot)}
    for j, ci in enumerate(zeroshot):
        counts[ci] = max(cfg.zeroshot_min, int(round(cfg.zeroshot_max * (1 + j) ** -0.5)))
    return counts


def _satellite(classes, ci: int, pool: np.ndarray, rng: np.random.Generator) -> int | None:
    """A satellite species for a photo of class ``ci``: one of its usual associations in
    ``pool`` when there is one (most often), else any other species of ``pool``."""
    fam = classes[ci].family
    others = pool[[classes[k].family.id != fam.id for k in pool]]
    if not len(others):
        return None
    associated = others[[classes[k].family.species in fam.associations for k in others]]
    if len(associated) and rng.random() < 0.7:
        return int(rng.choice(associated))
    return int(rng.choice(others))


def _rows(classes: tuple[SynthClass, ...], cfg: SizeConfig, fewshot: list[int], zeroshot: list[int],
          rng: np.random.Generator) -> list[RowPlan]:
    """Every image of every class with its few-shot roles and satellite, shuffled and numbered."""
    n10, n98, n360 = cfg.fewshot
    counts = _counts(cfg, fewshot, zeroshot)
    rank_of = {ci: r for r, ci in enumerate(fewshot)}
    fewshot_pool = np.array(fewshot)
    all_pool = np.array(fewshot + zeroshot)
    rows: list[RowPlan] = []
    for ci in fewshot + zeroshot:
        n = counts[ci]
        is_fs = ci in rank_of
        test = np.zeros(n, bool)
        if is_fs:
            n_test = min(n - 1, max(1, int(round(cfg.test_share * n))))
            test[rng.choice(n, n_test, replace=False)] = True
        for j in range(n):
            role = ("test" if test[j] else "train") if is_fs else ""
            r = rank_of.get(ci, 10 ** 9)
            fs = (role if r < n10 else "", role if r < n98 else "", role if r < n360 else "")
            sat = None
            if rng.random() < cfg.satellite_share:
                # Few-shot photos only ever show few-shot species, so a zero-shot class is never seen in training.
                sat = _satellite(classes, ci, fewshot_pool if is_fs else all_pool, rng)
            rows.append(RowPlan(index=-1, cls=ci, satellite=sat, fewshot=fs, zeroshot=not is_fs,
                                segmentation=False, size=False))
    order = rng.permutation(len(rows))
    rows = [rows[i] for i in order]
    for i, row in enumerate(rows):
        row.index = i
    return rows


def _pick_segmentation(rows: list[RowPlan], fewshot: list[int], cfg: SizeConfig) -> None:
    """Mark the segmentation rows: few-shot test rows, one class at a time in rank order so
    many classes are covered; the fewshot-10 classes first (the default CAM's classifier
    knows them), then on."""
    n10 = cfg.fewshot[0]
    by_class: dict[int, list[RowPlan]] = {}
    for row in rows:
        if row.fewshot[2] == "test":
            by_class.setdefault(row.cls, []).append(row)
    picked = 0
    for tier in (fewshot[:n10], fewshot[n10:]):
        depth = 0
        while picked < cfg.segmentation and any(len(by_class.get(ci, [])) > depth for ci in tier):
            for ci in tier:
                if picked < cfg.segmentation and len(by_class.get(ci, [])) > depth:
                    by_class[ci][depth].segmentation = True
                    picked += 1
            depth += 1
