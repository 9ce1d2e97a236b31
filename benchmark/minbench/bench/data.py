"""``minbench bench data``: images/s from the manifest to a normalised batch on the device.

Three pipelines on the same images, the same batch size and the same ``--workers``, each in
a fresh process (so one's caches, threads and memory do not flatter another). The module
spends its workers where there is per-sample CPU work (decoding the cache) and reads cached
batches in its own process (``MineralDataModule.loader_workers``; the JSON reports it as
``module_loader_workers``); the plain pipeline decodes in that many worker processes.

- ``cold``:  ``MineralDataModule`` with an empty cache: decode + resize into the cache, then
  one epoch (uint8 batches, augmented and normalised on the device).
- ``warm``:  the same module on the built cache, several epochs, timed from the first batch
  on (worker start-up left out, for ``plain`` too); its peak RSS is reported
  (main process and largest worker) with the RSS after the first batch: the difference is
  what the epochs added, which stays at a few batches whatever the dataset size.
- ``plain``: a per-sample PIL + torchvision transforms ``DataLoader`` (decode every epoch,
  augment per sample in the workers), the usual baseline.

Both the training path (random resized crop, flips, rotation, colour jitter, grayscale) and
the eval path (whole-image resize) are measured; ratios are warm (and cold) over plain.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def bench_data(*, size: int = 224, data: Path | None = None, workers: int = 2, n: int = 1000, batch_size: int = 32,
              epochs: int = 3, device: str | None = None, threads: int | None = None) -> dict:
    """Images/s of the cached data module (cold, warm) and of a plain PIL DataLoader, each in a
    fresh process; the result as a dict."""
    from minbench.data.locate import resolve_dataset
    from minbench.errors import UserError

    for name, value in (("size", size), ("n", n), ("batch_size", batch_size), ("epochs", epochs)):
        if value < 1:
            raise UserError(f"--{name.replace('_', '-')} {value}: must be at least 1")
    if workers < 0:
        raise UserError(f"--workers {workers}: must be >= 0")
    folder = resolve_dataset(data).resolve()
    device = device or _default_device()
    with tempfile.TemporaryDirectory(prefix="minbench-bench-data-") as tmp:
        common = dict(data=str(folder), size=size, n=n, batch_size=batch_size,
                      workers=workers, device=device, cache=str(Path(tmp) / "cache"), threads=threads)
        runs = {}
        runs["cold"] = _child(common, path="cold", train=True)
        runs["warm"] = _child(common, path="warm", train=True, epochs=epochs)
        runs["plain"] = _child(common, path="plain", train=True, epochs=epochs)
        runs["warm_eval"] = _child(common, path="warm", train=False, epochs=epochs)
        runs["plain_eval"] = _child(common, path="plain", train=False, epochs=epochs)
    result = {
        "benchmark": "data",
        "dataset": str(folder),
        "image_size": size, "images": runs["warm"]["images_per_epoch"], "source_size": runs["warm"]["source_size"],
        "batch_size": batch_size, "workers": workers, "device": device,
        "module_loader_workers": runs["warm"]["loader_workers"],
        # train_transform's default on this device (minbench.data.augment)
        "augment_backend": "opencv" if device == "cpu" else "torch",
        "cpu_count": os.cpu_count(),
        "train": {
            "cold_images_per_s": runs["cold"]["images_per_s"],
            "warm_images_per_s": runs["warm"]["images_per_s"],
            "plain_images_per_s": runs["plain"]["images_per_s"],
            "warm_over_plain": round(runs["warm"]["images_per_s"] / runs["plain"]["images_per_s"], 2),
            "cold_over_plain": round(runs["cold"]["images_per_s"] / runs["plain"]["images_per_s"], 2),
        },
        "eval": {
            "warm_images_per_s": runs["warm_eval"]["images_per_s"],
            "plain_images_per_s": runs["plain_eval"]["images_per_s"],
            "warm_over_plain": round(runs["warm_eval"]["images_per_s"] / runs["plain_eval"]["images_per_s"], 2),
        },
        # CPU time per image (main process + DataLoader workers; cold also counts the cache
        # builders): what bounds throughput when the cores are busy or few
        "cpu_ms_per_image": {k: runs[k]["cpu_ms_per_image"] for k in runs},
        "main_threads": runs["warm"]["threads"],
        "cache_build_s": runs["cold"]["build_s"],
        "warm_memory": {k: runs["warm"][k] for k in ("peak_rss_mb", "rss_after_first_batch_mb",
                                                      "peak_growth_mb", "worker_peak_rss_mb", "batch_mb",
                                                      "cache_mb")},
        "skipped_images": runs["cold"]["skipped"],
    }
    return result


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _child(common: dict, **kw) -> dict:
    """Run one pipeline in a fresh interpreter; returns its JSON result."""
    from minbench.paths import PACKAGE_DIR

    spec = {**common, **kw}
    env = dict(os.environ)
    pkg_root = str(PACKAGE_DIR.parent)
    env["PYTHONPATH"] = os.pathsep.join([pkg_root, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    proc = subprocess.run([sys.executable, "-m", "minbench.bench.data", json.dumps(spec)],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"bench data ({kw}) failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---- inside the child process ----------------------------------------------------------------
def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb(who) -> float:
    import resource

    return resource.getrusage(who).ru_maxrss / 1024  # Linux: KiB


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _module(spec: dict, train: bool):
    from minbench.data.datamodule import MineralDataModule

    # fewshot-360 has the most train rows; limit picks n of them round-robin over classes
    return MineralDataModule(spec["data"], task="fewshot-360", image_size=spec["size"],
                             batch_size=spec["batch_size"], num_workers=spec["workers"], val_fraction=0.0,
                             limit=spec["n"], seed=0, augment=train, cache_dir=spec["cache"])


def _cpu_s() -> float:
    import resource

    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def _threads(spec: dict) -> int:
    import torch

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    return torch.get_num_threads()


class _Clock:
    """Wall and CPU time (this process + DataLoader workers) from the first batch on.

    The first batch pays for worker start-up; a training run amortises that over thousands
    of batches, so the steady-state figures leave it out (for every pipeline alike).
    """

    def __init__(self, loader):
        self.loader = loader
        self.images = 0
        self.t0 = self.c0 = None

    def _cpu(self) -> float:
        total = _self_cpu_s()
        it = getattr(self.loader, "_iterator", None)
        for w in getattr(it, "_workers", []) or []:
            total += _proc_cpu_s(w.pid)
        return total

    def tick(self, n: int) -> None:
        if self.t0 is None:
            self.t0, self.c0 = time.perf_counter(), self._cpu()
        else:
            self.images += n

    def stop(self) -> tuple[float, float]:
        return time.perf_counter() - self.t0, self._cpu() - self.c0


def _run_module(spec: dict) -> dict:
    import resource

    import torch

    import minbench.data.datamodule  # noqa: F401  (imports are not the pipeline's cost)

    device, train = spec["device"], spec["train"]
    threads = _threads(spec)
    t_start, c_start = time.perf_counter(), _cpu_s()
    dm = _module(spec, train)
    dm.setup("fit")
    build_s = time.perf_counter() - t_start
    loader = dm.train_dataloader()
    clock = _Clock(loader)
    epochs = spec.get("epochs", 1)
    loader_workers = dm.loader_workers(loader.dataset)
    images, rss_first = 0, None
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)
        for i, batch in enumerate(loader):
            batch = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
            out = dm.transform_batch(batch, train=train, epoch=epoch, batch_idx=i)
            n = out["image"].shape[0]
            images += n
            if rss_first is None:
                _sync(device)
                rss_first = _rss_mb()
            clock.tick(n)
    _sync(device)
    seconds, cpu = clock.stop()
    steady = clock.images
    total_s = time.perf_counter() - t_start
    batch_mb = out["image"].element_size() * out["image"].nelement() / 2**20 * (dm.batch_size / out["image"].shape[0])
    del loader, clock  # joins the workers, so their peak RSS reaches RUSAGE_CHILDREN
    import gc

    gc.collect()
    total_cpu = _cpu_s() - c_start
    peak = _peak_mb(resource.RUSAGE_SELF)
    cold = spec["path"] == "cold"
    return {
        # cold: end to end (build + one epoch); warm: steady state after the first batch
        "images_per_s": round(images / total_s, 1) if cold else round(steady / seconds, 1),
        "cpu_ms_per_image": round(total_cpu / images * 1000, 2) if cold
        else round(cpu / steady * 1000, 2),
        "threads": threads, "loader_workers": loader_workers, "images_per_epoch": images // epochs,
        "seconds": round(total_s if cold else seconds, 3),
        "build_s": round(build_s, 3), "source_size": _source_size(dm),
        "peak_rss_mb": round(peak, 1), "rss_after_first_batch_mb": round(rss_first, 1),
        "peak_growth_mb": round(peak - rss_first, 1),
        "worker_peak_rss_mb": round(_peak_mb(resource.RUSAGE_CHILDREN), 1),
        "batch_mb": round(batch_mb, 1), "cache_mb": round(dm.cache.describe()["bytes_on_disk"] / 2**20, 1),
        "skipped": int(len(dm.skipped)),
    }


def _self_cpu_s() -> float:
    import resource

    a = resource.getrusage(resource.RUSAGE_SELF)
    return a.ru_utime + a.ru_stime


def _proc_cpu_s(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0.0


def _source_size(dm) -> list[int]:
    hw = dm.cache.orig_hw[dm.frame_of("train").index.to_numpy()]
    return [int(v) for v in hw[0][::-1]] if len(hw) else []


class _PlainDataset:
    """The usual baseline: decode with PIL and transform per sample, every epoch."""

    def __init__(self, paths, labels, transform):
        self.paths, self.labels, self.transform = paths, labels, transform

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        from PIL import Image

        with Image.open(self.paths[i]) as img:
            return {"image": self.transform(img.convert("RGB")), "label": int(self.labels[i])}


def _plain_transform(size: int, train: bool):
    from torchvision import transforms as T

    from minbench.data.augment import IMAGENET_MEAN, IMAGENET_STD, AugmentConfig

    c = AugmentConfig()
    if not train:
        return T.Compose([T.Resize((size, size)), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    return T.Compose([
        T.RandomResizedCrop(size, scale=c.crop_scale, ratio=c.crop_ratio),
        T.RandomHorizontalFlip(c.hflip), T.RandomVerticalFlip(c.vflip),
        T.RandomRotation(c.rotate),
        T.ColorJitter(c.brightness, c.contrast, c.saturation, c.hue),
        T.RandomGrayscale(c.grayscale),
        T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def _run_plain(spec: dict) -> dict:
    from torch.utils.data import DataLoader

    # the same rows as the module serves: ask a module for them (no cache needed for that)
    dm = _module(spec, spec["train"])
    dm._load()
    rows = dm.frame.iloc[dm.positions["train"]]
    paths = [str(dm.dataset_dir / p) for p in rows["image_path"]]
    ds = _PlainDataset(paths, dm.labels[rows.index.to_numpy()], _plain_transform(spec["size"], spec["train"]))
    loader = DataLoader(ds, batch_size=spec["batch_size"], shuffle=True, num_workers=spec["workers"],
                        pin_memory=spec["device"].startswith("cuda"), persistent_workers=spec["workers"] > 0)
    device = spec["device"]
    threads = _threads(spec)
    clock = _Clock(loader)
    images = 0
    for _ in range(spec.get("epochs", 1)):
        for batch in loader:
            x = batch["image"].to(device, non_blocking=True)
            images += x.shape[0]
            clock.tick(x.shape[0])
    _sync(device)
    seconds, cpu = clock.stop()
    return {"images_per_s": round(clock.images / seconds, 1), "images_per_epoch": images // spec.get("epochs", 1),
            "seconds": round(seconds, 3), "cpu_ms_per_image": round(cpu / clock.images * 1000, 2),
            "threads": threads}


def main(spec_json: str) -> None:
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    spec = json.loads(spec_json)
    result = _run_plain(spec) if spec["path"] == "plain" else _run_module(spec)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
