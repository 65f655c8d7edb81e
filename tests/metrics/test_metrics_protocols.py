"""Each FID protocol equals its own library on the same folders with the same weights file (nothing downloaded).

The weights files are random, written in each library's published layout (``pt_inception-2015-12-05-6726825d.pth``
for pytorch-fid and clean-fid's legacy_pytorch mode; the TorchScript ``inception-2015-12-05.pt`` for clean-fid)
into ``$TORCH_HOME/hub/checkpoints``, where pytorch-fid's and clean-fid's ``load_state_dict_from_url`` look first
and where genkit's registry looks too. clean-fid's TorchScript file is handed to clean-fid's own ``InceptionV3W``
(its constructor takes the folder and ``download=False``). The images are real photos (scikit-image samples),
cropped to odd sizes and saved in several modes (RGB, L, RGBA, P; PNG and JPEG).
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch
from PIL import Image

from fixtures.published_weights import write_clean_fid_torchscript, write_pytorch_fid_file

pytestmark = pytest.mark.slow

MODES = ("RGB", "L", "RGBA", "P")
N = 6  # images per folder


def _photo_folder(path, seed: int, n: int = N):
    import skimage.data

    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket()]
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True)
    for i in range(n):
        src = photos[(i + seed) % len(photos)]
        h, w = int(rng.integers(37, 140)), int(rng.integers(37, 140))
        y, x = int(rng.integers(0, src.shape[0] - h)), int(rng.integers(0, src.shape[1] - w))
        img = Image.fromarray(src[y:y + h, x:x + w]).convert(MODES[i % len(MODES)])
        if i % 3 == 2 and img.mode in ("RGB", "L"):
            img.save(path / f"p{i:02d}.jpg", quality=90)
        else:
            img.save(path / f"p{i:02d}.png")
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("protocols")
    hub = root / "torch" / "hub" / "checkpoints"
    write_pytorch_fid_file(hub / "pt_inception-2015-12-05-6726825d.pth", seed=3)
    write_clean_fid_torchscript(hub / "inception-2015-12-05.pt", seed=4)
    return root, hub, _photo_folder(root / "a", 0), _photo_folder(root / "b", 1)


@pytest.fixture(autouse=True)
def _env(setup, monkeypatch):
    root, _, _, _ = setup
    monkeypatch.setenv("TORCH_HOME", str(root / "torch"))
    monkeypatch.delenv("GENKIT_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("GENKIT_OFFLINE", "1")
    monkeypatch.setenv("GENKIT_CACHE_DIR", str(root / "cache"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    torch.set_num_threads(1)


def _weights(hub, protocol):
    """The same file the library loads (given explicitly: a random file cannot match the registry's hash)."""
    return hub / ("inception-2015-12-05.pt" if protocol in ("clean-fid", "clean-fid-legacy-tf")
                  else "pt_inception-2015-12-05-6726825d.pth")


def _genkit(a, b, protocol, hub, **kid):
    """genkit's KID and FID from one pass over the images (FID with the protocol's own matrix square root)."""
    from genkit.metrics.kid import kid_between

    res = kid_between(a, b, protocol=protocol, device="cpu", batch_size=4, use_cache=False,
                      weights_path=_weights(hub, protocol), with_fid=True, subsets=10, subset_size=N, **kid)
    assert res["protocol"]["fid_protocol"] == protocol and res["protocol"]["weights"] != "RANDOM"
    return res


def test_pytorch_fid_protocol_equals_pytorch_fid(setup):
    from pytorch_fid.fid_score import calculate_fid_given_paths, get_activations
    from pytorch_fid.inception import InceptionV3
    from torch_fidelity.metric_kid import kid_features_to_metric

    _, hub, a, b = setup
    with contextlib.redirect_stdout(io.StringIO()):
        lib_fid = calculate_fid_given_paths([str(a), str(b)], batch_size=1, device="cpu", dims=2048, num_workers=0)
        model = InceptionV3([3])
        feats = [get_activations(sorted(p.iterdir()), model, batch_size=1, device="cpu", num_workers=0)
                 for p in (a, b)]
        # pytorch-fid has no KID: torch-fidelity's estimator on pytorch-fid's own features
        lib_kid = kid_features_to_metric(torch.from_numpy(feats[0]), torch.from_numpy(feats[1]), kid_subsets=10,
                                         kid_subset_size=N, kid_kernel="poly", kid_kernel_poly_degree=3,
                                         kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1.0, rng_seed=7,
                                         verbose=False)["kernel_inception_distance_mean"]
    res = _genkit(a, b, "pytorch-fid", hub, seed=7)
    assert lib_fid > 0
    assert res["fid"] == pytest.approx(lib_fid, rel=1e-4)
    assert res["kid_mean"] == pytest.approx(lib_kid, rel=1e-4)


def _clean_fid_model(hub, mode):
    from cleanfid.inception_torchscript import InceptionV3W

    model = InceptionV3W(str(hub), download=False, resize_inside=mode == "legacy_tensorflow").eval()
    return lambda x: model(x)


@pytest.mark.parametrize("protocol, mode, whole_fid", [
    ("clean-fid", "clean", True), ("clean-fid-legacy-tf", "legacy_tensorflow", True),
    ("clean-fid-legacy-pytorch", "legacy_pytorch", False)])
def test_clean_fid_protocols_equal_clean_fid(setup, protocol, mode, whole_fid):
    """FID through clean-fid's ``compute_fid``; for legacy_pytorch (pytorch-fid's network, checked above) the
    statistics and KID only: each scipy ``sqrtm`` of a 2048 x 2048 product costs up to a minute on a shared CPU."""
    from cleanfid import fid as cf

    _, hub, a, b = setup
    model = None if mode == "legacy_pytorch" else _clean_fid_model(hub, mode)  # legacy_pytorch: its own loader
    kw = dict(mode=mode, num_workers=0, batch_size=1, device=torch.device("cpu"), verbose=False)
    with contextlib.redirect_stdout(io.StringIO()):
        if model is None:
            model = cf.build_feature_extractor(mode, torch.device("cpu"), use_dataparallel=False)
        feats = [cf.get_folder_features(str(p), model, **kw) for p in (a, b)]
        lib_fid = cf.compute_fid(str(a), str(b), custom_feat_extractor=model, **kw) if whole_fid else None
    np.random.seed(11)
    lib_kid = cf.kernel_distance(feats[0], feats[1], num_subsets=10, max_subset_size=N)
    res = _genkit(a, b, protocol, hub, seed=11)
    assert res["kid_mean"] == pytest.approx(lib_kid, rel=1e-4)
    if whole_fid:
        assert lib_fid > 0 and res["fid"] == pytest.approx(lib_fid, rel=1e-4)
    else:
        from genkit.metrics.fid import folder_stats
        from genkit.metrics.protocols import build_extractor

        ours = folder_stats(a, build_extractor(protocol, _weights(hub, protocol)), batch_size=4, use_cache=False)[0]
        scale = np.abs(np.cov(feats[0], rowvar=False)).max()
        np.testing.assert_allclose(ours.mu, np.mean(feats[0], axis=0), rtol=0, atol=1e-5 * np.abs(ours.mu).max())
        np.testing.assert_allclose(ours.sigma, np.cov(feats[0], rowvar=False), rtol=0, atol=1e-5 * scale)


def test_a_statistics_file_of_one_protocol_is_refused_by_another(setup, tmp_path):
    from genkit.core.errors import ConfigError
    from genkit.metrics.fid import fid_between, save_folder_stats

    _, hub, a, b = setup
    w = {p: _weights(hub, p) for p in ("clean-fid", "pytorch-fid")}
    save_folder_stats(a, tmp_path / "a_clean.npz", protocol="clean-fid", device="cpu", batch_size=4,
                      weights_path=w["clean-fid"])
    save_folder_stats(b, tmp_path / "b_pt.npz", protocol="pytorch-fid", device="cpu", batch_size=4,
                      weights_path=w["pytorch-fid"])
    with pytest.raises(ConfigError, match="clean-fid protocol .* pytorch-fid"):
        fid_between(tmp_path / "a_clean.npz", tmp_path / "b_pt.npz")
    with pytest.raises(ConfigError, match="clean-fid protocol"):
        fid_between(tmp_path / "a_clean.npz", b, protocol="pytorch-fid", device="cpu", batch_size=4,
                    weights_path=w["pytorch-fid"])
    with pytest.raises(ConfigError, match="clean-fid protocol"):
        fid_between(tmp_path / "a_clean.npz", b, device="cpu", batch_size=4, allow_random=True)  # torch-fidelity
    with pytest.raises(ConfigError, match="pytorch-fid protocol"):
        fid_between(tmp_path / "b_pt.npz", tmp_path / "b_pt.npz", protocol="clean-fid")
