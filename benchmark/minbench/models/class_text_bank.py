"""The class texts of a zero-shot task and their text features (no Lightning, nothing trained).

``ClassTextBank.build(context, encoder)`` reads a ``minbench.data.context.TaskContext``:
the manifest rows of the train/val/test splits, their descriptions and species, and the
seen (training) classes. Candidates are the test split's species (or a user list). It
embeds, once, with a frozen text encoder (cached on disk):

- the description of every row a split uses (raw features; none when nothing reads them);
- description pools per class: sums and counts of the normalised description features,
  seen classes from TRAIN rows only (validation images are GZSL queries), unseen classes
  from the test rows (leave-one-out removes each image's own text);
- name prompts (templates x prompt names), ensembled per class.

A model turns them into class embeddings in its joint space with its own text projection
(``class_embeddings(which, project_text)``) and scores an image's own class without its
own description (``own_class_scores``, the leave-one-out rule).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from minbench.errors import UserError
from minbench.models import zeroshot_head as zh

ProjectText = Callable[[torch.Tensor], torch.Tensor]


class ClassTextBank:
    """Texts and raw text features of the seen and unseen classes of one data split.

    Args:
        text_source: class text from ``names`` (templates x names), ``descriptions``
            (mean of the class's sample descriptions) or ``both`` (mixed by ``text_alpha``).
        text_alpha: weight of the descriptions in ``both``.
        templates: prompt templates (each with one ``{}``).
        user_classes: candidate classes and prompt names from the user, else the test species.
        leave_one_out: a test image's own description never counts for its class.
    """

    def __init__(self, *, text_source: str, text_alpha: float, templates: Sequence[str],
                 user_classes: zh.ClassNames | None = None, leave_one_out: bool = True) -> None:
        self.text_source = text_source
        self.text_alpha = float(text_alpha)
        self.templates = list(templates)
        self.user_classes = user_classes
        self.leave_one_out = bool(leave_one_out)
        self.seen_classes: list[str] = []
        self.unseen: zh.ClassNames | None = None
        self.built = False

    def build(self, context, encoder, *, needs_descriptions: bool, needs_seen_names: bool) -> None:
        """Read rows, classes and texts from a ``TaskContext``; embed every text once.

        Seen classes are ``context.classes`` (the training species); unseen candidates are
        the test split's species, or the user's class list. ``needs_descriptions``: whether
        anything reads the samples' descriptions; ``needs_seen_names``: whether the seen
        classes' name prompts are needed even when descriptions are the class text.
        """
        from minbench.models.text_encoders import encode_cached

        frame = context.frame
        pos = {name: context.split_positions(name) for name in ("train", "val", "test")}
        species = frame["species"].to_numpy()
        test_species = sorted(set(species[pos["test"]].tolist()))
        cand = zh.resolve_candidates(test_species, sorted(set(species.tolist())), self.user_classes)
        seen = list(context.classes)
        clash = sorted(set(seen) & set(cand.classes))
        if clash:
            raise UserError(f"candidate class {clash[0]!r} is also a training class: zero-shot candidates "
                            "must be classes the model never trained on")
        self.seen_classes = seen
        self.unseen = cand
        enc = encoder

        # Raw description features of every row that any split uses ("" = no description);
        # none at all when nothing reads them (CLIP on names: 44k descriptions would cost
        # minutes of text encoding for nothing).
        used = np.unique(np.concatenate([pos[n] for n in pos]))
        desc = frame["description"].to_numpy()[used].astype(str)
        has = np.char.str_len(np.char.strip(desc)) > 0
        if not needs_descriptions:
            has[:] = False
        feats = torch.zeros(len(frame), enc.dim)
        if has.any():
            feats[used[has]] = encode_cached(enc, desc[has].tolist())
        self.row_text = feats
        self.row_has_text = torch.zeros(len(frame), dtype=torch.bool)
        self.row_has_text[used[has]] = True
        self.zeroshot_rows = torch.zeros(len(frame), dtype=torch.bool)
        self.zeroshot_rows[np.isin(species, test_species)] = True
        self.zeroshot_rows[pos["test"]] = True

        # Description pools: seen classes from TRAIN rows only (val images are GZSL queries),
        # unseen classes from the test rows (leave-one-out removes each image's own text).
        label_of = {c: i for i, c in enumerate(seen)}
        self.seen_desc = self._pool(pos["train"], species, label_of, len(seen))
        cand_of = {c: i for i, c in enumerate(cand.classes)}
        self.unseen_desc = self._pool(pos["test"], species, cand_of, len(cand.classes))
        own = np.array([cand_of.get(s, -1) for s in species], np.int64)
        self.row_unseen_class = torch.from_numpy(own)
        self.train_labels = torch.full((len(frame),), -1, dtype=torch.long)
        self.train_labels[pos["train"]] = torch.as_tensor([label_of[s] for s in species[pos["train"]]],
                                                          dtype=torch.long)

        # Name prompts (templates x prompt names), ensembled per class. With descriptions as
        # the source only the classes that may fall back to their name need them (no
        # description, or one that leave-one-out removes): the encoder is the slow part.
        seen_names = zh.ClassNames(tuple(seen), tuple((c,) for c in seen))
        all_seen = self.text_source != "descriptions" or needs_seen_names
        self.seen_name_raw = self._name_features(
            enc, seen_names, None if all_seen else self.seen_desc[1] < 1)
        self.unseen_name_raw = self._name_features(
            enc, cand, None if self.text_source != "descriptions" else self.unseen_desc[1] < 2)
        self.built = True

    def _name_features(self, enc, names: zh.ClassNames, need=None) -> torch.Tensor:
        """Ensembled name-prompt features per class (zeros where ``need`` is False)."""
        from minbench.models.text_encoders import encode_cached

        n = len(names.classes)
        pick = range(n) if need is None else [i for i in range(n) if bool(need[i])]
        out = torch.zeros(n, enc.dim)
        if not pick:
            return out
        sub = zh.ClassNames(tuple(names.classes[i] for i in pick), tuple(names.prompt_names[i] for i in pick))
        texts, owner = zh.name_prompts(sub, self.templates)
        mean, _, _ = zh.group_mean(encode_cached(enc, texts), owner, len(pick))
        out[list(pick)] = mean
        return out

    def _pool(self, rows, species, index_of, n) -> tuple[torch.Tensor, torch.Tensor]:
        """Sum (raw, normalised rows) and count of described rows per class."""
        rows = np.asarray(rows, np.int64)
        keep = self.row_has_text[rows].numpy()
        owner = [index_of.get(s, -1) for s in species[rows[keep]]]
        _, sums, counts = zh.group_mean(self.row_text[rows[keep]], owner, n) if len(owner) else \
            (None, torch.zeros(n, self.row_text.shape[1]), torch.zeros(n, dtype=torch.long))
        return sums, counts

    # ---- class embeddings in a model's joint space -------------------------------------------
    def class_embeddings(self, which: str, project_text: ProjectText,
                         device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """Joint-space embeddings of the ``seen`` or ``unseen`` classes (+ what LOO needs)."""
        name_raw, (sums, counts) = ((self.seen_name_raw, self.seen_desc) if which == "seen"
                                    else (self.unseen_name_raw, self.unseen_desc))
        name_raw, sums, counts = (t.to(device) for t in (name_raw, sums, counts))
        name = project_text(name_raw)
        desc = project_text(F.normalize(sums, dim=-1)) if self.text_source != "names" else None
        emb = zh.combine(name, desc, counts, self.text_source, self.text_alpha)
        return {"emb": emb, "name": name, "sums": sums, "counts": counts}

    def own_class_scores(self, img: torch.Tensor, index: torch.Tensor, cls: dict[str, torch.Tensor],
                         project_text: ProjectText):
        """(own class, leave-one-out score) per image for the unseen candidates."""
        own = self.row_unseen_class.to(img.device)[index]
        if not self.leave_one_out or self.text_source == "names":
            return None, None
        own = torch.where(self.row_has_text.to(img.device)[index], own, torch.full_like(own, -1))
        sel = own >= 0
        scores = torch.full((img.shape[0],), float("nan"), device=img.device)
        if sel.any():
            c = own[sel]
            rest = cls["sums"][c] - F.normalize(self.row_text.to(img.device)[index[sel]], dim=-1)
            desc = project_text(F.normalize(rest, dim=-1))
            proto = zh.combine(cls["name"][c], desc, cls["counts"][c] - 1, self.text_source, self.text_alpha)
            scores[sel] = (img[sel] * proto).sum(-1)
        return own, scores
