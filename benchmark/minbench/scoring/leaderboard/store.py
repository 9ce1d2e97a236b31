"""Reading boards and changing them safely.

Writers take ``minbench.io.file_lock`` on the board, re-read it under the lock and replace
it atomically, per-sample files first under new names: two scorers at once both land, and a
failure leaves the board and its files as they were.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from minbench.cards import TaskCard
from minbench.errors import UserError
from minbench.io import file_lock, read_json, write_bytes_atomic, write_json_atomic
from minbench.scoring.leaderboard.intervals import entry_ci
from minbench.scoring.leaderboard.paths import board_filename, read_dirs, samples_folder
from minbench.scoring.leaderboard.schema import describe_dataset, same_dataset, validate_board

#: ``update(board) -> (board, write, drop)``: the changed board, per-sample files to write
#: first (name relative to the board's folder -> bytes) and files to delete once it is written
Update = Callable[[dict], tuple[dict, dict[str, bytes], list[str]]]


def load_board(path: str | Path) -> dict:
    """Read and validate one board file."""
    path = Path(path)
    board = read_json(path, "leaderboard")
    return validate_board(board, where=str(path))


def load_boards(dirs: list[Path] | None = None) -> list[tuple[Path, dict]]:
    """Every board (``*.json``) in ``dirs`` (default: ``read_dirs()``), validated."""
    out = []
    for d in dirs if dirs is not None else read_dirs():
        if not d.is_dir():
            continue
        for path in sorted(d.glob("*.json")):
            out.append((path, load_board(path)))
    return out


def entry_samples(board_path: Path, entry: dict):
    """The entry's per-sample results (``samples.Samples``); ``SamplesError`` when it has
    none, or the file is missing, truncated or does not fit."""
    from minbench.scoring.samples import SamplesError, read

    info = entry.get("samples")
    if not info:
        raise SamplesError(f"{entry['name']}: no per-sample results recorded (scored before they were kept)")
    s = read(Path(board_path).parent / info["file"], sha=info.get("sha256"), n=entry.get("n_samples"))
    missing = [x for x in info["seeds"] if x not in s.seeds]
    if missing:
        raise SamplesError(f"{info['file']}: lacks seeds {missing} of entry {entry['name']}")
    return s.select(info["seeds"])


def attach_samples(target: Path, entry: dict, new_samples, old: dict | None, joined: bool,
                   card: TaskCard, ci: dict) -> tuple[dict[str, bytes], list[str]]:
    """Give ``entry`` (on the board at ``target``) its per-sample file: ``new_samples``, plus
    those of ``old`` when the entry ``joined`` it (seeds of one method); its intervals then
    pool the seeds (``ci``: the scorer's interval settings). Returns ``(write, drop)`` for
    ``locked_update``; ``old``'s file is dropped either way."""
    from minbench.scoring import samples as S

    drop = [old["samples"]["file"]] if old and old.get("samples") else []
    if new_samples is None:
        return {}, drop
    combined = new_samples
    if joined and old.get("samples"):
        try:
            combined = S.merge(entry_samples(target, old), new_samples)
        except S.SamplesError:
            pass  # unreadable: keep the per-sample results of the new seed only
    data = S.to_bytes(combined)
    sha = S.sha256(data)
    rel = f"{samples_folder(target).name}/{entry['id']}-{sha[7:15]}.npz"
    entry["samples"] = {"file": rel, "sha256": sha, "seeds": combined.seeds}
    entry["ci"] = entry_ci(card, ci, combined)
    return {rel: data}, drop


def _check_fits(path: Path, board: dict, fresh: dict) -> None:
    if board.get("reference") != fresh.get("reference") or board.get("task") != fresh.get("task"):
        raise UserError(f"{path}: a board for {board.get('task') or 'reference ' + str(board.get('kind'))}, "
                        f"not for {fresh.get('task') or 'reference ' + str(fresh.get('kind'))}")
    if not same_dataset(board["dataset"], fresh["dataset"]):
        raise UserError(f"{path}: holds results on {describe_dataset(board['dataset'])}; this one is on "
                        f"{describe_dataset(fresh['dataset'])}. Results on different datasets never share a "
                        f"leaderboard (its own file: {board_filename(fresh.get('task'), fresh['dataset'], fresh['reference'])})")


def _floor_metrics(floors: list[dict] | None) -> set[str]:
    return {k for f in floors or [] for k in f["metrics"]}


def locked_update(path: Path, fresh: dict, update: Update) -> Path:
    """Re-read the board at ``path`` (or ``fresh``) under its lock, let ``update`` change it
    (see ``Update``), and replace it atomically; a failure removes the per-sample files
    written and leaves the board as it was."""
    path = Path(path)
    with file_lock(path.with_name(f".{path.name}.lock")):
        board = load_board(path) if path.exists() else fresh
        _check_fits(path, board, fresh)
        # boards grow their metric list: a reference board's with its entries, a scored
        # board's when a new version of its card adds metrics (older entries show none)
        known = {m["name"] for m in board["metrics"]}
        board["metrics"] += [m for m in fresh["metrics"] if m["name"] not in known]
        if board["reference"]:
            board["headline"] = board["headline"] or fresh["headline"]
        if fresh.get("floors") and not _floor_metrics(fresh["floors"]) <= _floor_metrics(board.get("floors")):
            board["floors"] = fresh["floors"]
        board, write, drop = update(board)
        validate_board(board, where=str(path))
        written = []
        try:
            for rel, data in write.items():
                write_bytes_atomic(path.parent / rel, data)
                written.append(path.parent / rel)
            write_json_atomic(path, board)
        except BaseException:
            for f in written:
                f.unlink(missing_ok=True)
            raise
        for rel in drop:
            if rel not in write:
                (path.parent / rel).unlink(missing_ok=True)
    return path


def replace_entry(board: dict, entry: dict) -> tuple[dict, list[str]]:
    """``board`` with ``entry`` in place of any entry of its name (appended last), and the
    per-sample files of the entries it replaced."""
    old = [e for e in board["entries"] if e["name"] == entry["name"]]
    entries = [e for e in board["entries"] if e["name"] != entry["name"]] + [entry]
    return {**board, "entries": entries}, [e["samples"]["file"] for e in old if e.get("samples")]


def locked_add(path: Path, fresh: dict, entry: dict) -> Path:
    """Add ``entry`` to the board at ``path`` (made from ``fresh`` when absent); an entry of
    the same name is replaced."""
    validate_board({**fresh, "entries": [entry]}, where=f"{path} (new entry)")

    def update(board):
        board, drop = replace_entry(board, entry)
        return board, {}, drop

    return locked_update(path, fresh, update)
