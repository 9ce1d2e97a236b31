"""What one photograph shows, drawn at random from a sample's own generator: the specimen
(matrix + crystals + satellite), the background, the reference cube, the label and the
camera. No pixels here (see ``render.py``); the description text is written from the same
choices, so it says what is visible."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from minbench.data.synth.colors import describe_rgb
from minbench.data.synth.meshes import Mesh, load_mesh, lumpy, random_rotation
from minbench.data.synth.species import SynthClass

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
    fill: float                    # share of the free area the specimen spans
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
    description: str = ""


def _jitter_colour(rgb, rng: np.random.Generator, amount: float) -> np.ndarray:
    """Within-class colour variation: lightness and saturation shifts, a small hue drift."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    grey = c.mean()
    sat = rng.uniform(1 - 0.35 * amount, 1 + 0.25 * amount)
    c = grey + (c - grey) * sat
    c = c * rng.uniform(1 - 0.3 * amount, 1 + 0.2 * amount)
    c = c + rng.normal(0, 0.04 * amount, 3)
    return np.clip(c, 0.02, 1.0)


def _crystals_for(cls: SynthClass, rng: np.random.Generator, *, satellite: bool,
                  colour_jitter: float) -> list[CrystalSpec]:
    fam = cls.family
    habit = fam.habits[min(int(rng.exponential(0.9)), len(fam.habits) - 1)]
    mesh = load_mesh(habit)
    if mesh.massive:
        n = 1 if satellite else int(rng.integers(1, 3))
    else:
        n = int(rng.integers(1, 4)) if satellite else int(min(1 + rng.geometric(0.35), 9))
    # A lustre range ("vitreous to pearly") shows its other end on some specimens.
    lustre = fam.lustre_alt if rng.random() < 0.25 else fam.lustre
    base = _jitter_colour(cls.colour.rgb, rng, colour_jitter)
    base2 = _jitter_colour(cls.colour.rgb2, rng, colour_jitter) if cls.colour.rgb2 else None
    alpha = 0.6 if cls.colour.colourless else (0.85 if lustre == "vitreous" and base.mean() > 0.7 else 1.0)
    main_size = (rng.uniform(0.15, 0.35) if satellite else rng.uniform(0.7, 1.5)) * (1.2 if mesh.massive else 1.0)
    out = []
    for i in range(n):
        m = lumpy(mesh, rng) if mesh.massive else mesh
        stretch = np.array([1.0, 1.0, 1.0]) if mesh.massive else rng.uniform(0.85, 1.2, 3)
        size = main_size * (1.0 if i == 0 else rng.uniform(0.4, 0.9))
        # Crystals sit on the upper part of the matrix, the first near the middle.
        ang = rng.uniform(-math.pi, 0) if i else rng.uniform(-2.4, -0.7)
        rad = rng.uniform(0.0, 0.35) if i == 0 else rng.uniform(0.25, 0.85)
        if satellite:
            ang, rad = rng.uniform(-math.pi, math.pi), rng.uniform(0.35, 0.9)
        offset = (rad * math.cos(ang), rad * math.sin(ang) * 0.8)
        colour = np.clip(base * rng.uniform(0.92, 1.08), 0, 1)
        out.append(CrystalSpec(mesh=m, rotation=random_rotation(rng), stretch=stretch, size=size, offset=offset,
                               rgb=colour, rgb2=base2, alpha=alpha, lustre=lustre, satellite=satellite))
    return out


def sample_scene(cls: SynthClass, rng: np.random.Generator, *, width: int, height: int,
                 satellite: SynthClass | None, colour_jitter: float = 0.7) -> Scene:
    """Draw every random choice of one photograph. ``colour_jitter`` scales the within-class colour
    variation (1: saturation x0.65-1.25, lightness x0.7-1.2, hue drift 0.04; 0.7 was tuned so a
    small CNN from scratch lands around 30-40% top-1 on fewshot-98 small)."""
    size_cm = float(np.clip(rng.lognormal(math.log(5.0), 0.55), 1.5, 25.0))
    matrix = rng.random() < 0.9
    crystals = _crystals_for(cls, rng, satellite=False, colour_jitter=colour_jitter)
    if satellite is not None:
        crystals += _crystals_for(satellite, rng, satellite=True, colour_jitter=colour_jitter)
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
    rock = str(rng.choice(list(ROCKS)))
    # The cube is light, or dark on a light backdrop: never lost against its background.
    p_dark = 0.35 if (bg[0].mean() + bg[1].mean()) / 2 > 0.5 else 0.0
    cube_rgb = np.full(3, rng.uniform(0.12, 0.22) if rng.random() < p_dark else rng.uniform(0.8, 0.95))
    labels = [f"FMM {int(rng.integers(1, 99999)):05d}", f"No {int(rng.integers(1, 11))}_{int(rng.integers(100, 99999))}"]
    if rng.random() < 0.5:
        labels.append(f"coll. {int(rng.integers(1, 11))}")
    scene = Scene(
        width=width, height=height, size_cm=size_cm, fill=float(rng.uniform(0.7, 0.95)), matrix=matrix,
        matrix_shape=profile, matrix_aspect=float(rng.uniform(0.55, 0.95)), rock=rock,
        crystals=crystals, background=background, bg_colours=bg, light=light,
        light_tint=np.array([1.0, 1.0, 1.0]) + rng.normal(0, 0.03, 3),
        cube_side=str(rng.choice(["left", "right", "bottom"], p=[0.4, 0.4, 0.2])),
        cube_yaw=float(np.radians(rng.uniform(25, 65))), cube_pitch=float(np.radians(rng.uniform(20, 40))),
        cube_rgb=cube_rgb,
        fov_deg=float(rng.uniform(20, 40)), label_lines=labels, label_font=int(rng.integers(0, 3)),
        wb=np.clip(1 + rng.normal(0, 0.05, 3), 0.85, 1.15), exposure=float(np.clip(rng.normal(1.0, 0.12), 0.7, 1.3)),
        vignette=float(rng.uniform(0.0, 0.35)), blur_sigma=float(rng.choice([0.0, rng.uniform(0.3, 1.8)], p=[0.3, 0.7])),
        noise_sigma=float(rng.uniform(1.0, 6.0)), jpeg_quality=int(rng.integers(72, 96)), satellite=satellite,
    )
    scene.description = describe(cls, scene)
    return scene


def _lustre_words(text: str) -> str:
    return text.split(";")[0].split("(")[0].strip().lower() or "vitreous"


def describe(cls: SynthClass, scene: Scene) -> str:
    """English text of what the photo shows: habit, colour, lustre, crystal system, matrix, satellites."""
    fam = cls.family
    own = [c for c in scene.crystals if not c.satellite]
    habit = own[0].mesh.habit
    colour = cls.colour.name
    if own[0].mesh.massive:
        body = f"a massive {habit if habit != 'massive' else 'nodular'} aggregate" if len(own) == 1 else \
            f"{NUMBERS[len(own) - 1]} {habit if habit != 'massive' else 'nodular'} masses"
    elif len(own) == 1:
        body = f"a single {habit} crystal"
    else:
        body = f"a group of {NUMBERS[len(own) - 1]} {habit} crystals"
    clarity = "transparent" if own[0].alpha < 0.7 else ("translucent" if own[0].alpha < 1 else "opaque")
    tint = f"{colour} and {clarity}" if cls.colour.colourless else f"{colour} in colour, {clarity}"
    text = (f"Specimen showing {body}, {tint}, with {_lustre_words(fam.lustre_text)} lustre; "
            f"{fam.crystal_system} crystal system.")
    text += f" On a {scene.rock} matrix." if scene.matrix else " Without matrix."
    if scene.satellite is not None:
        sat = [c for c in scene.crystals if c.satellite]
        sat_colour = describe_rgb(sat[0].rgb * 255)
        text += (f" Accompanied by small {sat_colour} {sat[0].mesh.habit} crystals of another mineral "
                 f"({_lustre_words(scene.satellite.family.lustre_text)} lustre).")
    return text


def class_text(cls: SynthClass) -> str:
    """A field-guide line for a class, from the database alone (no photo): what a zero-shot
    model may be told about a species it has never seen."""
    fam = cls.family
    habits = list(dict.fromkeys(load_mesh(h).habit for h in fam.habits))
    colour = cls.colour.name if cls.label == fam.species else f"{cls.variety} ({cls.colour.name})" \
        if cls.variety != cls.colour.name else cls.colour.name
    return (f"{cls.label}: {colour}; {_lustre_words(fam.lustre_text)} lustre; {fam.crystal_system} crystal system; "
            f"habit {', '.join(habits)}; {fam.category.lower()}.")
