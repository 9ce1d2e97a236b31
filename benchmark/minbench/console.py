"""What minbench prints while it works: notices, progress lines, and the frameworks' noise.

One owner for the terminal. Results go to stdout; notices and progress to stderr. The
verbosity is set once per command (``configure``) from ``--quiet`` / ``--verbose``:

- ``quiet``: no notices, no progress (results and errors only);
- ``normal``: one progress line per phase: a live rich line on a terminal, and on a pipe or
  log file a few plain lines (``progress``'s ``marks``; none for a phase done within
  ``QUICK_SECONDS``) so a log stays short; Lightning's
  banners, tips, model summary, the warnings about choices minbench makes on purpose
  (worker counts, logging interval) and third-party deprecation warnings are silenced;
- ``verbose``: the frameworks' own output (Lightning's progress bar, summary, info and
  every warning) comes back.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings

from minbench.dist import is_rank_zero

QUIET, NORMAL, VERBOSE = "quiet", "normal", "verbose"
_ENV = "MINBENCH_VERBOSITY"  # read by DDP processes Lightning starts with the same environment
#: on a pipe, a phase that ends within this many seconds, printed no line yet and has nothing
#: to say beyond its count prints none (a one-batch prediction, a cache of a few images)
QUICK_SECONDS = 2.0

#: warnings about what minbench chose on purpose (message regexes)
DELIBERATE_WARNINGS = (
    r".*does not have many workers.*",                       # cached batches are read in-process
    r".*is smaller than the logging interval.*",             # tiny datasets
    r".*Consider setting `persistent_workers=True`.*",
    r".*GPU available but not used.*",                       # the size estimator runs on the CPU
    r".*TPU available but not used.*",
    r".*`isinstance\(treespec, LeafSpec\)` is deprecated.*",  # Lightning on newer torch
    r".*Checkpoint directory .* exists and is not empty.*",   # --resume continues in place
    r".*The '(train|val|test|predict)_dataloader' does not have many workers.*",
    r".*Trying to infer the `batch_size`.*",
    r".*`LightningModule.configure_optimizers` returned `None`.*",  # training-free baselines
    r".*Total length of .* across ranks is zero.*",             # native-size images come as lists
)


def configure(quiet: bool = False, verbose: bool = False) -> str:
    """Set the verbosity of this process (and the processes it starts); returns it."""
    level = QUIET if quiet else VERBOSE if verbose else NORMAL
    os.environ[_ENV] = level
    if level != VERBOSE:
        silence_frameworks()
    return level


def verbosity() -> str:
    level = os.environ.get(_ENV, NORMAL)
    return level if level in (QUIET, NORMAL, VERBOSE) else NORMAL


def silence_frameworks() -> None:
    """Lightning's info logs (banners, tips, "Restoring states ...") and the warnings
    listed in ``DELIBERATE_WARNINGS``; deprecation warnings raised outside minbench."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in DELIBERATE_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    for category in (DeprecationWarning, FutureWarning, PendingDeprecationWarning):
        warnings.filterwarnings("ignore", category=category, module=r"^(?!minbench)")
    if "lightning" in sys.modules:  # never import it here (build_trainer calls this again)
        from lightning.fabric.utilities.rank_zero import LightningDeprecationWarning

        # Lightning's own deprecation category is a plain Warning subclass
        warnings.filterwarnings("ignore", category=LightningDeprecationWarning)


def shows_notices() -> bool:
    return verbosity() != QUIET and is_rank_zero()


def notice(message: str) -> None:
    """One line to stderr about what minbench is doing (not a result); silent when quiet."""
    if shows_notices():
        print(message, file=sys.stderr, flush=True)


def is_terminal() -> bool:
    return sys.stderr.isatty()


class Phase:
    """One phase's progress: a live rich line on a terminal; on a pipe, a plain line at each
    of ``marks`` evenly spaced points (0 = only the final line, none when the phase finished
    quickly with no ``fields``); nothing when quiet."""

    def __init__(self, description: str, total: float | None, *, marks: int = 0, unit: str = ""):
        self.description, self.total, self.unit = description, total, unit
        self.done = 0.0
        self.fields = ""
        self._started = time.perf_counter()
        self._enabled = shows_notices()
        self._live = None
        self._marks = max(0, int(marks))
        self._next_mark = 1
        self._printed = False
        if self._enabled and is_terminal():
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            self._live = Progress(TextColumn("{task.description}"), BarColumn(bar_width=24),
                                  MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("eta"),
                                  TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                                  console=Console(stderr=True), transient=False)
            self._task = self._live.add_task(description, total=total, info="")
            self._live.start()

    def update(self, done: float, fields: str | None = None) -> None:
        """Set how much is done (``fields``: short text such as ``loss 0.41``)."""
        if not self._enabled:
            return
        self.done = done
        if fields is not None:
            self.fields = fields
        if self._live is not None:
            self._live.update(self._task, completed=done, info=self.fields)
        elif self._marks and self.total:
            crossed = False
            while self._next_mark < self._marks and done >= self.total * self._next_mark / self._marks:
                crossed, self._next_mark = True, self._next_mark + 1
            if crossed and done < self.total:  # one line per step; the end has its own line
                self._print_line()

    def advance(self, n: float = 1, fields: str | None = None) -> None:
        self.update(self.done + n, fields)

    def _print_line(self, final: bool = False, stopped: bool = False) -> None:
        self._printed = True
        total = f"/{self.total:g}" if self.total else ""
        elapsed = time.perf_counter() - self._started
        tail = f" · {self.fields}" if self.fields else ""
        unit = f" {self.unit}" if self.unit else ""
        end = " · stopped" if stopped else " · done" if final else ""
        print(f"{self.description}: {self.done:g}{total}{unit} · {_duration(elapsed)}{tail}{end}",
              file=sys.stderr, flush=True)

    def close(self, stopped: bool = False) -> None:
        """End the phase; ``stopped``: it did not finish (an error or an interrupt follows)."""
        if not self._enabled:
            return
        if self._live is not None:
            self._live.stop()
            self._live = None
        elif stopped or self._printed or self.fields or time.perf_counter() - self._started >= QUICK_SECONDS:
            self._print_line(final=True, stopped=stopped)
        self._enabled = False

    def __enter__(self) -> "Phase":
        return self

    def __exit__(self, *exc) -> None:
        self.close(stopped=exc[0] is not None)


def progress(description: str, total: float | None, *, marks: int = 0, unit: str = "") -> Phase:
    """A ``Phase`` (use as a context manager)."""
    return Phase(description, total, marks=marks, unit=unit)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"
