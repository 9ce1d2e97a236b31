"""What one photograph shows, drawn at random from a sample's own generator: the specimen
(matrix + crystals + satellite), the background, the reference cube, the label and the
camera. No pixels here (see ``render.py``); the description text is written from the same
choices, so it says what is visible."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from minbench.data.synth.colors import Colour, describe_rgb, srgb_to_lab
from minbench.data.synth.meshes import (
    Mesh,
    load_mesh,
    lumpy,
    needle_mesh,
    random_rotation,
    sphere_mesh,
)
from minbench.data.synth.species import Form, SynthClass

# Host rocks: base colour and speckle colours (sRGB).
ROCKS: dict[str, tuple[tuple[int, int, int], tuple[tuple[int, int, int], ...]]] = {
    "grey granite": ((165, 158, 152), ((232, 228, 222), (52, 50, 50), (196, 160, 150))),
    "pink granite": ((196, 150, 136), ((236, 226, 220), (60, 56, 56), (170, 120, 110))),
    "dark basalt": ((72, 72, 74), ((40, 40, 42), (112, 110, 104), (90, 84, 70))),
    "cream limestone": ((206, 196, 172), ((232, 226, 210), (172, 160, 138), (190, 176, 150))),
    "white quartz": ((224, 222, 216), ((200, 200, 196), (244, 244, 242), (210, 200, 184))),
    "rusty gossan": ((142, 88, 52), ((92, 52, 30), (184, 124, 62), (60, 40, 30))),
    "grey-green schist": ((118, 126, 108), ((160, 162, 150), (78, 86, 72), (140, 150, 120))),
    "buff sandstone": ((190, 152, 112), ((214, 180, 140), (150, 112, 80), (120, 90, 70))),
}
BACKGROUNDS = ("grey", "black", "white", "cloth")
CLOTHS = ((30, 48, 92), (38, 70, 46), (96, 28, 36), (52, 52, 58), (150, 140, 120))
CUBE_EDGE_CM = 1.27
# Where the reference cube is: beside the specimen (the protocol), or, as in some museum
# photos, touching it, partly hidden behind it, cut by the frame, or left out.
CUBE_MODES = ("beside", "touching", "occluded", "cut", "absent")
CUBE_MODE_P = (0.86, 0.04, 0.03, 0.03, 0.04)
# Sizes are recorded as a curator measures them: the longest dimension, to the millimetre.
SIZE_ROUND_CM = 0.1
NUMBERS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


@dataclass
class CrystalSpec:
    mesh: Mesh
    rotation: np.ndarray
    stretch: np.ndarray
    size: float              # longest side, in units of the matrix radius
    offset: tuple[float, float]   # centre, in units of the matrix radius
    rgb: np.ndarray          # base colour 0..1 (already jittered)
    rgb2: np.ndarray | None
    alpha: float             # 1 = opaque
    lustre: str
    satellite: bool


@dataclass
class Scene:
    width: int
    height: int
    size_cm: float                 # intended specimen size (longest side); the truth is measured after drawing
    fill: float                    # share of the frame the specimen spans, whatever its size (cube permitting)
    matrix: bool
    matrix_shape: np.ndarray       # radial profile multipliers, (n,)
    matrix_aspect: float
    rock: str
    crystals: list[CrystalSpec]
    background: str
    bg_colours: tuple[np.ndarray, np.ndarray]
    light: np.ndarray              # unit vector from the surface toward the light (camera space)
    light_tint: np.ndarray
    cube_side: str                 # "left", "right" or "bottom"
    cube_yaw: float
    cube_pitch: float
    cube_rgb: np.ndarray
    fov_deg: float                 # horizontal field of view of the camera (perspective of the cube)
    label_lines: list[str]
    label_font: int
    wb: np.ndarray                 # per-channel gains
    exposure: float
    vignette: float
    blur_sigma: float              # in pixels at 1024 px wide
    noise_sigma: float
    jpeg_quality: int
    satellite: SynthClass | None
    form: Form | None = None
    colour: Colour | None = None
    own_rock_rgb: np.ndarray | None = None   # matrix of the mineral's own hue (rock == "own")
    matrix_depth: float = 0.6      # matrix thickness, in matrix radii
    depth_cm: float = 0.0          # how much farther from the camera the specimen stands than the cube
    cube_mode: str = "beside"      # one of CUBE_MODES
    texture: str = "smooth"        # crystal faces: smooth, striated or pitted
    illuminant: str = "daylight"
    description: str = ""
    collection: str = ""           # the museum collection the specimen is kept in (one of COLLECTIONS)


def _jitter_colour(rgb, rng: np.random.Generator) -> np.ndarray:
    """Natural spread of one colour between specimens: saturation x0.65-1.25, lightness x0.7-1.2,
    a small hue drift (impurity content and thickness vary; set by eye on museum photos)."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    grey = c.mean()
    c = grey + (c - grey) * rng.uniform(0.65, 1.25)
    c = c * rng.uniform(0.7, 1.2)
    c = c + rng.normal(0, 0.04, 3)
    return np.clip(c, 0.02, 1.0)


def achromatic(rgb) -> bool:
    """Colourless, white, grey or black to the eye: CIE chroma below 12."""
    lab = srgb_to_lab(np.asarray(rgb, dtype=np.float64))
    return bool(np.hypot(lab[1], lab[2]) < 12.0)


def pick_colour(colours, rng: np.random.Generator, weights=()):
    """One of a class's colours, drawn by the table's weights (how common each colour is)."""
    w = np.asarray(weights if len(weights) else [1.0] * len(colours), dtype=np.float64)
    return colours[int(rng.choice(len(colours), p=w / w.sum()))]


# How a specimen's form is drawn: a non-crystalline aggregate (when the species has one) this
# often; else one of its habits, the table's first (commonest) most often, as a single crystal,
# a group or a druse.
NON_CRYSTALLINE_SHARE = 0.2
AGGREGATE_P = {"crystal": 0.35, "group": 0.45, "druse": 0.2}


def pick_form(cls: SynthClass, rng: np.random.Generator) -> Form:
    """The form of one specimen of ``cls``."""
    crystalline = [f for f in cls.forms if f.crystalline]
    other = [f for f in cls.forms if not f.crystalline]
    if other and (not crystalline or rng.random() < NON_CRYSTALLINE_SHARE):
        return other[int(rng.integers(len(other)))]
    habits = list(dict.fromkeys(f.habit for f in crystalline))
    w = 1.0 / np.arange(1, len(habits) + 1)
    habit = habits[int(rng.choice(len(habits), p=w / w.sum()))]
    kind = str(rng.choice(list(AGGREGATE_P), p=list(AGGREGATE_P.values())))
    return Form(kind, habit)


def _alpha(transparency: tuple[str, ...], base: np.ndarray, rng: np.random.Generator) -> float:
    """Opacity of a crystal of this transparency (a range shows either end): transparent pale
    crystals let the backdrop through most."""
    kind = transparency[int(rng.integers(len(transparency)))]
    if kind == "opaque":
        return 1.0
    if kind == "translucent":
        return float(rng.uniform(0.86, 0.97))
    pale = achromatic(base * 255) and base.mean() > 0.6
    return float(rng.uniform(0.5, 0.72)) if pale else float(rng.uniform(0.72, 0.9))


# Crystals per specimen and their size (in matrix radii) for each aggregate form.
FORM_LAYOUT = {  # (min count, max count, main size range, others' size share range, spread radius)
    "crystal": (1, 2, (0.8, 1.5), (0.4, 0.8), 0.5),
    "group": (3, 9, (0.6, 1.1), (0.4, 0.9), 0.7),
    "druse": (14, 36, (0.16, 0.3), (0.5, 1.0), 0.95),
    "massive": (1, 2, (1.1, 1.6), (0.5, 0.8), 0.3),
    "granular": (24, 48, (0.18, 0.3), (0.6, 1.0), 0.75),
    "botryoidal": (6, 18, (0.3, 0.55), (0.5, 1.0), 0.75),
    "fibrous": (12, 30, (0.9, 1.5), (0.6, 1.0), 0.1),
}


def _form_mesh(form: Form, rng: np.random.Generator) -> Mesh:
    if form.crystalline:
        return load_mesh(form.habit)
    if form.kind == "fibrous":
        return needle_mesh()
    if form.kind == "massive":
        return lumpy(sphere_mesh(2), rng, amount=0.22)
    if form.kind == "granular":
        return lumpy(sphere_mesh(1), rng, amount=0.3)
    return lumpy(sphere_mesh(2), rng, amount=0.04)   # botryoidal: near-spheres


def _crystals_for(cls: SynthClass, rng: np.random.Generator, *, satellite: bool,
                  form: Form | None = None, colour: Colour | None = None) -> tuple[list[CrystalSpec], Form, Colour]:
    """The mineral's bodies on one specimen: its form, colour, lustre and transparency."""
    fam = cls.family
    form = form or pick_form(cls, rng)
    colour = colour or pick_colour(cls.colours, rng, cls.colour_weights)
    lo, hi, main_range, other_range, spread = FORM_LAYOUT[form.kind]
    n = int(rng.integers(lo, hi + 1))
    if satellite:
        n, main_range, spread = min(n, 4), (0.15, 0.35), 0.9
    # A lustre range ("vitreous/pearly") shows its other end on some specimens; massive and
    # granular aggregates of a glassy mineral look dull (many small scattering grains).
    lustre = fam.lustre_alt if rng.random() < 0.25 else fam.lustre
    if form.kind in ("massive", "granular") and lustre in ("vitreous", "adamantine") and rng.random() < 0.5:
        lustre = "earthy" if form.kind == "massive" else "resinous"
    base = _jitter_colour(colour.rgb, rng)
    base2 = _jitter_colour(colour.rgb2, rng) if colour.rgb2 else None
    if lustre in ("metallic", "submetallic"):   # a metal's colour is its reflectance, the compound's own:
        ref = np.asarray(colour.rgb, dtype=np.float64) / 255   # specimens differ in brightness, hardly in hue
        base = np.clip(ref * base.mean() / max(ref.mean(), 1e-3), 0.02, 1.0)
    opaque = not form.crystalline or lustre in ("metallic", "submetallic", "earthy")
    alpha = 1.0 if opaque else _alpha(fam.transparency, base, rng)
    main_size = rng.uniform(*main_range)
    shared = random_rotation(rng)
    out = []
    for i in range(n):
        m = _form_mesh(form, rng)
        stretch = rng.uniform(0.85, 1.2, 3) if form.crystalline else np.ones(3)
        size = main_size * (1.0 if i == 0 else rng.uniform(*other_range))
        if form.kind == "fibrous":   # fibres radiate from one point: rotations near a shared one
            jitter = random_rotation(rng)
            rotation = _blend_rotation(shared, jitter, 0.35)
            ang = 0.0
            rad = 0.0
        else:
            rotation = random_rotation(rng)
            # Bodies sit on the upper part of the matrix, the first near the middle.
            ang = rng.uniform(-math.pi, 0) if i else rng.uniform(-2.4, -0.7)
            rad = rng.uniform(0.0, 0.35 * spread) if i == 0 else rng.uniform(0.2, 1.0) * spread
        if satellite:
            ang, rad = rng.uniform(-math.pi, math.pi), rng.uniform(0.35, 0.9)
        offset = (rad * math.cos(ang), rad * math.sin(ang) * 0.8)
        tone = np.clip(base * rng.uniform(0.92, 1.08), 0, 1)
        out.append(CrystalSpec(mesh=m, rotation=rotation, stretch=stretch, size=size, offset=offset,
                               rgb=tone, rgb2=base2, alpha=alpha, lustre=lustre, satellite=satellite))
    return out, form, colour


def _blend_rotation(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """A rotation between ``a`` and ``b`` (t=0: a): re-orthonormalised linear blend, enough for spread."""
    u, _, vt = np.linalg.svd((1 - t) * a + t * b)
    r = u @ vt
    return r if np.linalg.det(r) > 0 else -r


# Illuminants of museum photography (tungsten lamps, daylight, fluorescent tubes) as RGB gains
# before the camera's white balance, which corrects them only in part.
ILLUMINANTS = {"daylight": (1.0, 1.0, 1.0), "tungsten": (1.0, 0.86, 0.66), "fluorescent": (0.94, 1.0, 0.92),
               "overcast": (0.92, 0.97, 1.0)}
OWN_ROCK_SHARE = 0.15
# The museum's collections (the release's image folders), drawn independently of the species:
# a specimen's collection is where the museum keeps it, not what it is.
COLLECTIONS = {"1_syst": 0.45, "2_mest": 0.25, "3_op": 0.05, "4_cryst": 0.12, "5_PDK": 0.08, "7_stepanov": 0.04,
               "10_meteor": 0.01}


def sample_scene(cls: SynthClass, rng: np.random.Generator, *, width: int, height: int,
                 satellite: SynthClass | None) -> Scene:
    """Draw every random choice of one photograph."""
    size_cm = float(np.clip(rng.lognormal(math.log(5.0), 0.55), 1.5, 25.0))
    matrix = rng.random() < 0.9
    crystals, form, colour = _crystals_for(cls, rng, satellite=False)
    if satellite is not None:
        crystals += _crystals_for(satellite, rng, satellite=True)[0]
        # Satellites grow beside the main crystals: some in front, some behind.
        rng.shuffle(crystals)
    n_prof = 40
    k = np.arange(1, 6)
    amp = rng.uniform(0.03, 0.16, 5) / k
    phase = rng.uniform(0, 2 * math.pi, 5)
    theta = np.linspace(0, 2 * math.pi, n_prof, endpoint=False)
    profile = 1 + (amp[None, :] * np.cos(k[None, :] * theta[:, None] + phase[None, :])).sum(1)
    profile *= 1 + rng.normal(0, 0.025, n_prof)
    background = str(rng.choice(BACKGROUNDS, p=[0.35, 0.25, 0.2, 0.2]))
    if background == "grey":
        top = rng.uniform(0.55, 0.8)
        bg = (np.full(3, top), np.full(3, top * rng.uniform(0.55, 0.85)))
    elif background == "black":
        v = rng.uniform(0.03, 0.12)
        bg = (np.full(3, v), np.full(3, v * rng.uniform(0.3, 0.8)))
    elif background == "white":
        v = rng.uniform(0.85, 0.97)
        bg = (np.full(3, v), np.full(3, v * rng.uniform(0.8, 0.95)))
    else:
        cloth = np.array(CLOTHS[int(rng.integers(len(CLOTHS)))]) / 255.0
        bg = (cloth * rng.uniform(0.9, 1.2), cloth * rng.uniform(0.5, 0.8))
    light = np.array([rng.uniform(-0.7, 0.7), rng.uniform(-0.9, -0.2), -rng.uniform(0.5, 1.0)])
    light /= np.linalg.norm(light)
    # The matrix: a rock drawn independently of the species (a photo's rock says nothing of
    # its mineral), or massive material of the mineral's own hue.
    own_rgb = None
    if rng.random() < OWN_ROCK_SHARE:
        rock = "own"
        own_rgb = np.clip(crystals[0].rgb * rng.uniform(0.55, 0.85), 0.04, 1.0) if not crystals[0].satellite \
            else np.clip(_jitter_colour(colour.rgb, rng) * 0.7, 0.04, 1.0)
    else:
        rock = str(rng.choice(list(ROCKS)))
    # The cube is light, or dark on a light backdrop: never lost against its background.
    p_dark = 0.35 if (bg[0].mean() + bg[1].mean()) / 2 > 0.5 else 0.0
    cube_rgb = np.full(3, rng.uniform(0.12, 0.22) if rng.random() < p_dark else rng.uniform(0.8, 0.95))
    collection = str(rng.choice(list(COLLECTIONS), p=list(COLLECTIONS.values())))
    labels = [f"FMM {int(rng.integers(1, 99999)):05d}", f"No {collection.split('_')[0]}_{int(rng.integers(100, 99999))}"]
    if rng.random() < 0.5:
        labels.append(f"coll. {collection.split('_')[1]}")
    illuminant = str(rng.choice(list(ILLUMINANTS), p=[0.45, 0.3, 0.15, 0.1]))
    # White balance removes most of the illuminant's cast, never all of it.
    cast = np.array(ILLUMINANTS[illuminant]) ** rng.uniform(0.15, 0.45)
    cube_mode = str(rng.choice(CUBE_MODES, p=CUBE_MODE_P))
    scene = Scene(
        width=width, height=height, size_cm=size_cm, fill=float(rng.uniform(0.45, 0.7)), matrix=matrix,
        matrix_shape=profile, matrix_aspect=float(rng.uniform(0.55, 0.95)), rock=rock,
        crystals=crystals, background=background, bg_colours=bg, light=light,
        light_tint=cast * (1 + rng.normal(0, 0.02, 3)),
        cube_side=str(rng.choice(["left", "right", "bottom"], p=[0.4, 0.4, 0.2])),
        cube_yaw=float(np.radians(rng.uniform(25, 65))), cube_pitch=float(np.radians(rng.uniform(20, 40))),
        cube_rgb=cube_rgb,
        fov_deg=float(rng.uniform(20, 40)), label_lines=labels, label_font=int(rng.integers(0, 3)),
        wb=np.clip(1 + rng.normal(0, 0.05, 3), 0.85, 1.15), exposure=float(np.clip(rng.normal(1.0, 0.12), 0.7, 1.3)),
        vignette=float(rng.uniform(0.0, 0.35)), blur_sigma=float(rng.choice([0.0, rng.uniform(0.3, 1.8)], p=[0.3, 0.7])),
        noise_sigma=float(rng.uniform(1.0, 6.0)), jpeg_quality=int(rng.integers(72, 96)), satellite=satellite,
        form=form, colour=colour, own_rock_rgb=own_rgb, matrix_depth=float(rng.uniform(0.4, 0.9)),
        depth_cm=float(np.clip(rng.normal(0, 0.35), -1, 1) * size_cm), cube_mode=cube_mode,
        texture=str(rng.choice(["smooth", "striated", "pitted"], p=[0.6, 0.25, 0.15])) if form.crystalline
        else "smooth", illuminant=illuminant, collection=collection,
    )
    scene.description = describe(cls, scene)
    return scene


FORM_PHRASE = {"druse": "a druse of {n} small {habit} crystals", "massive": "a massive aggregate",
               "granular": "a granular aggregate", "botryoidal": "a botryoidal aggregate",
               "fibrous": "a fibrous, radiating aggregate"}


def describe(cls: SynthClass, scene: Scene) -> str:
    """English text of what the photo shows: form, colour, lustre, crystal system, matrix, satellites."""
    fam = cls.family
    own = [c for c in scene.crystals if not c.satellite]
    form = scene.form
    habit = own[0].mesh.habit
    if form.kind in FORM_PHRASE:
        body = FORM_PHRASE[form.kind].format(n="many" if len(own) > 10 else NUMBERS[len(own) - 1], habit=habit)
    elif len(own) == 1:
        body = f"a single {habit} crystal"
    else:
        body = f"a group of {NUMBERS[len(own) - 1]} {habit} crystals"
    clarity = "transparent" if own[0].alpha < 0.7 else ("translucent" if own[0].alpha < 1 else "opaque")
    colour = scene.colour.name
    tint = f"{colour} and {clarity}" if scene.colour.colourless else f"{colour} in colour, {clarity}"
    surface = {"striated": "; striated faces", "pitted": "; etched, pitted faces"}.get(scene.texture, "")
    text = (f"Specimen showing {body}, {tint}, with {own[0].lustre} lustre{surface}; "
            f"{fam.crystal_system} crystal system.")
    if not scene.matrix:
        text += " Without matrix."
    elif scene.rock == "own":
        text += " On massive material of the same mineral."
    else:
        text += f" On a {scene.rock} matrix."
    if scene.satellite is not None:
        sat = [c for c in scene.crystals if c.satellite]
        sat_colour = describe_rgb(sat[0].rgb * 255)
        text += (f" Accompanied by small {sat_colour} {sat[0].mesh.habit} crystals of another mineral "
                 f"({sat[0].lustre} lustre).")
    return text


def class_text(cls: SynthClass) -> str:
    """The field-guide line for a class, written for its species (no photo): what a zero-shot
    model may be told about a class it has never seen."""
    return f"{cls.label}: {cls.family.description}"
