"""Colour names as gemmologists write them ("Yellowish-green", "Deep pink", "Banded pink/white")
to sRGB, plus a few colour helpers the renderer and the variety builder share."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

# Base colour words -> sRGB. Chosen by eye against mineral photographs, not colourimetry.
BASE: dict[str, tuple[int, int, int]] = {
    "red": (178, 32, 38), "crimson": (158, 20, 52), "blood": (132, 12, 22), "raspberry": (176, 38, 92),
    "rose": (212, 112, 142), "pink": (228, 146, 168), "salmon": (238, 140, 116), "peach": (244, 182, 140),
    "orange": (232, 118, 32), "mandarin": (244, 122, 22), "vermilion": (218, 62, 32), "hyacinth": (196, 74, 44),
    "cinnamon": (178, 102, 52), "honey": (212, 150, 52), "yellow": (232, 202, 48), "lemon": (238, 228, 64),
    "golden": (218, 168, 52), "gold": (218, 168, 52), "brass": (198, 168, 82), "cream": (238, 228, 198),
    "green": (44, 148, 62), "emerald": (22, 140, 82), "grass": (72, 158, 52), "olive": (118, 128, 42),
    "lime": (150, 198, 52), "apple": (130, 188, 82), "pistachio": (150, 178, 92), "bottle": (42, 92, 44),
    "oil": (90, 110, 40), "chrome": (30, 130, 60),
    "blue": (42, 82, 188), "azure": (40, 112, 208), "sky": (118, 168, 228), "navy": (26, 36, 102),
    "royal": (42, 62, 168), "cornflower": (100, 140, 228), "celestial": (150, 188, 228), "cyan": (40, 188, 208),
    "turquoise": (58, 188, 186), "neon": (30, 200, 210),
    "violet": (128, 72, 172), "purple": (118, 42, 128), "lilac": (188, 158, 210), "lavender": (178, 160, 218),
    "mauve": (178, 130, 170), "burgundy": (108, 22, 42), "plum": (110, 40, 90),
    "brown": (118, 74, 40), "mahogany": (108, 42, 26), "bronze": (150, 110, 52), "sherry": (178, 108, 42),
    "black": (26, 26, 30), "white": (234, 234, 228), "grey": (138, 138, 138), "gray": (138, 138, 138),
    "silver": (188, 190, 196), "steel": (108, 114, 122), "lead": (100, 104, 112), "iron": (58, 58, 64),
    "colourless": (222, 226, 230), "colorless": (222, 226, 230), "milky": (228, 228, 222), "smoky": (96, 84, 72),
}
# Words that end in "-ish" tint the main colour rather than mix evenly with it.
ISH = {"yellowish": "yellow", "greenish": "green", "bluish": "blue", "brownish": "brown", "reddish": "red",
       "pinkish": "pink", "orangish": "orange", "orangey": "orange", "purplish": "purple", "greyish": "grey",
       "grayish": "grey", "violetish": "violet", "whitish": "white", "blackish": "black"}
PATTERN_WORDS = ("banded", "watermelon", "zoned", "bicolour", "bi-color", "bicolor", "multicoloured", "tricolour")


@dataclass(frozen=True)
class Colour:
    """A parsed colour entry: one or two sRGB tones and the words to say it with."""

    name: str                 # cleaned colour phrase, e.g. "yellowish-green"
    rgb: tuple[int, int, int]
    rgb2: tuple[int, int, int] | None = None   # second tone of a banded/zoned colour
    colourless: bool = False


def _mix(parts: list[tuple[tuple[int, int, int], float]]) -> np.ndarray:
    w = np.array([p[1] for p in parts], dtype=np.float64)
    c = np.array([p[0] for p in parts], dtype=np.float64)
    return (c * w[:, None]).sum(0) / w.sum()


def _words_colour(words: list[str]) -> np.ndarray | None:
    parts = []
    for w in words:
        if w in BASE:
            parts.append((BASE[w], 1.0))
        elif w in ISH:
            parts.append((BASE[ISH[w]], 0.4))
    if not parts:
        return None
    rgb = _mix(parts)
    text = " ".join(words)
    if "very dark" in text or "nearly black" in text or "inky" in text:
        rgb = rgb * 0.35
    elif "dark" in words or "deep" in words:
        rgb = rgb * 0.6
    if "pale" in words or "light" in words:
        rgb = rgb + (245 - rgb) * 0.45
    if any(w in words for w in ("vivid", "bright", "intense", "hot", "saturated")):
        grey = rgb.mean()
        rgb = grey + (rgb - grey) * 1.35
    if "dull" in words or "tarnished" in words:
        grey = rgb.mean()
        rgb = grey + (rgb - grey) * 0.5
    return np.clip(rgb, 0, 255)


def _tokens(text: str) -> list[str]:
    return [t for t in re.split(r"[^a-zà-ÿ]+", text.lower()) if t]


def parse_colour(entry: str) -> Colour | None:
    """A gemmologist's colour entry to a :class:`Colour`; None when it names no renderable colour
    (play of colour, colour change, "various", ...)."""
    low = entry.lower()
    if any(k in low for k in ("colour change", "color change", "colour-change", "color-change", "play of",
                              "spectral", "rainbow", "various", "all colours", "overtones", "matrix",
                              "cat's-eye", "star in", "flash", "sheen", "daylight", "incandescent")):
        return None
    main = re.sub(r"\(.*?\)", " ", low)
    main = main.split(" to ")[0].split(" with ")[0].split(",")[0]
    main = re.sub(r"\b(rarely|rare|most common|primary gem colour|classic|occasionally)\b", " ", main)
    words = _tokens(main)
    patterned = any(p.replace("-", "") in "".join(words) or p in low for p in PATTERN_WORDS)
    if patterned:
        # Two tones, from the phrase or its parenthesis: "Banded pink/white", "Watermelon (pink-green)".
        tones: list[str] = []
        for w in _tokens(low):
            if w in BASE and all(delta_e(BASE[w], BASE[t]) > 30 for t in tones):
                tones.append(w)
        if len(tones) < 2:
            return None
        rgb1, rgb2 = BASE[tones[0]], BASE[tones[1]]
        name = f"{tones[0]} and {tones[1]} banded" if "band" in low else f"{tones[0]} and {tones[1]} zoned"
        return Colour(name=name, rgb=rgb1, rgb2=rgb2)
    if "/" in main:  # "Pink/lilac/violet": a range of tones, the first is the usual one
        words = _tokens(main.split("/")[0])
    rgb = _words_colour(words)
    if rgb is None:  # the colour may sit only in the parenthesis: "Yellow-green (chrysoberyl)"
        return None
    mods = [w for w in words if w in ("pale", "light", "dark", "deep", "vivid", "bright", "very", "nearly",
                                      "intense", "dull", "hot")]
    hues = [w for w in words if w in BASE or w in ISH]
    name = " ".join(mods + ["-".join(hues)])
    colourless = any(w in ("colourless", "colorless") for w in words)
    return Colour(name=name or words[0], rgb=tuple(int(round(v)) for v in rgb), colourless=colourless)


def srgb_to_lab(rgb) -> np.ndarray:
    """sRGB (0-255) to CIE Lab (D65), for colour distances."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = c @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def delta_e(a, b) -> float:
    """CIE76 colour difference of two sRGB colours."""
    return float(np.linalg.norm(srgb_to_lab(a) - srgb_to_lab(b)))


# Nearest plain colour word for a rendered sRGB value (for descriptions of what is visible).
_NAMED = {k: v for k, v in BASE.items() if k in (
    "red", "pink", "orange", "yellow", "green", "blue", "violet", "purple", "brown", "black", "white", "grey",
    "olive", "turquoise", "lilac", "golden", "cream")}


_NAMED_LAB = {k: srgb_to_lab(v) for k, v in _NAMED.items()}


def describe_rgb(rgb) -> str:
    """A plain word or two for a colour as it looks ('dark green', 'pale blue')."""
    lab = srgb_to_lab(rgb)
    best = min(_NAMED, key=lambda k: np.linalg.norm(_NAMED_LAB[k] - lab))
    base_l = _NAMED_LAB[best][0]
    if best not in ("black", "white", "grey") and lab[0] < base_l - 15:
        return f"dark {best}"
    if best not in ("black", "white", "grey", "cream") and lab[0] > base_l + 15:
        return f"pale {best}"
    return best
