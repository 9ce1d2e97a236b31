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

from minbench.bench import add_json_argument, report


def register(sub) -> None:
    p = sub.add_parser("zeroshot", help="zero-shot scoring: images/s and peak memory vs many classes")
    p.add_argument("--classes", type=int, default=5000, help="candidate classes (default 5000)")
    p.add_argument("--images", type=int, default=10000, help="images to score (default 10000)")
    p.add_argument("--dim", type=int, default=512, help="embedding size (CLIP ViT-B/32: 512)")
    p.add_argument("--batch", type=int, default=256, help="images per batch")
    p.add_argument("--chunk", type=int, default=2048, help="classes per scoring chunk")
    p.add_argument("--k", type=int, default=10, help="ranks kept per image")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--text", type=int, default=0,
                   help="also time MiniLM on this many class prompts (cold, then cached)")
    add_json_argument(p)
    p.set_defaults(func=_run)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _run(args) -> int:
    import torch
    import torch.nn.functional as F

    from minbench.errors import UserError
    from minbench.models.zeroshot_head import TopKScorer

    for name in ("classes", "images", "dim", "batch", "chunk", "k"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name} must be at least 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    classes = F.normalize(torch.randn(args.classes, args.dim, generator=gen), dim=-1)
    rss_before = _rss_mb()
    scorer = TopKScorer(classes, k=args.k, chunk=args.chunk)
    # warm-up (first matmul allocates thread pools)
    scorer.score(F.normalize(torch.randn(min(args.batch, 8), args.dim, generator=gen), dim=-1))
    t0 = time.perf_counter()
    done, first = 0, None
    while done < args.images:
        b = min(args.batch, args.images - done)
        batch = F.normalize(torch.randn(b, args.dim, generator=gen), dim=-1)
        first = batch if first is None else first
        scorer.add(batch)
        done += b
    elapsed = time.perf_counter() - t0
    values, indices = scorer.result()
    assert indices.shape == (args.images, min(args.k, args.classes))
    # The chunked running top-k must equal the top-k of the full score matrix.
    full_values, _ = (first @ scorer.class_emb.T).topk(scorer.k, dim=1)
    agrees = bool(torch.allclose(values[: len(first)], full_values, atol=1e-5))
    result = {
        "benchmark": "zeroshot",
        "classes": args.classes, "images": args.images, "dim": args.dim, "batch": args.batch,
        "chunk": args.chunk, "k": args.k, "torch_threads": torch.get_num_threads(),
        "seconds": round(elapsed, 3),
        "images_per_s": round(args.images / elapsed, 1),
        "peak_rss_mb": round(_rss_mb(), 1),
        "rss_before_scoring_mb": round(rss_before, 1),
        "full_score_matrix_mb": round(args.images * args.classes * 4 / 2**20, 1),
        "chunk_scores_mb": round(min(args.batch, args.images) * min(args.chunk, args.classes) * 4 / 2**20, 1),
        "chunks_per_batch": -(-args.classes // args.chunk),
        "top_k_equals_full_matrix": agrees,
    }
    if args.text > 0:
        result.update(_text_timing(args.text))
        result["peak_rss_mb"] = round(_rss_mb(), 1)
    return report(result, args.json)


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
