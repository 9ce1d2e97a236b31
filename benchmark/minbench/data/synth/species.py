"""Species and classes of the synthetic museum, read from gemmology-mineral-database.

**Species.** The database lists gem trade names as families of their own (amethyst,
citrine, ruby, tanzanite...). A mineralogist's species is the mineral: ``SPECIES_OF``
folds each trade name into its species (amethyst -> quartz, ruby -> corundum), pooling
their colours, crystal habits (meshes) and descriptions. Groups that are not one species
("garnet") and non-natural entries are left out. The result: about 80 species.

**What a specimen of a species looks like** is drawn per photo (``scene.py``): one of the
species' colours (with a spread and the light's colour cast), one of its *forms*, its
lustre (with the other end of its lustre range on some specimens) and a matrix rock.
A form is a crystal habit (a database mesh) in one aggregate (a single crystal, a group
of intergrown crystals, a druse of many small ones), or a non-crystalline aggregate:
massive and granular for every species (every mineral occurs so), botryoidal and fibrous
where the database's own words say so (``botryoidal``, ``reniform``, ``fibrous``,
``silky``, ``acicular``...).

**Classes.** A task that needs more classes than there are species (fewshot-360, the
zero-shot pool) splits a species into named varieties, the way museum catalogues name
"quartz, druse" or "malachite, botryoidal". The rule (``build_classes``): a species'
forms are dealt out to its classes so that **two classes of one species never share a
form**; the first class keeps the species' plain name, its commonest habit as single
crystals and groups, and every colour of the species; each variety adds one form and a
colour range (a run of the species' colours). So siblings always differ in form, never in
colour alone, and every colour, form and lustre is shared by several species.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from minbench.data.synth.colors import Colour, delta_e, parse_colour
from minbench.data.synth.meshes import Habit, load_mesh

SKIP_CATEGORIES = {"Organic gems", "Ornamental rocks"}
# Not one species: a group name, or a phenomenon rather than a mineral.
SKIP_FAMILIES = {"pearl", "coral", "jet", "maw-sit-sit", "colour-change-garnet", "garnet"}
# Database families that are trade names or varieties of another species (mineralogy, not taste).
SPECIES_OF = {
    "amethyst": "quartz", "ametrine": "quartz", "citrine": "quartz", "rose-quartz": "quartz",
    "smoky-quartz": "quartz",
    "aquamarine": "beryl", "emerald": "beryl", "goshenite": "beryl", "heliodor": "beryl", "morganite": "beryl",
    "red-beryl": "beryl", "maxixe-beryl": "beryl",
    "alexandrite": "chrysoberyl", "amazonite": "microcline", "bronzite": "enstatite",
    "chrome-diopside": "diopside", "star-diopside": "diopside", "demantoid": "andradite",
    "hessonite": "grossular", "tsavorite": "grossular", "rhodolite": "pyrope",
    "hiddenite": "spodumene", "kunzite": "spodumene",
    "padparadscha": "corundum", "pink-sapphire": "corundum", "ruby": "corundum", "sapphire": "corundum",
    "moonstone": "orthoclase", "sunstone": "oligoclase", "tanzanite": "zoisite", "tourmaline": "elbaite",
    "sphene": "titanite", "plagioclase-albite": "albite",
}
LUSTRE_KINDS = ("metallic", "submetallic", "adamantine", "vitreous", "pearly", "resinous", "earthy")
# Two colours of a species closer than this (CIE76) are one colour in practice: keep the first.
MIN_COLOUR_DELTA_E = 14.0
AGGREGATES = ("crystal", "group", "druse")          # ways a crystal habit occurs
NON_CRYSTALLINE = ("massive", "granular", "botryoidal", "fibrous")
# Words of the database's descriptions that say a species occurs in a non-crystalline form.
FORM_WORDS = {"botryoidal": ("botryoidal", "reniform", "mammillary", "kidney", "globular", "stalactitic"),
              "fibrous": ("fibrous", "silky", "acicular", "radiating", "asbestiform", "needle")}
# Ore minerals are over-represented in a systematic collection such as the Fersman museum's
# (its founders were mining mineralogists): their commonness prior is multiplied by this.
ORE_COMMONNESS = 3.0


@dataclass(frozen=True)
class Species:
    id: str                 # the species name with dashes: "quartz"
    species: str            # the species name used in labels, lower case
    families: tuple[str, ...]   # database families folded into it
    crystal_system: str
    category: str
    lustre_text: str
    lustre: str             # one of LUSTRE_KINDS
    lustre_alt: str         # the other end of a range ('Vitreous to pearly' -> 'pearly'), else == lustre
    habits: tuple[Habit, ...]
    colours: tuple[Colour, ...]
    non_crystalline: tuple[str, ...]   # which of NON_CRYSTALLINE the species occurs as
    commonness: float       # prior for how many specimens a museum holds

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
    """A class of the benchmark: a species, or a named variety of it (one form + a colour range)."""

    label: str
    family: Species = field(repr=False)
    variety: str                   # "" for the species class
    forms: tuple[Form, ...] = field(repr=False)
    colours: tuple[Colour, ...] = field(repr=False)


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
                      ("waxy", "resinous"), ("oily", "resinous"), ("silky", "pearly"), ("dull", "earthy"),
                      ("earthy", "earthy")):
        if key in first:
            return kind
    return "vitreous"


def _cdl_forms(cdl: str | None) -> frozenset:
    body = "\n".join(line for line in (cdl or "").splitlines() if not line.startswith("#"))
    return frozenset(re.findall(r"\{[^}]*\}", body))


@lru_cache(maxsize=1)
def load_species() -> tuple[Species, ...]:
    """Every natural species with at least one crystal mesh and one renderable colour, sorted by id."""
    con = sqlite3.connect(f"file:{database_path()}?mode=ro", uri=True)
    try:
        fams = con.execute(
            "select id, name, crystal_system, category, lustre, colors_json, "
            "coalesce(description, '') || ' ' || coalesce(notes, '') || ' ' || coalesce(diagnostic_features, '') "
            "|| ' ' || coalesce(forms_json, '') from mineral_families where origin = 'natural' order by id").fetchall()
        exprs = con.execute(
            "select family_id, slug, name, model_stl, cdl, coalesce(form_description, '') || ' ' || "
            "coalesce(habit, '') from mineral_expressions where model_stl is not null "
            "order by family_id, sort_order, id").fetchall()
    finally:
        con.close()
    habits: dict[str, list[Habit]] = {}
    words: dict[str, list[str]] = {}
    for fam_id, slug, name, stl, cdl, text in exprs:
        stl = bytes(stl)
        n_tri = int.from_bytes(stl[80:84], "little") if len(stl) >= 84 else 0
        if n_tri < 4 or len(stl) < 84 + 50 * n_tri:
            continue
        words.setdefault(fam_id, []).append(f"{text} {(cdl or '').lower()}")
        if n_tri >= 150:     # a sphere-like "massive" model: drawn as this module's massive form instead
            continue
        habits.setdefault(fam_id, []).append(
            Habit(slug=slug, name=(name or slug).lower(), stl=stl, massive=False, cdl_forms=_cdl_forms(cdl)))
    grouped: dict[str, list[tuple]] = {}
    for row in fams:
        fam_id, name, *_ = row
        if fam_id in SKIP_FAMILIES or row[3] in SKIP_CATEGORIES:
            continue
        species = SPECIES_OF.get(fam_id, re.sub(r"\s*\(.*\)", "", name).lower())
        grouped.setdefault(species, []).append(row)
    out = []
    for species, rows in grouped.items():
        # The family named as the species leads (its lustre, system, first colours); trade names follow.
        rows.sort(key=lambda r: (r[0].replace("-", " ") != species, r[0]))
        lead = rows[0]
        colours: list[Colour] = []
        seen_habits: dict[str, Habit] = {}
        text = ""
        for fam_id, _, _, _, _, colours_json, fam_text in rows:
            for entry in json.loads(colours_json or "[]"):
                colour = parse_colour(entry)
                if colour is not None and all(delta_e(c.rgb, colour.rgb) >= MIN_COLOUR_DELTA_E for c in colours):
                    colours.append(colour)
            for h in habits.get(fam_id, []):
                seen_habits.setdefault(h.digest, h)
            text += " " + fam_text.lower() + " " + " ".join(words.get(fam_id, []))
        if not colours or not seen_habits:
            continue
        lustre_text = lead[4] or ""
        non_cryst = ["massive", "granular"] + [k for k, ws in FORM_WORDS.items() if any(w in text for w in ws)]
        sp = Species(id=species.replace(" ", "-"), species=species, families=tuple(r[0] for r in rows),
                     crystal_system=(lead[2] or "").lower(), category=lead[3] or "", lustre_text=lustre_text,
                     lustre=lustre_kind(lustre_text), lustre_alt=lustre_kind(lustre_text, 1),
                     habits=tuple(seen_habits.values()), colours=tuple(colours),
                     non_crystalline=tuple(non_cryst), commonness=1.0)
        ore = sp.metallic or sp.lustre_alt in ("metallic", "submetallic")
        commonness = (1.0 + 0.35 * (len(sp.habits) - 1) + 0.1 * (len(rows) - 1)) * (ORE_COMMONNESS if ore else 1.0)
        out.append(Species(**{**sp.__dict__, "commonness": commonness}))
    out.sort(key=lambda s: s.id)
    return tuple(out)


def species_forms(sp: Species) -> list[Form]:
    """Every form of a species, in the order they are dealt to its classes: the commonest habit's
    single crystals and groups first, then the most distinct forms before near repeats."""
    first = sp.habits[0]
    out = [Form("crystal", first), Form("group", first), Form("druse", first), Form("massive")]
    for h in sp.habits[1:]:
        out.append(Form("crystal", h))
    out += [Form(k) for k in sp.non_crystalline if k not in ("massive",)]
    for h in sp.habits[1:]:
        out += [Form("group", h), Form("druse", h)]
    return out


def form_words(form: Form) -> str:
    """Words for a form: "octahedral crystal", "prismatic druse", "botryoidal"."""
    if not form.crystalline:
        return form.kind
    habit = load_mesh(form.habit).habit
    return {"crystal": f"{habit} crystal", "group": f"{habit} group", "druse": f"{habit} druse"}[form.kind]


def build_classes(sp: Species) -> list[SynthClass]:
    """Every class of a species: the species class (its first two forms, every colour) and one
    variety per further form, with a run of the species' colours."""
    forms = species_forms(sp)
    out = [SynthClass(label=sp.species, family=sp, variety="", forms=tuple(forms[:2]), colours=sp.colours)]
    n = len(sp.colours)
    for k, form in enumerate(forms[2:]):
        start, width = (k * 2) % n, min(n, 1 + (k % 3))
        colours = tuple(sp.colours[(start + j) % n] for j in range(width))
        out.append(SynthClass(label=f"{sp.species}, {form_words(form)}", family=sp, variety=form_words(form),
                              forms=(form,), colours=colours))
    return out


@lru_cache(maxsize=1)
def all_classes() -> tuple[SynthClass, ...]:
    """Every class of every species (species class first, then its varieties), in species order."""
    classes = [c for sp in load_species() for c in build_classes(sp)]
    labels = [c.label for c in classes]
    if len(set(labels)) != len(labels):   # two habits with the same words: number them
        seen: dict[str, int] = {}
        renamed = []
        for c in classes:
            seen[c.label] = seen.get(c.label, 0) + 1
            if seen[c.label] > 1:
                c = SynthClass(label=f"{c.label} {seen[c.label]}", family=c.family, variety=c.variety,
                               forms=c.forms, colours=c.colours)
            renamed.append(c)
        classes = renamed
    return tuple(classes)


def linked_species() -> list[set[str]]:
    """Species ids joined when they share a habit mesh or a crystal-form set (connected groups):
    a zero-shot class must come from a group no trained class belongs to."""
    species = load_species()
    parent = {s.id: s.id for s in species}

    def root(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    owner: dict[object, str] = {}
    for s in species:
        for h in s.habits:
            for key in (("mesh", h.digest), ("cdl", h.cdl_forms)):
                if key[1] and key in owner:
                    parent[root(s.id)] = root(owner[key])
                else:
                    owner.setdefault(key, s.id)
    groups: dict[str, set[str]] = {}
    for s in species:
        groups.setdefault(root(s.id), set()).add(s.id)
    return sorted(groups.values(), key=lambda g: sorted(g))
