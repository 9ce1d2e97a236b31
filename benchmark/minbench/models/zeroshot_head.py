"""Class texts and chunked scoring for zero-shot classification.

A candidate class is described by class-level text only (the protocol: nothing a
prediction uses may come from the test split's labels or its samples' own text): its
name put into prompt templates (several templates, ensembled by averaging their
embeddings, as CLIP does) and/or its class description (``TaskContext.class_texts``: one
line per class, written by the dataset, never built from samples). Images are then
scored against every class embedding; ``TopKScorer`` does this chunk by chunk over the
classes and keeps only a running top-k per image, so 10,000 images x 5,000 classes never
exist as one matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from minbench.errors import UserError
from minbench.io import read_config_file, read_text

# Ensembled by default. Mineral-specific wording: "a photo of a {}" alone describes nothing
# of a museum specimen.
DEFAULT_TEMPLATES: tuple[str, ...] = (
    "a photo of {}, a mineral.",
    "a photo of the mineral {}.",
    "a museum specimen of {}.",
    "a close-up photo of {} crystals.",
    "{} crystals on a rock matrix.",
    "a mineral specimen of {} from a museum collection.",
)

#: where a class's text comes from: ``names`` (templates x names), ``class_text`` (the
#: dataset's class description; the name where a class has none) or ``both`` (mixed)
TEXT_SOURCES = ("names", "class_text", "both")
#: text sources that were removed, and why (a stored run or an old recipe naming one is refused)
RETIRED_TEXT_SOURCES = {
    "descriptions": "named unseen classes by the descriptions of the test samples (test-set text in "
                    "every prediction), which the protocol forbids",
}


def check_text_source(value, where: str = "model.init_args.text_source") -> str:
    """``value`` when it is a known text source, else a one-line ``UserError`` (a retired
    source says why it went and what to use instead)."""
    if value in RETIRED_TEXT_SOURCES:
        raise UserError(f"{where}: {value!r} is no longer offered: it {RETIRED_TEXT_SOURCES[value]}; use "
                        "'class_text' (the dataset's class descriptions), 'names' (prompt templates x "
                        "names) or 'both'")
    if value not in TEXT_SOURCES:
        raise UserError(f"{where}: {value!r} is not one of {', '.join(TEXT_SOURCES)}")
    return value


# ----------------------------------------------------------------------------- templates

def validate_templates(templates: Sequence[str], where: str = "templates") -> list[str]:
    """Templates as a list; each must hold exactly one ``{}`` and nothing else to format."""
    out = [str(t) for t in templates]
    if not out:
        raise UserError(f"{where}: no templates given (need at least one, e.g. 'a photo of {{}}.')")
    for i, t in enumerate(out):
        if "{}" not in t:
            raise UserError(f"{where}: template {i + 1} {t!r} has no '{{}}' placeholder for the class name")
        try:
            t.format("x")
        except (IndexError, KeyError, ValueError):
            raise UserError(f"{where}: template {i + 1} {t!r} must hold exactly one '{{}}' "
                            "(write literal braces as '{{' and '}}')") from None
    dup = _first_duplicate(out)
    if dup is not None:
        raise UserError(f"{where}: template {dup!r} is given twice")
    return out


def load_templates(path: str | Path, key: str | None = None) -> list[str]:
    """Prompt templates from a file.

    ``.txt``: one template per line (blank lines and ``#`` comments skipped);
    ``.json``/``.yaml``: a list, or clip_benchmark's mapping ``{dataset: [templates]}``
    (the entry ``key`` is taken, or the only one).
    """
    path = Path(path)
    raw = _read_list_or_mapping(path, "templates")
    if isinstance(raw, dict):
        if key is not None and key in raw:
            raw = raw[key]
        elif len(raw) == 1:
            raw = next(iter(raw.values()))
        else:
            raise UserError(f"{path}: a mapping of several template lists ({', '.join(map(str, raw))}); "
                            f"name one entry '{key}' or give a plain list")
        if not isinstance(raw, list):
            raise UserError(f"{path}: the template entry is not a list of strings")
    if not all(isinstance(t, str) for t in raw):
        raise UserError(f"{path}: templates must be strings")
    return validate_templates(raw, where=str(path))


# ----------------------------------------------------------------------------- class names

@dataclass(frozen=True)
class ClassNames:
    """Candidate classes (manifest species, in order) and the names used in prompts."""

    classes: tuple[str, ...]
    prompt_names: tuple[tuple[str, ...], ...]  # per class: one or more names (synonyms, ensembled)


def check_classes(classes: Sequence[str], where: str = "classes") -> list[str]:
    """An ordered class list: non-empty, no empty names, no duplicates (case and spaces ignored)."""
    out = [str(c) for c in classes]
    if not out:
        raise UserError(f"{where}: the class list is empty")
    for i, c in enumerate(out):
        if not c.strip():
            raise UserError(f"{where}: class {i + 1} has an empty name")
    dup = _first_duplicate(out, key=lambda s: " ".join(s.casefold().split()))
    if dup is not None:
        raise UserError(f"{where}: class name {dup!r} appears more than once")
    return out


def load_class_names(path: str | Path) -> ClassNames:
    """Candidate classes from a file (clip_benchmark's custom class names, for species).

    ``.txt``: one species per line (the candidate list; the name is the prompt name);
    ``.json``/``.yaml``: a list of species, or a mapping ``species -> name`` or
    ``species -> [names]`` (prompts use the names; several are ensembled).
    """
    path = Path(path)
    raw = _read_list_or_mapping(path, "class names")
    if isinstance(raw, dict):
        classes = check_classes(list(raw), where=str(path))
        names = []
        for c in classes:
            v = raw[c]
            v = [v] if isinstance(v, str) else v
            if not isinstance(v, list) or not v or not all(isinstance(x, str) and x.strip() for x in v):
                raise UserError(f"{path}: class {c!r} needs a name or a non-empty list of names")
            names.append(tuple(v))
        return ClassNames(tuple(classes), tuple(names))
    if not all(isinstance(c, str) for c in raw):
        raise UserError(f"{path}: class names must be strings")
    classes = check_classes(raw, where=str(path))
    return ClassNames(tuple(classes), tuple((c,) for c in classes))


def resolve_candidates(default: Sequence[str], known: Sequence[str],
                       user: ClassNames | None, where: str = "--classnames") -> ClassNames:
    """The candidate classes: ``default`` (the split's species) unless the user gave a list.

    Every user class must be a species of the dataset (``known``), else the scorer could
    not read the submission; the message names the closest known species.
    """
    if user is None:
        classes = check_classes(sorted(default), where="the zero-shot split")
        return ClassNames(tuple(classes), tuple((c,) for c in classes))
    known_set = set(known)
    for c in user.classes:
        if c not in known_set:
            import difflib

            close = difflib.get_close_matches(c, list(known_set), n=3)
            hint = f" (closest: {', '.join(close)})" if close else ""
            raise UserError(f"{where}: class {c!r} is not a species of this dataset{hint}")
    return user


def name_prompts(names: ClassNames, templates: Sequence[str]) -> tuple[list[str], list[int]]:
    """Every (template x prompt name) text of every class, flat, with its class index."""
    texts, owner = [], []
    for ci, synonyms in enumerate(names.prompt_names):
        for name in synonyms:
            for t in templates:
                texts.append(t.format(name))
                owner.append(ci)
    return texts, owner


# ----------------------------------------------------------------------------- embeddings

def group_mean(emb, owner, num_classes: int):
    """Normalised mean of the (normalised) rows of ``emb`` per owner class; 0 where none."""
    import torch
    import torch.nn.functional as F

    owner_t = torch.as_tensor(owner, dtype=torch.long, device=emb.device)
    keep = owner_t >= 0
    sums = torch.zeros(num_classes, emb.shape[1], dtype=emb.dtype, device=emb.device)
    sums.index_add_(0, owner_t[keep], F.normalize(emb[keep], dim=-1))
    counts = torch.bincount(owner_t[keep], minlength=num_classes)
    return F.normalize(sums, dim=-1), sums, counts


def combine(name_emb, text_emb, has_text, source: str, alpha: float = 0.5):
    """Class embeddings from name prompts and/or class texts (``source`` in TEXT_SOURCES).

    ``class_text`` takes the class text; ``both`` mixes ``alpha * class text + (1 - alpha)
    * names``; a class without a class text (``has_text`` False) keeps its name embedding
    whatever the source.
    """
    import torch.nn.functional as F

    check_text_source(source, where="text source")
    if source == "names" or text_emb is None:
        return F.normalize(name_emb, dim=-1)
    has = has_text.bool().unsqueeze(1)
    w = 1.0 if source == "class_text" else alpha
    mixed = F.normalize(w * F.normalize(text_emb, dim=-1) + (1 - w) * F.normalize(name_emb, dim=-1), dim=-1)
    return F.normalize(name_emb, dim=-1).where(~has, mixed)


# ----------------------------------------------------------------------------- scoring

class TopKScorer:
    """Scores image batches against all classes in chunks, keeping a running top-k.

    Memory per call is ``batch x chunk`` scores plus the running ``batch x k`` lists.
    """

    def __init__(self, class_emb, k: int = 10, chunk: int = 2048):
        import torch.nn.functional as F

        if class_emb.ndim != 2 or class_emb.shape[0] == 0:
            raise UserError("zero-shot scoring: no candidate classes")
        self.class_emb = F.normalize(class_emb.float(), dim=-1)
        self.k = min(int(k), class_emb.shape[0])
        self.chunk = max(1, int(chunk))
        self._values, self._indices = [], []

    @property
    def num_classes(self) -> int:
        return self.class_emb.shape[0]

    def score(self, image_emb):
        """Top-k (values, class indices) of one batch of image embeddings, best first."""
        import torch
        import torch.nn.functional as F

        img = F.normalize(image_emb.float(), dim=-1).to(self.class_emb.device)
        b = img.shape[0]
        best_v = torch.full((b, self.k), float("-inf"), device=img.device)
        best_i = torch.full((b, self.k), -1, dtype=torch.long, device=img.device)
        for start in range(0, self.num_classes, self.chunk):
            block = img @ self.class_emb[start:start + self.chunk].T
            # top-k of the chunk first, then merge two k-lists: no copy of the whole chunk
            v, pos = torch.topk(block, min(self.k, block.shape[1]), dim=1)
            v, sel = torch.topk(torch.cat([best_v, v], 1), self.k, dim=1)
            best_i = torch.gather(torch.cat([best_i, pos + start], 1), 1, sel)
            best_v = v
        return best_v, best_i

    def add(self, image_emb) -> None:
        """Score a batch and keep its top-k for ``result``."""
        v, i = self.score(image_emb)
        self._values.append(v.cpu())
        self._indices.append(i.cpu())

    def result(self):
        """All batches' (values N x k, indices N x k) in the order they were added."""
        import torch

        if not self._values:
            return torch.zeros(0, self.k), torch.zeros(0, self.k, dtype=torch.long)
        return torch.cat(self._values), torch.cat(self._indices)


# ----------------------------------------------------------------------------- helpers

def _first_duplicate(items, key=lambda s: s):
    seen = set()
    for it in items:
        k = key(it)
        if k in seen:
            return it
        seen.add(k)
    return None


def _read_list_or_mapping(path: Path, what: str):
    """A list (txt lines, JSON/YAML list) or a mapping (JSON/YAML object) from ``path``."""
    if path.suffix.lower() in (".json", ".yaml", ".yml"):
        raw = read_config_file(path, f"{what} file")
    else:
        raw = [ln.strip() for ln in read_text(path, f"{what} file").splitlines()]
        raw = [ln for ln in raw if ln and not ln.startswith("#")]
    if raw is None:
        raw = []
    if not isinstance(raw, (list, dict)):
        raise UserError(f"{path}: {what} must be a list (or a mapping), not {type(raw).__name__}")
    return raw
