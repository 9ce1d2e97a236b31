"""Reference baselines of the segmentation task: masks without any classifier, scored.

Each of ``minbench.models.saliency_baselines.SALIENCY_BASELINES`` (``centre``, ``colour``,
``border``, ``blob``, and any baseline registered there) writes a mask per image under
``baselines/<name>/`` with its continuous score map (``maps/``, 16-bit), which the scorer
scores (and the leaderboard records as reference rows, when enabled); ``compare`` says
plainly when the CAM does not beat one of them by the paired interval.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from minbench.pipelines.context import SeedContext

BASELINES_DIR = "baselines"


def load_photo(path: Path):
    """An image file as upright RGB uint8 (``data.decode``'s reader); None when it cannot be decoded."""
    from minbench.data.decode import BadImage, load_rgb

    try:
        return load_rgb(path)[0]
    except BadImage:
        return None


def run_baselines(ctx: SeedContext, task_data) -> dict[str, dict[str, Any]]:
    """Write and score every reference baseline; leaderboard entries when enabled."""
    import numpy as np

    from minbench.models.saliency_baselines import SALIENCY_BASELINES
    from minbench.scoring.record import score_and_record
    from minbench.scoring.formats.mask_pngs import write_mask_folder

    rows = task_data.rows
    images = {}  # decoded once, shared by the baselines (the segmentation set is small)
    for r in rows.itertuples(index=False):
        images[r.sample_id] = load_photo(Path(ctx.data_dir) / r.image_path)
    def answer(fn, r) -> tuple:
        """(sample_id, mask, score map): the baseline's, or empty ones for an undecodable photo."""
        image = images[r.sample_id]
        if image is None:
            empty = np.zeros((int(r.height), int(r.width)), np.uint16)
            return r.sample_id, empty, empty
        score, mask = fn(image)
        return r.sample_id, mask, score

    results = {}
    for name, fn in SALIENCY_BASELINES.items():
        description = SALIENCY_BASELINES.info(name)["description"]
        folder = ctx.dir / BASELINES_DIR / name
        write_mask_folder(folder, (answer(fn, r) for r in rows.itertuples(index=False)))
        entry = dict(name=f"baseline/{name}", method=f"reference baseline: {description}",
                     config={"baseline": name}, seed=None, role="reference") if ctx.leaderboard else None
        res, _ = score_and_record(ctx.card.id, folder, ctx.data_dir, folder.with_name(f"{name}.score.json"),
                                  task_data=task_data, entry=entry)
        results[name] = {"metrics": {k: float(v) for k, v in res.metrics.items()}, "ci": res.ci,
                         "description": description, "per_sample": res.per_sample, "table": res.table}
    return results


def compare(cam: str, cam_table, baselines: dict[str, dict], card) -> list[str]:
    """One line per baseline: does the CAM beat it on the card's headline? By the paired
    bootstrap interval of the difference (``scoring.stats.paired_difference``, the same
    resampled images for both): it beats a baseline only when the whole interval is on the
    better side; a point estimate ahead with an interval across zero is no win."""
    from minbench.scoring import metrics as M
    from minbench.scoring.stats import paired_difference

    spec = card.headline_metric
    ours = M.evaluate(card, cam_table)[spec.name]
    lines = []
    for name, res in baselines.items():
        theirs = res["metrics"].get(spec.name, float("nan"))
        diff, ci = paired_difference(spec, [cam_table], [res["table"]])
        # one terminal line each (the metric is named in the table's caption above them)
        text = f"{ours:.3f} vs {theirs:.3f}, {diff:+.3f} [{ci.low:+.3f}, {ci.high:+.3f}]"
        wins = (ci.low > 0) if spec.higher_is_better else (ci.high < 0)
        lines.append(f"{cam} {'beats' if wins else 'does NOT beat'} {name}: {text}")
    return lines


def print_comparison(ctx: SeedContext, cam: str, metrics, cam_result, baselines, verdicts) -> None:
    import numpy as np
    from rich import box
    from rich.console import Console
    from rich.table import Table

    headline = ctx.card.headline
    names = [s.name for s in ctx.card.metrics]
    n_images = len(next(iter(baselines.values()))["per_sample"])
    level = next(iter(cam_result.get("ci", {}).values()), {}).get("level", 0.95)
    # one 80-column line per row: a borderless table, the interval in a column of its own
    table = Table(title=f"segmentation · CAM: {cam} · seed {ctx.seed} · {n_images} test images", box=box.SIMPLE_HEAD,
                  show_edge=False, pad_edge=False,
                  caption=f"verdicts: the paired {level:.0%} interval of {headline}(CAM) − {headline}(baseline)")
    table.add_column("method", no_wrap=True)
    for n in names:
        table.add_column(n, justify="right", no_wrap=True)
        if n == headline:
            table.add_column(f"{level:.0%} CI", justify="right", no_wrap=True)

    def row(label, m, ci):
        cells = []
        for n in names:
            value = m.get(n)
            cells.append(f"{value:.3f}" if value is not None and np.isfinite(value) else "—")  # e.g. pxap without maps
            if n == headline:
                cells.append(f"{ci[n]['low']:.3f}–{ci[n]['high']:.3f}" if ci.get(n) else "")
        table.add_row(label, *cells)

    row("CAM", metrics, cam_result.get("ci", {}))  # named in the title: any name keeps the row on one line
    for name, res in baselines.items():
        row(f"baseline {name}", res["metrics"], res["ci"])
    console = Console()
    console.print(table)
    for line in verdicts:
        console.print(("[green]" if " beats " in line else "[bold red]") + line)
