"""Footprint of the FID statistics cache: bytes on disk per entry, for regenerated folders, and under a size cap.

    python benchmarks/stats_cache.py            # N up to 3000 images per folder
    python benchmarks/stats_cache.py --quick    # N up to 500

The cache's size does not depend on the network, so the features come from a cheap stand-in (a fixed random
projection of 8x8 thumbnails to 2048 dimensions, float32 like the Inception's); images are tiny synthetic PNGs.
Everything runs in a temporary folder with its own ``GENKIT_CACHE_DIR``. Scenarios:

1. one folder of N images, one ``fid_between`` each: the size of that folder's entry, for several N;
2. a folder regenerated between runs (a model writing new samples under the same names), FID after each of 3
   rewrites: how many entries and bytes the cache holds afterwards;
3. 10 different generated folders of 5 images: total bytes (the cap, ``GENKIT_STATS_CACHE_MAX``, applies if set).

Only public calls (``fid_between`` and the cache folder) are used, so the script also measures older genkit
versions (run it with their checkout on PYTHONPATH).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

if "PYTHONPATH" not in os.environ:  # with PYTHONPATH set, measure the genkit found there (e.g. an older checkout)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


class ThumbnailFeatures:
    """uint8 images (N, 3, H, W) -> (N, 2048) float32: a fixed random projection of 8x8 thumbnails."""

    num_features = 2048

    def __init__(self, seed: int = 0):
        import torch

        g = torch.Generator().manual_seed(seed)
        self.proj = torch.randn(3 * 8 * 8, self.num_features, generator=g) / 8.0
        self.device = torch.device("cpu")
        self.protocol = {"weights": "stand-in (thumbnail projection)", "feature": "2048",
                         "resize": "area to 8x8", "input": "uint8 RGB"}

    def __call__(self, images):
        import torch.nn.functional as F

        x = F.adaptive_avg_pool2d(images.float() / 255.0, 8).flatten(1)
        return (x @ self.proj).relu()


def _write(folder: Path, n: int, seed: int, size: int = 16) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"s_{i:05d}.png")
    return folder


def _footprint(cache: Path) -> tuple[int, int]:
    files = [p for p in cache.rglob("*") if p.is_file() and not p.name.startswith(".")]
    return len(files), sum(p.stat().st_size for p in files)


def _mb(n: int) -> str:
    return f"{n / 2 ** 20:.2f} MiB"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="N up to 500 instead of 3000")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    import genkit
    from genkit.metrics.fid import fid_between

    sizes = [5, 50, 500] if args.quick else [5, 50, 500, 3000]
    extractor = ThumbnailFeatures()
    rows: list[tuple[str, int, int]] = []
    with tempfile.TemporaryDirectory(prefix="genkit-bench-cache-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        work = Path(tmp)
        ref = _write(work / "ref", 5, seed=0)

        def run(name: str, cache: Path, folders) -> None:
            os.environ["GENKIT_CACHE_DIR"] = str(cache)
            for step in folders:
                fid_between(ref, step(), extractor=extractor, num_workers=0)
            count, total = _footprint(cache / "stats")
            rows.append((name, count, total))

        for n in sizes:
            folder = _write(work / f"n{n}", n, seed=n)
            run(f"1. reference (5) + one folder of N={n}", work / f"cache-n{n}", [lambda f=folder: f])

        gen = work / "generated"
        run("2. reference + one folder regenerated 3x", work / "cache-regen",
            [lambda k=k: _write(gen, 5, seed=100 + k) for k in range(3)])
        run("3. reference + 10 generated folders of 5", work / "cache-many",
            [lambda k=k: _write(work / f"gen{k}", 5, seed=200 + k) for k in range(10)])

    cap = os.environ.get("GENKIT_STATS_CACHE_MAX", "unset")
    print(f"FID statistics cache footprint (genkit at {Path(genkit.__file__).parent}; GENKIT_STATS_CACHE_MAX={cap})")
    width = max(len(r[0]) for r in rows)
    print(f"  {'scenario':<{width}}  {'entries':>7}  {'on disk':>12}")
    for name, count, total in rows:
        print(f"  {name:<{width}}  {count:>7}  {_mb(total):>12}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
