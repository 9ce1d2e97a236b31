"""Species of the synthetic museum: a curated table of mineralogical facts (``species.csv``).

**The table.** One row per species (at least 450): crystal system, chemical class, habits
(commonest first, from the vocabulary of :mod:`habits`), non-crystalline forms, colours with
how common each is (weights 1-5), lustre (a range "vitreous/pearly" gives both ends),
transparency, usual associations, how common the species is in a systematic collection
(1-5), and a field-guide sentence written for the species. Species share habits, colours and
lustres as real ones do (many are cubic, many green, many metallic grey).

**Meshes.** Each habit word becomes a parametric polyhedron of the species' crystal system
(:func:`habits.parametric_habit`); a species that the gemmology-mineral-database also holds
adds that database's meshes (twins, sceptres, real proportions) after its table habits.

**Classes.** Every class is a species (:class:`SynthClass` with ``variety == ""``), named by
its species name; its class text is the table's sentence for it.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from minbench.data.synth.colors import Colour, parse_colour
from minbench.data.synth.habits import parametric_habit
from minbench.data.synth.meshes import Habit

TABLE = Path(__file__).with_name("species.csv")
TABLE_COLUMNS = ("species", "crystal_system", "chemical_class", "habits", "forms", "colours", "lustre",
                 "transparency", "commonness", "associations", "description")
LUSTRE_KINDS = ("metallic", "submetallic", "adamantine", "vitreous", "pearly", "resinous", "earthy", "silky")
TRANSPARENCY = ("transparent", "translucent", "opaque")
AGGREGATES = ("crystal", "group", "druse")          # ways a crystal habit occurs
NON_CRYSTALLINE = ("massive", "granular", "botryoidal", "fibrous")
# The database's own meshes a species adds after its table habits (at most this many).
MAX_DATABASE_HABITS = 2
# Database families that are trade names or varieties of a table species.
SPECIES_OF = {
    "amethyst": "quartz", "ametrine": "quartz", "citrine": "quartz", "rose-quartz": "quartz",
    "smoky-quartz": "quartz", "aquamarine": "beryl", "emerald": "beryl", "goshenite": "beryl",
    "heliodor": "beryl", "morganite": "beryl", "red-beryl": "beryl", "maxixe-beryl": "beryl",
    "alexandrite": "chrysoberyl", "amazonite": "microcline", "bronzite": "enstatite",
    "chrome-diopside": "diopside", "star-diopside": "diopside", "demantoid": "andradite",
    "hessonite": "grossular", "tsavorite": "grossular", "rhodolite": "pyrope", "hiddenite": "spodumene",
    "kunzite": "spodumene", "padparadscha": "corundum", "pink-sapphire": "corundum", "ruby": "corundum",
    "sapphire": "corundum", "moonstone": "orthoclase", "sunstone": "oligoclase", "tanzanite": "zoisite",
    "tourmaline": "elbaite", "sphene": "titanite", "plagioclase-albite": "albite", "peridot": "forsterite",
}


@dataclass(frozen=True)
class Species:
    id: str                 # the species name with dashes: "quartz"
    species: str            # the species name used in labels, lower case
    crystal_system: str
    category: str           # chemical class ("Sulfides")
    lustre: str             # one of LUSTRE_KINDS
    lustre_alt: str         # the other end of a range ('vitreous/pearly' -> 'pearly'), else == lustre
    habits: tuple[Habit, ...] = field(repr=False)
    colours: tuple[Colour, ...] = field(repr=False)
    colour_weights: tuple[float, ...] = field(repr=False)
    non_crystalline: tuple[str, ...]    # which of NON_CRYSTALLINE the species occurs as
    transparency: tuple[str, ...]       # one or two of TRANSPARENCY (a range)
    commonness: int                     # 1 (rare) .. 5 (very common in a systematic collection)
    associations: tuple[str, ...]
    description: str = field(repr=False)

    @property
    def metallic(self) -> bool:
        return self.lustre in ("metallic", "submetallic")


@dataclass(frozen=True)
class Form:
    """How a specimen's mineral occurs: an aggregate of a habit, or a non-crystalline aggregate."""

    kind: str                     # one of AGGREGATES + NON_CRYSTALLINE
    habit: Habit | None = None    # the mesh, for AGGREGATES

    @property
    def crystalline(self) -> bool:
        return self.kind in AGGREGATES


@dataclass(frozen=True)
class SynthClass:
    """A class of the benchmark: a species, with every form and colour it occurs in."""

    label: str
    family: Species = field(repr=False)
    variety: str                   # always "" in generator 3 (a variety class only where a card says why)
    forms: tuple[Form, ...] = field(repr=False)
    colours: tuple[Colour, ...] = field(repr=False)
    colour_weights: tuple[float, ...] = field(repr=False, default=())


def database_path() -> Path:
    import mineral_database

    path = Path(mineral_database.__file__).resolve().parent / "data" / "minerals.db"
    if not path.is_file():  # a later layout of the package: ask it
        from mineral_database import db

        path = Path(db._DB_PATH)
    return path


@lru_cache(maxsize=1)
def database_habits() -> dict[str, tuple[Habit, ...]]:
    """The gemmology database's crystal meshes by species name (trade names folded into species)."""
    con = sqlite3.connect(f"file:{database_path()}?mode=ro", uri=True)
    try:
        rows = con.execute(
            "select e.family_id, f.name, e.slug, e.name, e.model_stl from mineral_expressions e "
            "join mineral_families f on f.id = e.family_id where e.model_stl is not null and f.origin = 'natural' "
            "order by e.family_id, e.sort_order, e.id").fetchall()
    finally:
        con.close()
    out: dict[str, dict[str, Habit]] = {}
    for fam_id, fam_name, slug, name, stl in rows:
        stl = bytes(stl)
        n_tri = int.from_bytes(stl[80:84], "little") if len(stl) >= 84 else 0
        if n_tri < 4 or len(stl) < 84 + 50 * n_tri or n_tri >= 150:   # broken, or a sphere-like "massive" model
            continue
        species = SPECIES_OF.get(fam_id, re.sub(r"\s*\(.*\)", "", fam_name).lower())
        habit = Habit(slug=slug, name=(name or slug).lower(), stl=stl, massive=False)
        out.setdefault(species, {}).setdefault(habit.digest, habit)
    return {k: tuple(v.values()) for k, v in out.items()}


def _split(text: str) -> list[str]:
    return [p.strip() for p in text.split(";") if p.strip()]


def _table_error(where: str, what: str) -> ValueError:
    return ValueError(f"{TABLE.name}:{where}: {what}")


def _parse_row(row: dict[str, str], where: str) -> Species:
    name, system = row["species"].strip(), row["crystal_system"].strip()
    habits = []
    for word in _split(row["habits"]):
        try:
            habits.append(parametric_habit(word, system))
        except ValueError as e:
            raise _table_error(where, str(e)) from None
    habits += list(database_habits().get(name, ()))[:MAX_DATABASE_HABITS]
    colours, weights = [], []
    for entry in _split(row["colours"]):
        phrase, _, weight = entry.rpartition(":")
        colour = parse_colour(phrase)
        if colour is None or not weight.isdigit():
            raise _table_error(where, f"colour {entry!r} is not 'phrase:weight' with a known colour")
        colours.append(colour)
        weights.append(float(weight))
    lustres = row["lustre"].split("/")
    transparency = tuple(row["transparency"].split("/"))
    forms = tuple(_split(row["forms"]))
    if (not habits or not colours or any(x not in LUSTRE_KINDS for x in lustres)
            or any(t not in TRANSPARENCY for t in transparency) or any(f not in NON_CRYSTALLINE for f in forms)):
        raise _table_error(where, f"species {name!r}: habits, colours, lustre, transparency or forms invalid")
    return Species(id=name.replace(" ", "-"), species=name, crystal_system=system,
                   category=row["chemical_class"].strip(), lustre=lustres[0], lustre_alt=lustres[-1],
                   habits=tuple(habits), colours=tuple(colours), colour_weights=tuple(weights),
                   non_crystalline=tuple(f for f in NON_CRYSTALLINE if f in ("massive", "granular") or f in forms),
                   transparency=transparency, commonness=int(row["commonness"]),
                   associations=tuple(_split(row["associations"])), description=row["description"].strip())


@lru_cache(maxsize=1)
def load_species() -> tuple[Species, ...]:
    """Every species of the table, sorted by id."""
    from minbench.data.csv_schema import read_rows

    rows, lines, _ = read_rows(TABLE)  # the project's one CSV reader: true line numbers
    if not rows or tuple(rows[0]) != TABLE_COLUMNS:
        raise _table_error("1", f"header must be {','.join(TABLE_COLUMNS)}")
    out = []
    for row, line in zip(rows[1:], lines[1:]):
        if len(row) != len(TABLE_COLUMNS):
            raise _table_error(str(line), f"{len(row)} fields, not {len(TABLE_COLUMNS)}")
        out.append(_parse_row(dict(zip(TABLE_COLUMNS, row)), str(line)))
    names = [s.id for s in out]
    if len(set(names)) != len(names):
        raise _table_error("-", "duplicate species")
    return tuple(sorted(out, key=lambda s: s.id))


def species_forms(sp: Species) -> list[Form]:
    """Every form a specimen of the species may show: each habit as a single crystal, a group and
    a druse, then its non-crystalline aggregates (massive and granular for every species)."""
    out = [Form(kind, h) for h in sp.habits for kind in AGGREGATES]
    return out + [Form(k) for k in sp.non_crystalline]


@lru_cache(maxsize=1)
def all_classes() -> tuple[SynthClass, ...]:
    """One class per species, in species order."""
    return tuple(SynthClass(label=sp.species, family=sp, variety="", forms=tuple(species_forms(sp)),
                            colours=sp.colours, colour_weights=sp.colour_weights) for sp in load_species())
