"""Which images exist and which sets they belong to: the shape of the real release's splits.

- Classes are ranked by how many specimens the "museum" holds (a long tail, as in
  MineralImage5k: 10 classes >= 462 images, 98 >= 78, 360 >= 17 at full scale).
- Few-shot subsets are nested: ``fewshot_10`` = the 10 most frequent classes, ``fewshot_98``
  the 98 most frequent, ``fewshot_360`` the 360 most frequent (scaled down for ``tiny``).
  Every row of a subset is train or test, stratified per class (>= 1 of each), and a row
  keeps the same role in every subset it belongs to.
- ``zeroshot``: every class of whole species held out of all training: groups of species
  that share no habit mesh and no crystal-form set with any other species
  (``species.linked_species``), so no unseen class shares a family, a mesh or a form set
  with a class any model trains on (not even as a satellite in a training photo). Counts
  per unseen class are long-tailed (``zeroshot_max`` for the commonest, down to 1).
- ``segmentation``: few-shot *test* rows, from the fewshot-10 classes first (the classes
  the default CAM classifier is trained on), spread over the classes.
- ``size``: a random share of all rows (size_cm and px_per_cm are recorded for all rows).
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
    zeroshot_classes: int           # at least this many unseen classes (whole held-out species)
    zeroshot_max: int               # images of the commonest unseen class; the rarest have 1
    segmentation: int
    size_share: float
    satellite_share: float = 0.3
    test_share: float = 0.25


SIZES: dict[str, SizeConfig] = {
    "tiny": SizeConfig("tiny", 256, 192, (3, 8, 20), scale=0.03, min_per_class=3, zeroshot_classes=8,
                       zeroshot_max=3, segmentation=10, size_share=0.4),
    # The fresh-machine default: every command in minutes on a laptop CPU.
    "small": SizeConfig("small", 1024, 768, (10, 98, 360), scale=1 / 16, min_per_class=3, zeroshot_classes=60,
                        zeroshot_max=6, segmentation=48, size_share=0.4),
    # Big enough to rank methods: test splits of >= 500 (fewshot-10), >= 1,000 (fewshot-98 and
    # -360) images, >= 100 unseen classes, >= 150 segmentation and >= 1,000 size photos.
    "benchmark": SizeConfig("benchmark", 1024, 768, (10, 98, 360), scale=0.16, min_per_class=5,
                            zeroshot_classes=100, zeroshot_max=12, segmentation=160, size_share=0.3,
                            test_share=0.4),
    "full": SizeConfig("full", 1024, 768, (10, 98, 360), scale=1.0, min_per_class=17, zeroshot_classes=100,
                       zeroshot_max=40, segmentation=120, size_share=0.4),
}

MAX_HELD_GROUP = 5   # linked species groups up to this size may be held out for zero-shot


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
    held_out_families: list[str]


def make_plan(classes: tuple[SynthClass, ...], cfg: SizeConfig, seed: int) -> Plan:
    """Every row of the dataset with its class, satellite and set membership (deterministic in seed).

    One generator draws everything, in this order: the species' commonness, the held-out
    groups, the classes' commonness, each row's test role and satellite, the rows' order,
    the size rows (the helpers below take it in turn).
    """
    rng = np.random.default_rng([seed, 0x5EED])
    fam_ids = sorted({c.family.id for c in classes})
    fam_of = {c.family.id: c.family for c in classes}
    fam_score = {f: fam_of[f].commonness * rng.lognormal(0, 0.8) for f in fam_ids}
    held = _held_out_species(classes, cfg, fam_ids, rng)
    fewshot, zeroshot = _ranked_classes(classes, cfg, fam_ids, fam_score, set(held), rng)
    rows = _rows(classes, cfg, fewshot, zeroshot, rng)
    _pick_segmentation(rows, fewshot, cfg)
    n_size = max(1, int(round(cfg.size_share * len(rows))))
    for i in rng.choice(len(rows), n_size, replace=False):
        rows[int(i)].size = True
    n10, n98, _ = cfg.fewshot
    return Plan(rows=rows, fewshot_classes=(fewshot[:n10], fewshot[:n98], fewshot),
                zeroshot_classes=zeroshot, held_out_families=sorted(held))


def _held_out_species(classes: tuple[SynthClass, ...], cfg: SizeConfig, fam_ids: list[str],
                      rng: np.random.Generator) -> list[str]:
    """The species held out for zero-shot: whole groups that share no mesh or form set with
    another species (the large linked groups of common habits stay trained), in a random
    order, until they hold enough classes; a group that would leave too few classes to train
    on, or hold far more than the pool needs, is passed over."""
    from minbench.data.synth.species import linked_species

    n360 = cfg.fewshot[2]
    groups = [sorted(g & set(fam_ids)) for g in linked_species()]
    groups = [g for g in groups if g and len(g) <= MAX_HELD_GROUP]
    per_species = {f: sum(1 for c in classes if c.family.id == f) for f in fam_ids}
    held: list[str] = []
    n_held = 0
    for i in rng.permutation(len(groups)):
        size = sum(per_species[f] for f in groups[i])
        if (n_held >= cfg.zeroshot_classes or len(classes) - n_held - size < n360
                or n_held + size > 2 * cfg.zeroshot_classes + 10):   # nor one that would swamp the pool
            continue
        held += groups[i]
        n_held += size
    if n_held < cfg.zeroshot_classes:
        raise UserError(f"size {cfg.name!r} needs {cfg.zeroshot_classes} unseen classes, "
                        f"the held-out species give {n_held}")
    return held


def _ranked_classes(classes: tuple[SynthClass, ...], cfg: SizeConfig, fam_ids: list[str],
                    fam_score: dict[str, float], held_set: set[str], rng: np.random.Generator
                    ) -> tuple[list[int], list[int]]:
    """The few-shot classes (the ``fewshot_360`` ones, commonest first) and the zero-shot
    classes (commonest first), as class indices."""
    n10, _, n360 = cfg.fewshot
    # A museum's commonest classes are mostly different species: a species' k-th class (the
    # species class first, then its varieties in order) ranks as if (k + 1)^1.2 times rarer.
    score = np.array([fam_score[c.family.id] * rng.lognormal(0, 0.5) for c in classes])
    for f in fam_ids:
        members = [i for i, c in enumerate(classes) if c.family.id == f]
        for k, i in enumerate(members):
            score[i] /= (k + 1) ** 1.2
    ranked = [i for i in np.argsort(-score, kind="stable").tolist() if classes[i].family.id not in held_set]
    if len(ranked) < n360:
        raise UserError(f"size {cfg.name!r} needs {n360} few-shot classes, the database gives {len(ranked)}")
    # The commonest classes of a museum are species names: the fewshot-10 classes are species classes.
    top = [i for i in ranked if not classes[i].variety][:n10]
    ranked = top + [i for i in ranked if i not in set(top)]
    zeroshot = [i for i in np.argsort(-score, kind="stable").tolist() if classes[i].family.id in held_set]
    return ranked[:n360], zeroshot


def _rows(classes: tuple[SynthClass, ...], cfg: SizeConfig, fewshot: list[int], zeroshot: list[int],
          rng: np.random.Generator) -> list[RowPlan]:
    """Every image of every class with its few-shot roles and satellite, shuffled and numbered."""
    n10, n98, n360 = cfg.fewshot
    stretch = 360 / n360
    counts = {ci: max(cfg.min_per_class, int(round(cfg.scale * real_count((r + 1) * stretch))))
              for r, ci in enumerate(fewshot)}
    for j, ci in enumerate(zeroshot):  # long-tailed: zeroshot_max images for the commonest, 1 for the rarest
        counts[ci] = max(1, int(round(cfg.zeroshot_max * (1 + j) ** -0.75)))
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
                pool = fewshot_pool if is_fs else all_pool
                others = pool[[classes[k].family.id != classes[ci].family.id for k in pool]]
                if len(others):
                    sat = int(rng.choice(others))
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
