"""``minbench bench BENCHMARK``: every benchmark's arguments; the work is in ``minbench.bench``
(one module per benchmark, a function taking plain values and returning the result)."""

from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("bench", help="speed and memory benchmarks (JSON out)")
    bench_sub = p.add_subparsers(dest="bench_command", metavar="BENCHMARK", required=True)
    for add in (_add_cam, _add_data, _add_generate, _add_maps, _add_release, _add_score, _add_size, _add_train,
                _add_zeroshot):
        add(bench_sub)


def _json_option(parser) -> None:
    """The ``--json FILE`` option every benchmark takes."""
    parser.add_argument("--json", type=Path, default=None, help="also write the result to this JSON file")


def _report(result: dict, args) -> int:
    from minbench.bench import report

    return report(result, args.json)


def _add_cam(sub) -> None:
    p = sub.add_parser("cam", help="segmentation predict step images/s (CAM, masks, PNGs) vs the model's fwd+bwd; RSS")
    p.add_argument("--backbone", default=None,
                   help="timm model name, random weights (default: the default classifier recipe's backbone)")
    p.add_argument("--image-size", type=int, default=None,
                   help="the classifier's input side (default: the default classifier recipe's)")
    p.add_argument("--mask-size", type=int, nargs=2, default=(768, 1024), metavar=("H", "W"),
                   help="resolution the masks are made at (the photo's)")
    p.add_argument("--cam", default="gradcam", help="CAM method")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--n-speed", type=int, default=64, help="images timed")
    p.add_argument("--n", type=int, default=1000, help="images for the memory run (0 skips it)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--cam-scale", type=float, default=None,
                   help="CAM input = this x --image-size (default: the default segmentation recipe's)")
    p.add_argument("--refine", nargs="*", default=None, metavar="NAME",
                   help="refinements timed after the plain path (default: every one; none given: none)")
    _json_option(p)
    p.set_defaults(func=_cam)


def _cam(args) -> int:
    from minbench.bench.cam import bench_cam
    from minbench.models.refine import REFINEMENTS, check_refine

    refine = [n for n in REFINEMENTS if n != "none"] if args.refine is None else args.refine
    for name in refine:  # a bad name is refused before any timing
        check_refine(name)
    return _report(bench_cam(backbone=args.backbone, image_size=args.image_size, mask_size=args.mask_size,
                             cam=args.cam, batch=args.batch, n_speed=args.n_speed, n=args.n,
                             threads=args.threads, cam_scale=args.cam_scale,
                             refinements=tuple(n for n in refine if n != "none")), args)


def _add_data(sub) -> None:
    p = sub.add_parser("data", help="data pipeline images/s: cached module (cold, warm) vs plain PIL DataLoader")
    p.add_argument("--size", type=int, default=224, help="image side in pixels (default 224)")
    p.add_argument("--data", type=Path, default=None, help="dataset folder (default: the embedded one)")
    p.add_argument("--workers", type=int, default=2,
                   help="workers of every pipeline: the plain loader's processes, the module's cache builders (default 2)")
    p.add_argument("--n", type=int, default=1000, help="how many images (default 1000)")
    p.add_argument("--batch-size", type=int, default=32)
    # enough batches that epoch starts (worker wake-up) do not dominate a 2-core machine
    p.add_argument("--epochs", type=int, default=3,
                   help="epochs timed for the warm and the plain pipelines (default 3; cold: 1)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when present, else cpu)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads of the main process (default: torch's own choice)")
    _json_option(p)
    p.set_defaults(func=_data)


def _data(args) -> int:
    from minbench.bench.data import bench_data

    return _report(bench_data(size=args.size, data=args.data, workers=args.workers, n=args.n,
                              batch_size=args.batch_size, epochs=args.epochs, device=args.device,
                              threads=args.threads), args)


def _add_generate(sub) -> None:
    from minbench.data.synth.options import EMBEDDED_SIZES

    p = sub.add_parser("generate", help="synth generation speed (images/s) and time per stage")
    p.add_argument("--size", choices=EMBEDDED_SIZES, default="small")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--limit", type=int, default=None,
                   help="render only the first N images of the plan (default: generate the whole dataset)")
    p.add_argument("--stages", type=int, default=20, help="images timed stage by stage in this process")
    p.add_argument("--seed", type=int, default=0)
    _json_option(p)
    p.set_defaults(func=_generate)


def _generate(args) -> int:
    from minbench.bench.generate import bench_generate

    return _report(bench_generate(size=args.size, workers=args.workers, limit=args.limit, stages=args.stages,
                                  seed=args.seed), args)


def _scoring_options(p) -> None:
    """The options every scoring benchmark takes: resamples, repeats, --json."""
    from minbench.scoring.bootstrap import DEFAULT_RESAMPLES

    p.add_argument("--resamples", type=int, default=DEFAULT_RESAMPLES,
                   help=f"bootstrap resamples (default {DEFAULT_RESAMPLES})")
    p.add_argument("--repeat", type=int, default=3, help="timed runs; the best is reported (default 3)")
    _json_option(p)


def _add_maps(sub) -> None:
    p = sub.add_parser("maps", help="time and peak memory of scoring segmentation masks with score maps (PxAP)")
    p.add_argument("--images", type=int, default=160, help="test images (default 160)")
    p.add_argument("--size", type=int, nargs=2, default=(1024, 768), metavar=("W", "H"),
                   help="image size (default 1024 768)")
    _scoring_options(p)
    p.set_defaults(func=_maps)


def _maps(args) -> int:
    from minbench.bench.maps import bench_maps

    return _report(bench_maps(n_images=args.images, width=args.size[0], height=args.size[1],
                              n_resamples=args.resamples, repeat=args.repeat), args)


def _add_release(sub) -> None:
    p = sub.add_parser("release", help="data prepare / data check throughput on a release-shaped folder")
    p.add_argument("--n", type=int, default=1000, help="photos to write")
    p.add_argument("--long-side", type=int, default=1024)
    p.add_argument("--workdir", type=Path, default=None, help="where to write (default: a temporary folder)")
    _json_option(p)
    p.set_defaults(func=_release)


def _release(args) -> int:
    from minbench.bench.release import bench_release

    return _report(bench_release(n=args.n, long_side=args.long_side, workdir=args.workdir), args)


def _add_score(sub) -> None:
    p = sub.add_parser("score", help="time scoring a large ranked-species submission")
    p.add_argument("--rows", type=int, default=100_000, help="test rows (default 100000)")
    p.add_argument("--classes", type=int, default=360, help="species (default 360)")
    p.add_argument("--ranks", type=int, default=10, help="ranks per row (default 10)")
    _scoring_options(p)
    p.set_defaults(func=_score)


def _score(args) -> int:
    from minbench.bench.score import bench_score

    return _report(bench_score(n_rows=args.rows, n_classes=args.classes, n_ranks=args.ranks,
                               n_resamples=args.resamples, repeat=args.repeat), args)


def _add_size(sub) -> None:
    p = sub.add_parser("size", help="size estimator photos/s per core at 1024x768, and vs the authors' rule")
    p.add_argument("--data", default=None, help="dataset folder (default: the embedded one)")
    p.add_argument("--n", type=int, default=100, help="photos to time (taken from the size split)")
    p.add_argument("--repeat", type=int, default=2, help="timed passes over the photos (best is kept)")
    p.add_argument("--workers", type=int, default=0, help="also time N processes at once (0: skip)")
    _json_option(p)
    p.set_defaults(func=_size)


def _size(args) -> int:
    from minbench.bench.size import bench_size

    return _report(bench_size(data=args.data, n=args.n, repeat=args.repeat, workers=args.workers), args)


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="training images/s: fed by the data module vs synthetic tensors")
    p.add_argument("--data", type=Path, default=None, help="dataset folder (default: the embedded one)")
    p.add_argument("--task", default="fewshot-10", help="classification task whose train split feeds the model")
    p.add_argument("--config", default=None, help="recipe (default: the few-shot default recipe)")
    p.add_argument("--steps", type=int, default=30, help="timed training steps per variant")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--batch-size", type=int, default=None, help="override the recipe's batch size")
    p.add_argument("--workers", type=int, default=None, help="override the recipe's DataLoader workers")
    _json_option(p)
    p.set_defaults(func=_train)


def _train(args) -> int:
    from minbench.bench.train import bench_train

    return _report(bench_train(data=args.data, task=args.task, recipe=args.config, steps=args.steps,
                               warmup=args.warmup, batch_size=args.batch_size, workers=args.workers), args)


def _add_zeroshot(sub) -> None:
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
    _json_option(p)
    p.set_defaults(func=_zeroshot)


def _zeroshot(args) -> int:
    from minbench.bench.zeroshot import bench_zeroshot

    return _report(bench_zeroshot(n_classes=args.classes, n_images=args.images, dim=args.dim,
                                  batch_size=args.batch, chunk=args.chunk, k=args.k, threads=args.threads,
                                  text_prompts=args.text), args)
