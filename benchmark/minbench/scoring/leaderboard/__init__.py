"""Leaderboard files: one JSON file per task and dataset (schema: ``leaderboards/SCHEMA.md``).

A board holds the dataset it was scored on (name, version, manifest fingerprint) and its
entries; an entry scored on another fingerprint goes to that dataset's own file, never into
this one. New entries go to the user's folder (``default_leaderboard_dir``), never the
shipped boards. An entry is one method: a run's seeds join the entry of its recipe and
config, and its per-sample results are kept beside the board (``scoring/samples.py``) for
paired comparisons and rank groups (``scoring/compare.py``). An entry's ``role`` (``ROLES``)
says whether it is a method or a reference baseline (a recipe's ``role: reference``): both
are ranked and compared alike; the boards label reference rows.

Three kinds of board:

- scored (``dataset.fingerprint`` set): entries from ``minbench score`` (source
  ``submission``) and from runs (source ``run``), ranked on the task's headline;
- published (``fingerprint`` null): numbers copied from a paper for a minbench task, on
  the paper's copy of the data; ranked among themselves, never against scored boards;
- reference (``reference: true``, ``task`` null): published numbers of another dataset
  and protocol (e.g. MineralNet's Mindat photos), shown beside the tasks of the same
  ``kind``, never ranked.

The modules, bottom up: ``paths`` (where boards live, file names, shipped or yours),
``schema`` (new boards and entries, validation, migration of older schemas), ``intervals``
(an entry's intervals pooled over its seeds), ``store`` (reading, the locked atomic
read-modify-write, per-sample files), ``merge`` (``merge_entry``: where one scored run or
submission goes, a pure function), ``scored`` (``add_entry``) and ``published``
(``add_published``, ``publish``).
"""

from minbench.scoring.leaderboard.merge import EntryRecord, entry_name, merge_entry
from minbench.scoring.leaderboard.paths import (ENV_DIR, board_filename, default_leaderboard_dir, is_shipped,
                                                read_dirs, samples_folder, shipped_board_dir)
from minbench.scoring.leaderboard.published import add_published, parse_metrics, publish
from minbench.scoring.leaderboard.schema import (OLD_SCHEMAS, ROLES, SCHEMA_ID, SOURCES, describe_dataset,
                                                 metric_columns, migrate, new_board, new_entry, validate_board)
from minbench.scoring.leaderboard.scored import add_entry, record_of
from minbench.scoring.leaderboard.store import entry_samples, load_board, load_boards

__all__ = ["ENV_DIR", "EntryRecord", "OLD_SCHEMAS", "ROLES", "SCHEMA_ID", "SOURCES", "add_entry", "add_published",
           "board_filename", "default_leaderboard_dir", "describe_dataset", "entry_name", "entry_samples",
           "is_shipped", "load_board", "load_boards", "merge_entry", "metric_columns", "migrate", "new_board",
           "new_entry", "parse_metrics", "publish", "read_dirs", "record_of", "samples_folder",
           "shipped_board_dir", "validate_board"]
