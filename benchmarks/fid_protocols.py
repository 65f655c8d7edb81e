"""Each FID protocol's statistics pass timed against its own library, side by side (``benchmarks/fid.py --protocols``).

For torch-fidelity, clean-fid (clean and legacy_tensorflow) and pytorch-fid: genkit's ``folder_stats`` (decode,
the protocol's resize and network, float64 mean and covariance; no statistics cache) against the library's own
pass over the same two folders with the same weights file (torch-fidelity's ``fid_input_id_to_statistics``;
clean-fid's ``get_folder_features`` + ``np.mean`` / ``np.cov``; pytorch-fid's ``calculate_activation_statistics``).
Both networks are built and warmed up before any timing, both run in this process with the same torch threads and
no DataLoader workers, and the runs are interleaved (``--repeat``: the best time counts).

The distance is not timed here: under the clean-fid and pytorch-fid protocols genkit calls the library's own
``frechet_distance`` (scipy ``sqrtm``), so that part is the same code; torch-fidelity's distance against genkit's
is the main benchmark's subject. The weights are random files in each library's published layout (written with
the test fixtures), because the real files cannot be downloaded here; speed does not depend on the values.
"""

from __future__ import annotations

import contextlib
import io
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _weights(work: Path) -> dict[str, Path]:
    sys.path.insert(0, str(REPO / "tests"))
    from fixtures.published_weights import write_clean_fid_torchscript, write_pytorch_fid_file
    from genkit.metrics.inception import random_inception

    out = {"torch-fidelity": work / "weights-inception-random.pth",
           "pytorch-fid": work / "pt_inception-2015-12-05-6726825d.pth",
           "clean-fid": work / "inception-2015-12-05.pt"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if not out["torch-fidelity"].is_file():
            random_inception(0).save_weights(out["torch-fidelity"])
        if not out["pytorch-fid"].is_file():
            write_pytorch_fid_file(out["pytorch-fid"])
        if not out["clean-fid"].is_file():
            write_clean_fid_torchscript(out["clean-fid"])
    out["clean-fid-legacy-tf"] = out["clean-fid"]
    return out


def _library(name: str, weights: Path, batch_size: int):
    """``(stats_fn(folder) -> (mu, sigma), warm_fn())`` of the library itself."""
    import torch

    if name == "torch-fidelity":
        from torch_fidelity.metric_fid import fid_input_id_to_statistics
        from torch_fidelity.utils import create_feature_extractor

        fx = create_feature_extractor("inception-v3-compat", ["2048"], cuda=False,
                                      feature_extractor_weights_path=str(weights), verbose=False)

        def stats(folder):
            st = fid_input_id_to_statistics(1, fx, "2048", input1=str(folder), cuda=False, batch_size=batch_size,
                                            save_cpu_ram=True, verbose=False, cache=False, fid=True)
            return st["mu"], st["sigma"]
        return stats, lambda: fx(torch.zeros(1, 3, 128, 128, dtype=torch.uint8))
    if name == "pytorch-fid":
        from pytorch_fid.fid_score import calculate_activation_statistics
        from pytorch_fid.inception import InceptionV3

        import os
        os.environ["TORCH_HOME"] = str(weights.parent / "torch")  # pytorch-fid finds its file in the hub cache
        hub = weights.parent / "torch" / "hub" / "checkpoints"
        hub.mkdir(parents=True, exist_ok=True)
        if not (hub / weights.name).exists():
            (hub / weights.name).symlink_to(weights)
        model = InceptionV3([3]).eval()

        def stats(folder):
            return calculate_activation_statistics(sorted(Path(folder).iterdir()), model, batch_size, 2048, "cpu", 0)
        return stats, lambda: model(torch.zeros(1, 3, 128, 128))
    from cleanfid.fid import get_folder_features
    from cleanfid.inception_torchscript import InceptionV3W

    mode = "clean" if name == "clean-fid" else "legacy_tensorflow"
    net = InceptionV3W(str(weights.parent), download=False, resize_inside=mode == "legacy_tensorflow").eval()

    def stats(folder):
        f = get_folder_features(str(folder), lambda x: net(x), num_workers=0, batch_size=batch_size,
                                device=torch.device("cpu"), mode=mode, verbose=False)
        return np.mean(f, axis=0), np.cov(f, rowvar=False)
    return stats, lambda: net(torch.zeros(1, 3, 299, 299))


def run(folders: tuple[Path, Path], work: Path, batch_size: int, repeat: int,
        names=("torch-fidelity", "clean-fid", "clean-fid-legacy-tf", "pytorch-fid")) -> dict:
    """Seconds (best of ``repeat``) for both folders' statistics, genkit vs the library, per protocol."""
    import torch

    from genkit.metrics.fid import folder_stats
    from genkit.metrics.protocols import build_extractor

    weights = _weights(work)
    results = {}
    for name in names:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            ours = build_extractor(name, weights[name], device="cpu")
            lib_stats, lib_warm = _library(name, weights[name], batch_size)
            with torch.no_grad():
                ours(torch.zeros(1, 3, 128, 128, dtype=torch.uint8))
                lib_warm()
        t_ours, t_lib = [], []
        for _ in range(repeat):
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                t = time.perf_counter()
                s = [folder_stats(f, ours, batch_size, 0, use_cache=False)[0] for f in folders]
                t_ours.append(time.perf_counter() - t)
                t = time.perf_counter()
                ref = [lib_stats(f) for f in folders]
                t_lib.append(time.perf_counter() - t)
        scale = max(np.abs(r[1]).max() for r in ref)
        diff = max(max(np.abs(x.mu - r[0]).max(), np.abs(x.sigma - r[1]).max()) for x, r in zip(s, ref))
        n = sum(x.num_samples for x in s)
        results[name] = {"genkit_seconds": min(t_ours), "library_seconds": min(t_lib), "images": n,
                         "genkit_images_per_s": n / min(t_ours), "library_images_per_s": n / min(t_lib),
                         "max_stat_diff_rel": float(diff / scale)}
        r = results[name]
        print(f"  {name:<20} genkit {r['genkit_seconds']:7.2f} s ({r['genkit_images_per_s']:5.1f} img/s)   "
              f"library {r['library_seconds']:7.2f} s ({r['library_images_per_s']:5.1f} img/s)   "
              f"ratio {r['library_seconds'] / r['genkit_seconds']:.2f}x   stats differ by {r['max_stat_diff_rel']:.1e}")
    return results
