"""``minbench bench zeroshot``: scoring throughput and memory against thousands of classes.

Random normalised embeddings stand in for the encoders' output (their speed is the
backbone's, measured elsewhere): images arrive in batches and are scored against every
candidate class by ``TopKScorer`` (chunks of classes, running top-k), as the zero-shot
pipeline does. Reports images/s and peak RSS, next to the size the full images x classes
score matrix would have had. ``--text N`` also times the MiniLM text encoder on N class
prompts, cold and from the on-disk cache.
"""

from __future__ import annotations

import resource
import time


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def bench_zeroshot(*, n_classes: int = 5000, n_images: int = 10000, dim: int = 512, batch_size: int = 256,
                   chunk: int = 2048, k: int = 10, threads: int | None = None, text_prompts: int = 0) -> dict:
    """Images/s and peak RSS of scoring ``n_images`` random embeddings against ``n_classes``;
    with ``text_prompts``, also the MiniLM text encoder's speed. The result as a dict."""
    import torch
    import torch.nn.functional as F

    from minbench.errors import UserError
    from minbench.models.zeroshot_head import TopKScorer

    for name, value in (("classes", n_classes), ("images", n_images), ("dim", dim), ("batch", batch_size),
                        ("chunk", chunk), ("k", k)):
        if value < 1:
            raise UserError(f"--{name} must be at least 1")
    if threads:
        torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    classes = F.normalize(torch.randn(n_classes, dim, generator=gen), dim=-1)
    rss_before = _rss_mb()
    scorer = TopKScorer(classes, k=k, chunk=chunk)
    # warm-up (first matmul allocates thread pools)
    scorer.score(F.normalize(torch.randn(min(batch_size, 8), dim, generator=gen), dim=-1))
    t0 = time.perf_counter()
    done, first = 0, None
    while done < n_images:
        b = min(batch_size, n_images - done)
        batch = F.normalize(torch.randn(b, dim, generator=gen), dim=-1)
        first = batch if first is None else first
        scorer.add(batch)
        done += b
    elapsed = time.perf_counter() - t0
    values, indices = scorer.result()
    assert indices.shape == (n_images, min(k, n_classes))
    # The chunked running top-k must equal the top-k of the full score matrix.
    full_values, _ = (first @ scorer.class_emb.T).topk(scorer.k, dim=1)
    agrees = bool(torch.allclose(values[: len(first)], full_values, atol=1e-5))
    result = {
        "benchmark": "zeroshot",
        "classes": n_classes, "images": n_images, "dim": dim, "batch": batch_size,
        "chunk": chunk, "k": k, "torch_threads": torch.get_num_threads(),
        "seconds": round(elapsed, 3),
        "images_per_s": round(n_images / elapsed, 1),
        "peak_rss_mb": round(_rss_mb(), 1),
        "rss_before_scoring_mb": round(rss_before, 1),
        "full_score_matrix_mb": round(n_images * n_classes * 4 / 2**20, 1),
        "chunk_scores_mb": round(min(batch_size, n_images) * min(chunk, n_classes) * 4 / 2**20, 1),
        "chunks_per_batch": -(-n_classes // chunk),
        "top_k_equals_full_matrix": agrees,
    }
    if text_prompts > 0:
        result.update(_text_timing(text_prompts))
        result["peak_rss_mb"] = round(_rss_mb(), 1)
    return result


def _text_timing(n: int) -> dict:
    import tempfile
    from pathlib import Path

    from minbench.models.text_encoders import MiniLMTextEncoder, encode_cached
    from minbench.models.zeroshot_head import DEFAULT_TEMPLATES

    t0 = time.perf_counter()
    enc = MiniLMTextEncoder()
    load_s = time.perf_counter() - t0
    texts = [DEFAULT_TEMPLATES[i % len(DEFAULT_TEMPLATES)].format(f"mineral species {i}") for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        encode_cached(enc, texts, cache=Path(tmp))
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        encode_cached(enc, texts, cache=Path(tmp))
        warm = time.perf_counter() - t0
    return {"text_prompts": n, "text_encoder_load_s": round(load_s, 2),
            "text_prompts_per_s_cold": round(n / cold, 1), "text_cached_load_s": round(warm, 4)}
