"""genkit's FID and KID between folders equal torch-fidelity's on the same images and the same weights file."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from genkit.metrics.fid import fid_between, save_folder_stats
from genkit.metrics.inception import build_inception, random_inception
from genkit.metrics.kid import kid_between


def _write_faces(folder, n, size, seed, gain=1.0):
    from genkit.data.synthetic import synthetic_faces

    folder.mkdir(parents=True)
    for i, (img, _) in enumerate(synthetic_faces(n, size, seed)):
        img = np.clip(img.astype(np.float64) * gain, 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"face_{i:03d}.png")
    return folder


@pytest.fixture
def weights_file(tmp_path):
    """An Inception weights file with fixed random values (variance-preserving init), saved as a state dict."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        net = random_inception(seed=1234)
    path = tmp_path / "inception-random.pth"
    torch.save({k: v.clone() for k, v in net.net.state_dict().items()}, path)
    return path


def test_fid_and_kid_equal_torch_fidelity(tmp_path, weights_file, monkeypatch):
    import torch_fidelity

    monkeypatch.setenv("GENKIT_CACHE_DIR", str(tmp_path / "cache"))
    a = _write_faces(tmp_path / "a", 16, 64, seed=1)
    b = _write_faces(tmp_path / "b", 16, 64, seed=2, gain=0.4)  # much darker: KID clearly above 0
    subsets, subset_size = 20, 12

    ref = torch_fidelity.calculate_metrics(
        input1=str(a), input2=str(b), fid=True, kid=True, feature_extractor_weights_path=str(weights_file),
        kid_subsets=subsets, kid_subset_size=subset_size, batch_size=8, cuda=False, cache=False,
        save_cpu_ram=True, verbose=False)

    extractor = build_inception(weights_path=weights_file)
    assert extractor.protocol["weights"] != "RANDOM" and len(extractor.protocol["weights"]) == 64
    ours = kid_between(a, b, extractor=extractor, subsets=subsets, subset_size=subset_size, batch_size=8,
                       with_fid=True)
    ref_fid = ref["frechet_inception_distance"]
    ref_kid = ref["kernel_inception_distance_mean"]
    assert ref_fid > 0 and ref_kid > 0
    assert ours["fid"] == pytest.approx(ref_fid, rel=1e-3)
    assert ours["kid_mean"] == pytest.approx(ref_kid, rel=1e-3)
    assert ours["kid_std"] == pytest.approx(ref["kernel_inception_distance_std"], rel=1e-2)

    # the KID pass wrote both folders' FID statistics (running float64 sums) to the cache ...
    assert ours["protocol"]["input1"]["stats_cache"] == "written"
    assert ours["protocol"]["input1"]["num_samples"] == 16
    # ... so the folder-to-folder FID reads them instead of running the Inception again
    second = fid_between(a, b, extractor=extractor)
    assert second["protocol"]["input1"]["stats_cache"] == "hit"
    assert second["protocol"]["input2"]["stats_cache"] == "hit"
    assert second["fid"] == pytest.approx(ref_fid, rel=1e-3)
    assert second["protocol"]["weights"] == extractor.protocol["weights"]
    # an .npz of the reference (pytorch-fid format) in place of the folder: same FID
    save_folder_stats(a, tmp_path / "a.npz", extractor=extractor)
    assert fid_between(tmp_path / "a.npz", b, extractor=extractor)["fid"] == pytest.approx(second["fid"], rel=1e-12)
