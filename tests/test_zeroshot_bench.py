"""``minbench bench zeroshot`` runs and reports (speed itself is never asserted)."""

from __future__ import annotations

import json

from minbench.cli import main


def test_bench_zeroshot_writes_its_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = main(["bench", "zeroshot", "--classes", "300", "--images", "200", "--dim", "32", "--batch", "64",
               "--chunk", "128", "--json", str(out)])
    assert rc == 0
    result = json.loads(out.read_text())
    assert result["benchmark"] == "zeroshot" and result["images"] == 200 and result["classes"] == 300
    assert result["images_per_s"] > 0 and result["peak_rss_mb"] > 0
    # 300 classes in chunks of 128: the running top-k crosses chunks and must equal the full matrix's
    assert result["chunks_per_batch"] == 3 and result["top_k_equals_full_matrix"] is True
    assert json.loads(capsys.readouterr().out)["classes"] == 300


def test_bench_zeroshot_refuses_nonsense(capsys):
    assert main(["bench", "zeroshot", "--classes", "0"]) != 0
    assert "--classes must be at least 1" in capsys.readouterr().err
