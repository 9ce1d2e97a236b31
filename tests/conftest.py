"""Shared test set-up: offline, quiet, tiny.

The environment is fixed before anything imports albumentations, timm or wandb: no
update checks, no hub requests, no wandb network.
"""

from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Each test sees its own empty minbench cache and leaderboards, never the user's."""
    monkeypatch.setenv("MINBENCH_HOME", str(tmp_path_factory.mktemp("minbench_home")))
    # Runs and scorers add leaderboard entries; tests must never write the repo's boards.
    monkeypatch.setenv("MINBENCH_LEADERBOARDS", str(tmp_path_factory.mktemp("leaderboards")))


@pytest.fixture
def leaderboards(tmp_path, monkeypatch):
    """This test's own leaderboard folder, to look into (created by whatever writes first)."""
    folder = tmp_path / "leaderboards"
    monkeypatch.setenv("MINBENCH_LEADERBOARDS", str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """The embedded dataset at ``--size tiny`` (a few dozen small images), made once."""
    from minbench.data.synth import generate

    out = tmp_path_factory.mktemp("synth_tiny")
    generate(out, seed=0, size="tiny", workers=1, progress=False)
    return out
