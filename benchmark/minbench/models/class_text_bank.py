"""The class texts of a zero-shot task and their text features (no Lightning, nothing trained).

``ClassTextBank.build(context, encoder)`` reads a ``minbench.data.context.TaskContext``:
the manifest rows of the train/val/test splits, the seen (training) classes and the
class-level texts (``context.class_texts``). Candidates are the task card's classes (the
zero-shot set's species, a public input the data module hands over as
``TaskContext.candidates``) or a user list. It embeds, once, with a frozen text encoder (cached on disk):

- class texts per class, seen and unseen alike, from class-level text only: the name in
  prompt templates (ensembled) and/or the class description the dataset gives
  (``text_source``). Nothing of a sample reaches them: a test image's own description
  never describes its class, and no aggregate of test descriptions names a class (the
  protocol rule, ``tests/test_zeroshot_protocol.py``);
- when training asks for it, the descriptions of the TRAIN rows (training data of the
  seen classes; never a validation or test row's).

A model turns them into class embeddings in its joint space with its own text projection
(``class_embeddings(which, project_text)``).
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from minbench.errors import UserError
from minbench.models import zeroshot_head as zh

ProjectText = Callable[[torch.Tensor], torch.Tensor]


class ClassTextBank:
    """Texts and raw text features of the seen and unseen classes of one data split.

    Args:
        text_source: class text from ``names`` (templates x names), ``class_text`` (the
            dataset's class description; the name where a class has none) or ``both``
            (mixed by ``text_alpha``); see ``zeroshot_head.TEXT_SOURCES``.
        text_alpha: weight of the class description in ``both``.
        templates: prompt templates (each with one ``{}``).
        user_classes: candidate classes and prompt names from the user, else the test species.
    """

    def __init__(self, *, text_source: str, text_alpha: float, templates: Sequence[str],
                 user_classes: zh.ClassNames | None = None) -> None:
        self.text_source = zh.check_text_source(text_source)
        self.text_alpha = float(text_alpha)
        self.templates = list(templates)
        self.user_classes = user_classes
        self.seen_classes: list[str] = []
        self.unseen: zh.ClassNames | None = None
        self.built = False

    def build(self, context, encoder, *, needs_row_text: bool = False, needs_seen_names: bool = False) -> None:
        """Read rows, classes and class texts from a ``TaskContext``; embed every text once.

        Seen classes are ``context.classes`` (the training species); unseen candidates are
        ``context.candidates`` (the zero-shot set's species, public by the card), or the
        user's class list (each a species of the dataset: a training class or a candidate). ``needs_row_text``: whether
        training reads the train rows' descriptions; ``needs_seen_names``: whether the seen
        classes' name prompts are needed whatever the text source.
        """
        from minbench.models.text_encoders import encode_cached

        self.resolve(context)
        seen, cand, test_species = self.seen_classes, self.unseen, list(context.candidates)
        frame = context.frame
        pos = {name: context.split_positions(name) for name in ("train", "val", "test")}
        # a training row's species (the sealed frame blanks every other row's)
        species = frame["species"].to_numpy()
        enc = encoder

        # Descriptions of the TRAIN rows only (training data; "" = none), and only when
        # training reads them: validation rows are held-out queries, test rows are never read.
        train = pos["train"]
        desc = frame["description"].to_numpy()[train].astype(str) if len(train) else np.array([], str)
        has = np.char.str_len(np.char.strip(desc)) > 0 if len(desc) else np.zeros(0, bool)
        if not needs_row_text:
            has[:] = False
        self.row_text = torch.zeros(len(frame), enc.dim)
        if has.any():
            self.row_text[train[has]] = encode_cached(enc, desc[has].tolist())
        self.row_has_text = torch.zeros(len(frame), dtype=torch.bool)
        self.row_has_text[train[has]] = True
        self.zeroshot_rows = torch.zeros(len(frame), dtype=torch.bool)
        self.zeroshot_rows[np.isin(species, test_species)] = True
        self.zeroshot_rows[pos["test"]] = True
        label_of = {c: i for i, c in enumerate(seen)}
        self.train_labels = torch.full((len(frame),), -1, dtype=torch.long)
        self.train_labels[train] = torch.as_tensor([label_of[s] for s in species[train]], dtype=torch.long)

        # Class-level texts: the dataset's class descriptions, then name prompts where the
        # source takes names or a class has no description (the encoder is the slow part).
        texts = dict(context.class_texts or {})
        seen_names = zh.ClassNames(tuple(seen), tuple((c,) for c in seen))
        self.seen_text_raw, self.seen_has_text = self._class_text_features(enc, seen, texts)
        self.unseen_text_raw, self.unseen_has_text = self._class_text_features(enc, cand.classes, texts)
        self.seen_name_raw = self._name_features(
            enc, seen_names, None if needs_seen_names else self._needs_names(self.seen_has_text))
        self.unseen_name_raw = self._name_features(enc, cand, self._needs_names(self.unseen_has_text))
        self.built = True

    def resolve(self, context) -> None:
        """The classes alone, no text embedded: ``seen_classes`` (``context.classes``) and the
        candidates ``unseen`` (``context.candidates``, or the user's list), which must not
        include a training class."""
        # the data module works the candidates out from the whole manifest (public by the card)
        test_species = list(context.candidates)
        known = sorted(set(context.classes) | set(test_species))
        cand = zh.resolve_candidates(test_species, known, self.user_classes)
        seen = list(context.classes)
        clash = sorted(set(seen) & set(cand.classes))
        if clash:
            raise UserError(f"candidate class {clash[0]!r} is also a training class: zero-shot candidates "
                            "must be classes the model never trained on")
        self.seen_classes, self.unseen = seen, cand

    def _needs_names(self, has_text: torch.Tensor):
        """Which classes need name prompts (None = all)."""
        return None if self.text_source != "class_text" else ~has_text

    def _class_text_features(self, enc, classes: Sequence[str], texts: Mapping[str, str]):
        """Raw features of each class's class-level text, and which classes have one."""
        from minbench.models.text_encoders import encode_cached

        has = torch.zeros(len(classes), dtype=torch.bool)
        out = torch.zeros(len(classes), enc.dim)
        if self.text_source == "names":
            return out, has
        pick = [i for i, c in enumerate(classes) if texts.get(c)]
        if pick:
            out[pick] = encode_cached(enc, [texts[classes[i]] for i in pick])
            has[pick] = True
        return out, has

    def _name_features(self, enc, names: zh.ClassNames, need=None) -> torch.Tensor:
        """Ensembled name-prompt features per class (zeros where ``need`` is False)."""
        from minbench.models.text_encoders import encode_cached

        n = len(names.classes)
        pick = range(n) if need is None else [i for i in range(n) if bool(need[i])]
        out = torch.zeros(n, enc.dim)
        if not pick:
            return out
        sub = zh.ClassNames(tuple(names.classes[i] for i in pick), tuple(names.prompt_names[i] for i in pick))
        prompts, owner = zh.name_prompts(sub, self.templates)
        mean, _, _ = zh.group_mean(encode_cached(enc, prompts), owner, len(pick))
        out[list(pick)] = mean
        return out

    # ---- class embeddings in a model's joint space -------------------------------------------
    def class_embeddings(self, which: str, project_text: ProjectText,
                         device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """Joint-space embeddings (``emb``) of the ``seen`` or ``unseen`` classes, from
        class-level text only."""
        if which not in ("seen", "unseen"):
            raise ValueError(f"which={which!r}: 'seen' or 'unseen'")
        name_raw, text_raw, has = ((self.seen_name_raw, self.seen_text_raw, self.seen_has_text) if which == "seen"
                                   else (self.unseen_name_raw, self.unseen_text_raw, self.unseen_has_text))
        name_raw, text_raw, has = (t.to(device) for t in (name_raw, text_raw, has))
        name = project_text(name_raw)
        text = project_text(text_raw) if self.text_source != "names" else None
        return {"emb": zh.combine(name, text, has, self.text_source, self.text_alpha)}
