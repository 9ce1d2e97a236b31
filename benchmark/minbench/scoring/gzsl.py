"""Generalised zero-shot (GZSL) figures: every seen and unseen class is a candidate.

Xian et al.'s protocol: ``seen`` / ``unseen`` are mean per-class top-1 accuracies
(``metrics.per_class_mean``) on held-out images of the seen classes and on the zero-shot
images, ``h`` their harmonic mean. No calibration: a seen-class bias shows as a low
``unseen`` (``unseen_as_seen``). Calibrated stacking (Chao et al. 2016) subtracts a
constant gamma from every seen score; ``ausuc`` is the area under the seen-unseen
accuracy curve over all gamma, which needs no choice of gamma.

Each image is described by its best seen and best unseen candidate: an image goes to the
seen side when its best seen score is at least its best unseen score.
"""

from __future__ import annotations

import numpy as np

from minbench.scoring.metrics import per_class_mean


def gzsl_scores(*, seen_label, seen_best_seen, seen_best_seen_index, seen_best_unseen,
                unseen_label, unseen_best_unseen, unseen_best_unseen_index, unseen_best_seen) -> dict[str, float]:
    """The GZSL figures from per-image best scores.

    Seen images (held out from the seen classes): ``seen_label`` = true seen-class index,
    ``seen_best_seen`` / ``seen_best_seen_index`` = best seen score and its class,
    ``seen_best_unseen`` = best unseen score. Zero-shot images: ``unseen_label`` = true
    candidate index (-1 when not a candidate), ``unseen_best_unseen`` /
    ``unseen_best_unseen_index`` = best unseen score and its candidate,
    ``unseen_best_seen`` = best seen score.
    """
    # scores keep their dtype: differences are taken in the model's precision
    s_label, s_best, s_unseen = (np.asarray(a) for a in (seen_label, seen_best_seen, seen_best_unseen))
    u_label, u_best, u_seen = (np.asarray(a) for a in (unseen_label, unseen_best_unseen, unseen_best_seen))
    s_right = np.asarray(seen_best_seen_index) == s_label
    u_right = np.asarray(unseen_best_unseen_index) == u_label
    # seen images: right when the best seen class wins and is their class
    s_ok = (s_best >= s_unseen) & s_right
    # unseen images: right when the best unseen class wins and is theirs
    u_win = u_best > u_seen
    u_ok = u_win & u_right
    s_acc, u_acc = per_class_mean(s_ok, s_label), per_class_mean(u_ok, u_label)
    h = 2 * s_acc * u_acc / (s_acc + u_acc) if (s_acc + u_acc) > 0 else 0.0
    curve = seen_unseen_curve(s_best - s_unseen, s_right, s_label, u_seen - u_best, u_right, u_label)
    return {
        "seen": s_acc, "unseen": u_acc, "h": h,
        "ausuc": curve["ausuc"], "h_best_gamma_oracle": curve["best_h"], "best_gamma_oracle": curve["best_gamma"],
        "seen_per_sample": float(s_ok.mean()), "unseen_per_sample": float(u_ok.mean()),
        "unseen_as_seen": float((~u_win).mean()),
        "seen_as_unseen": float((s_best < s_unseen).mean()),
        "n_seen_images": int(len(s_ok)), "n_unseen_images": int(len(u_ok)),
    }


def seen_unseen_curve(d_seen, ok_seen, label_seen, d_unseen, ok_unseen, label_unseen) -> dict[str, float]:
    """Calibrated stacking swept over gamma (Chao et al. 2016, AUSUC).

    ``d`` = best seen score - best unseen score per image; an image goes to the seen side
    when ``d >= gamma``. ``ok_*``: its best class on its own side is right. Accuracies are
    mean per class. Returns the area under (unseen acc, seen acc), the best harmonic mean
    and its gamma.
    """
    d_seen, d_unseen = np.asarray(d_seen, float), np.asarray(d_unseen, float)
    w_s = _class_weights(label_seen) * np.asarray(ok_seen, float)
    w_u = _class_weights(label_unseen) * np.asarray(ok_unseen, float)
    gammas = np.unique(np.concatenate([d_seen, d_unseen, [-np.inf, np.inf]]))
    # seen acc(gamma) = sum of w_s where d_seen >= gamma; unseen acc = sum of w_u where d_unseen < gamma
    order_s = np.argsort(d_seen)
    cum_s = np.concatenate([[0.0], np.cumsum(w_s[order_s])])
    acc_s = cum_s[-1] - cum_s[np.searchsorted(d_seen[order_s], gammas, side="left")]
    order_u = np.argsort(d_unseen)
    cum_u = np.concatenate([[0.0], np.cumsum(w_u[order_u])])
    acc_u = cum_u[np.searchsorted(d_unseen[order_u], gammas, side="left")]
    with np.errstate(invalid="ignore", divide="ignore"):
        hs = np.where(acc_s + acc_u > 0, 2 * acc_s * acc_u / (acc_s + acc_u), 0.0)
    best = int(np.argmax(hs))
    area = float(np.sum(np.diff(acc_u) * (acc_s[1:] + acc_s[:-1]) / 2))  # acc_u rises with gamma
    return {"ausuc": area, "best_h": float(hs[best]), "best_gamma": float(gammas[best])}


def _class_weights(label) -> np.ndarray:
    """1 / (samples of its class x number of classes) per sample: sums give per-class means."""
    label = np.asarray(label)
    if not len(label):
        return np.zeros(0)
    classes, inverse, counts = np.unique(label, return_inverse=True, return_counts=True)
    return 1.0 / (counts[inverse] * len(classes))
