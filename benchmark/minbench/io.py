"""Atomic writes and inter-process locks, so that nothing is ever half-written."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from minbench.errors import UserError

# A write that fails with one of these is the user's to fix (a full disk, a read-only or
# forbidden folder), not a bug: it becomes a one-line UserError naming the folder.
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS})


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    The temporary sits in the same folder so the final ``os.replace`` is atomic. On
    an exception the temporary is removed and ``target`` is left as it was. Works for
    files and for folders (a folder target is replaced whole).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # the pid in the name lets a later writer tell a killed writer's leftovers from a live one's
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()
    try:
        yield tmp
        if tmp.is_dir() and target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def leftovers_of(target: str | os.PathLike, *, all_writers: bool = False) -> list[Path]:
    """What interrupted ``atomic_path`` writes of ``target`` left beside it (temporaries and
    replaced copies) by processes no longer running; by every process with ``all_writers``
    (for a caller that holds ``target``'s lock, so no writer can be live)."""
    target = Path(target)
    found = []
    for path in [*target.parent.glob(f".{target.name}.*.tmp"), *target.parent.glob(f".{target.name}.old-*")]:
        middle = path.name[len(target.name) + 2:]
        pid = middle[4:] if middle.startswith("old-") else middle.split(".", 1)[0]
        if all_writers or (pid.isdigit() and not _running(int(pid))):
            found.append(path)
    return found


def remove_paths(paths: list[Path]) -> None:
    """Delete files and folders (a symlink itself, never what it points to)."""
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, another user's
        return True
    return True


def write_bytes_atomic(target: str | os.PathLike, data: bytes) -> None:
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def write_text_atomic(target: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(target, text.encode("utf-8"))


def write_json_atomic(target: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(target, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


@contextlib.contextmanager
def file_lock(lock_path: str | os.PathLike) -> Iterator[None]:
    """Exclusive advisory lock across processes (blocks until acquired)."""
    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def storage_error(exc: BaseException, folder: str | os.PathLike, what: str, hint: str = "") -> UserError | None:
    """The one-line ``UserError`` for a write into ``folder`` that failed because the disk is
    full or the folder is read-only or forbidden; None for any other error (a bug: keep it).
    ``hint`` says where else to write (e.g. "choose another folder with --out")."""
    if not isinstance(exc, OSError) or exc.errno not in STORAGE_ERRNOS:
        return None
    reason = os.strerror(exc.errno)
    if exc.filename and not _inside(exc.filename, folder):  # e.g. a parent that could not be made
        reason += f": {exc.filename}"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        hint = "free some space" + (f", or {hint}" if hint else "")
    return UserError(f"{folder}: cannot write {what} there ({reason})" + (f"; {hint}" if hint else ""))


def _inside(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    try:
        return Path(os.path.abspath(path)).is_relative_to(os.path.abspath(folder))
    except (TypeError, ValueError):
        return False


@contextlib.contextmanager
def storage_errors(folder: str | os.PathLike, what: str, hint: str = "") -> Iterator[None]:
    """Turn a full disk or a read-only/forbidden folder met inside the block into a one-line
    ``UserError`` naming ``folder`` (see :func:`storage_error`); other errors pass unchanged.
    Put it outside an :func:`atomic_path` so the temporary is removed first."""
    try:
        yield
    except OSError as exc:
        err = storage_error(exc, folder, what, hint)
        if err is None:
            raise
        raise err from None


def ensure_writable(folder: str | os.PathLike, what: str, hint: str = "") -> Path:
    """Create ``folder`` (and its parents) and prove a file can be made in it, before any slow
    work; a one-line ``UserError`` naming the folder when it is read-only, forbidden or full."""
    folder = Path(folder)
    with storage_errors(folder, what, hint):
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".minbench-probe.", suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(probe)
    return folder


def read_json(path: str | os.PathLike, what: str = "", *, missing: Any = ..., no_duplicate_keys: bool = False) -> Any:
    """Read a JSON file; a missing, unreadable or malformed one is a one-line ``UserError``
    naming the file (``what`` says what it is, e.g. ``"task card"``).

    ``missing``: returned instead of an error when the file does not exist.
    ``no_duplicate_keys``: a key given twice in one object is an error, not a silent overwrite.
    """
    text = read_text(path, what, missing=missing)
    if text is _MISSING:
        return missing
    hook = _no_duplicate_keys(path) if no_duplicate_keys else None
    try:
        return json.loads(text, object_pairs_hook=hook)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None


def read_yaml(path: str | os.PathLike, what: str = "", *, missing: Any = ...) -> Any:
    """Read a YAML file (``yaml.safe_load``); errors as ``read_json``'s."""
    import yaml

    text = read_text(path, what, missing=missing)
    if text is _MISSING:
        return missing
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None


def read_config_file(path: str | os.PathLike, what: str = "") -> Any:
    """A ``.json`` file by ``read_json`` (duplicate keys refused), anything else by ``read_yaml``."""
    if Path(path).suffix.lower() == ".json":
        return read_json(path, what, no_duplicate_keys=True)
    return read_yaml(path, what)


_MISSING = object()


def read_text(path: str | os.PathLike, what: str = "", *, missing: Any = ...) -> Any:
    """A UTF-8 text file (a byte-order mark is dropped); errors as ``read_json``'s."""
    label = f"{what} " if what else ""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        if missing is not ...:
            return _MISSING
        raise UserError(f"{path}: {label}not found") from None
    except IsADirectoryError:
        raise UserError(f"{path}: {label}is a folder, not a file") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: {label}is not UTF-8 text") from None
    except OSError as exc:
        raise UserError(f"{path}: {label}cannot be read ({exc.strerror or exc})") from None


def _no_duplicate_keys(path):
    def hook(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise UserError(f"{path}: key {key!r} appears more than once")
            seen.add(key)
        return dict(pairs)

    return hook
