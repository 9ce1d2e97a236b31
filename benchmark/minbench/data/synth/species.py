"""Species and varieties of the synthetic museum, read from gemmology-mineral-database.

Natural mineral families only (synthetics, simulants, assembled stones, organic gems and
ornamental rocks are left out). A family's colour entries become its varieties, named as
mineralogists do: ``"fluorite, green variety"``, ``"beryl, emerald variety"`` (a named gem
variety when the database gives one, else the colour). A family with one usable colour is a
class by its plain name (``"uvarovite"``). Varieties of one family differ only in colour;
families differ in habit (their own meshes), lustre and crystal system.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from minbench.data.synth.colors import Colour, delta_e, parse_colour

SKIP_CATEGORIES = {"Organic gems", "Ornamental rocks"}
SKIP_FAMILIES = {"pearl", "coral", "jet", "maw-sit-sit", "colour-change-garnet"}
# The database's display names are gem-trade names in places; the mineral species name reads better.
SPECIES_NAMES = {"sphene": "titanite", "plagioclase-albite": "albite", "maxixe-beryl": "maxixe beryl"}
# Parenthesised words that describe a cause or a rarity, not a variety name.
NOT_VARIETY = {"heated", "metamict", "cobalt", "radiation", "induced", "rare", "classic", "pure", "selenite",
               "enstatite", "chrysoberyl", "sapphire", "most", "common", "bronzite", "oregon", "persian", "tanzania",
               "specularite", "untreated", "leuco", "garnet", "grossular", "topazolite", "gem", "quality", "fresh",
               "spinel", "flame", "sky", "swiss", "london", "crystals", "with", "oxidized", "rich", "marialite",
               "zoned", "core", "rim"}
LUSTRE_KINDS = ("metallic", "submetallic", "adamantine", "vitreous", "pearly", "resinous", "earthy")
# Two varieties of a family closer than this (CIE76) would be one class in practice: keep the first.
MIN_VARIETY_DELTA_E = 14.0


@dataclass(frozen=True)
class Habit:
    """One crystal habit of a family: a mesh and the words for it."""

    slug: str
    name: str
    stl: bytes
    massive: bool


@dataclass(frozen=True)
class Family:
    id: str
    species: str            # mineral name used in labels, lower case
    crystal_system: str
    category: str
    lustre_text: str
    lustre: str             # one of LUSTRE_KINDS
    lustre_alt: str         # the other end of a range ('Vitreous to pearly' -> 'pearly'), else == lustre
    habits: tuple[Habit, ...]
    colours: tuple[tuple[str, Colour], ...]    # (variety name, colour)
    commonness: float       # prior for how many specimens a museum holds


@dataclass(frozen=True)
class SynthClass:
    """A class of the benchmark: a family in one colour variety."""

    label: str
    family: Family = field(repr=False)
    variety: str
    colour: Colour


def database_path() -> Path:
    import mineral_database

    path = Path(mineral_database.__file__).resolve().parent / "data" / "minerals.db"
    if not path.is_file():  # a later layout of the package: ask it
        from mineral_database import db

        path = Path(db._DB_PATH)
    return path


def lustre_kind(text: str, part: int = 0) -> str:
    """A lustre of a database lustre text: ``part`` 0 the dominant one ('Vitreous to pearly' ->
    'vitreous'), 1 the other end of the range ('pearly'; the dominant one when there is none)."""
    low = re.sub(r"\(.*?\)", " ", (text or "").lower())
    parts = re.split(r"\bto\b|[;,(]", low)
    first = parts[part] if part < len(parts) and parts[part].strip() else parts[0]
    for key, kind in (("sub-metallic", "submetallic"), ("submetallic", "submetallic"), ("metallic", "metallic"),
                      ("adamantine", "adamantine"), ("brilliant", "adamantine"), ("pearly", "pearly"),
                      ("vitreous", "vitreous"), ("resinous", "resinous"), ("greasy", "resinous"),
                      ("waxy", "resinous"), ("oily", "resinous"), ("dull", "earthy"), ("earthy", "earthy")):
        if key in first:
            return kind
    return "vitreous"


def _variety_name(entry: str, colour: Colour, species: str) -> str:
    m = re.search(r"\(([^)]*)\)", entry)
    if m:
        inner = m.group(1).strip().lower()
        words = re.findall(r"[a-zà-ÿ]+", inner)
        if (0 < len(words) <= 2 and "," not in inner and not (set(words) & NOT_VARIETY)
                and parse_colour(inner) is None and len(inner) <= 20 and inner != species):
            return inner.replace(" variety", "")
    return colour.name


@lru_cache(maxsize=1)
def load_families() -> tuple[Family, ...]:
    """Every natural family with at least one mesh and one renderable colour, sorted by id."""
    con = sqlite3.connect(f"file:{database_path()}?mode=ro", uri=True)
    try:
        fams = con.execute(
            "select id, name, crystal_system, category, lustre, colors_json from mineral_families "
            "where origin = 'natural' order by id").fetchall()
        exprs = con.execute(
            "select family_id, slug, name, model_stl, sort_order from mineral_expressions "
            "where model_stl is not null order by family_id, sort_order, id").fetchall()
    finally:
        con.close()
    habits: dict[str, list[Habit]] = {}
    for fam_id, slug, name, stl, _ in exprs:
        stl = bytes(stl)
        n_tri = int.from_bytes(stl[80:84], "little") if len(stl) >= 84 else 0
        if n_tri < 4 or len(stl) < 84 + 50 * n_tri:
            continue
        habits.setdefault(fam_id, []).append(
            Habit(slug=slug, name=(name or slug).lower(), stl=stl, massive=n_tri >= 150))
    out = []
    for fam_id, name, system, category, lustre, colours_json in fams:
        if fam_id in SKIP_FAMILIES or category in SKIP_CATEGORIES or fam_id not in habits:
            continue
        species = SPECIES_NAMES.get(fam_id, re.sub(r"\s*\(.*\)", "", name).lower())
        colours: list[tuple[str, Colour]] = []
        for entry in json.loads(colours_json or "[]"):
            colour = parse_colour(entry)
            if colour is None:
                continue
            variety = _variety_name(entry, colour, species)
            if any(v == variety or delta_e(c.rgb, colour.rgb) < MIN_VARIETY_DELTA_E for v, c in colours):
                continue
            colours.append((variety, colour))
        if not colours:
            continue
        fam_habits = tuple(habits[fam_id])
        out.append(Family(id=fam_id, species=species, crystal_system=(system or "").lower(),
                          category=category or "", lustre_text=lustre or "", lustre=lustre_kind(lustre),
                          lustre_alt=lustre_kind(lustre, 1),
                          habits=fam_habits, colours=tuple(colours),
                          commonness=1.0 + 0.5 * (len(fam_habits) - 1)))
    return tuple(out)


@lru_cache(maxsize=1)
def all_classes() -> tuple[SynthClass, ...]:
    """Every class (family x colour variety), in database order."""
    classes = []
    for fam in load_families():
        if len(fam.colours) == 1:
            variety, colour = fam.colours[0]
            classes.append(SynthClass(label=fam.species, family=fam, variety=variety, colour=colour))
            continue
        for variety, colour in fam.colours:
            classes.append(SynthClass(label=f"{fam.species}, {variety} variety", family=fam,
                                      variety=variety, colour=colour))
    labels = [c.label for c in classes]
    assert len(set(labels)) == len(labels), "class labels must be unique"
    return tuple(classes)
