"""LPIPS: equal to the reference package on the same trunk weights; offline policy; diversity; paired folders."""

from __future__ import annotations

import contextlib
import gc
import io
import warnings

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from genkit.core.errors import DataError, WeightsUnavailableError
from genkit.metrics.lpips import (LPIPSDiversity, LPIPSMetric, build_lpips, lpips_between, lpips_distance,
                                  lpips_diversity)


@pytest.fixture
def alexnet_file(tmp_path):
    """A torchvision AlexNet state dict with fixed random values (what the registry file would hold)."""
    torch.manual_seed(11)
    net = torchvision.models.alexnet(weights=None)
    path = tmp_path / "alexnet-random.pth"
    torch.save(net.state_dict(), path)
    return path


def _images(n, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


def _reference_lpips(weights_file, monkeypatch):
    """The lpips package as it would run online: its trunk is torchvision's AlexNet with those weights."""
    import lpips

    tv = torchvision.models.alexnet(weights=None)
    tv.load_state_dict(torch.load(weights_file, weights_only=True))
    monkeypatch.setattr(lpips.pretrained_networks.tv, "alexnet", lambda *a, **k: tv)
    with contextlib.redirect_stdout(io.StringIO()):
        return lpips.LPIPS(net="alex", pretrained=True, pnet_rand=False, verbose=False).eval()


def test_lpips_equals_the_package_on_the_same_weights(alexnet_file, monkeypatch):
    ours = build_lpips("alex", weights_path=alexnet_file)
    ref = _reference_lpips(alexnet_file, monkeypatch)
    x, y = _images(5, seed=1), _images(5, seed=2)
    with torch.no_grad():
        expected = ref(x, y).flatten()
    got = lpips_distance(x, y, ours, batch_size=2)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert (got > 0).all()
    assert float(lpips_distance(x, x, ours).abs().max()) < 1e-6
    assert ours.protocol["weights"] != "RANDOM" and ours.protocol["net"] == "alex"
    # the trunk really holds the file's weights (torchvision features.0 -> lpips slice1.0)
    state = torch.load(alexnet_file, weights_only=True)
    torch.testing.assert_close(ours.model.net.slice1[0].weight, state["features.0.weight"])
    torch.testing.assert_close(ours.model.net.slice5._modules["10"].weight, state["features.10.weight"])

    metric = LPIPSMetric(model=ours)
    metric.update(x[:2], y[:2])
    metric.update(x[2:], y[2:])
    assert float(metric.compute()) == pytest.approx(float(expected.double().mean()), rel=1e-5)


def test_lpips_offline_without_weights_is_a_clear_error():
    with pytest.raises(WeightsUnavailableError, match=r"alexnet-owt-7be5be79\.pth"):
        build_lpips("alex")
    with pytest.raises(WeightsUnavailableError, match="does not exist"):
        build_lpips("alex", weights_path="/nonexistent/alex.pth")


def test_lpips_random_only_when_asked_and_marked():
    with pytest.warns(RuntimeWarning, match="RANDOM"):
        model = build_lpips("alex", allow_random=True, seed=5)
    assert model.protocol["weights"] == "RANDOM"
    x, y = _images(2, seed=3), _images(2, seed=4)
    d = lpips_distance(x, y, model)
    assert torch.isfinite(d).all() and (d > 1e-4).all()  # variance-preserving trunk: not ~0


def test_lpips_rejects_wrong_ranges_and_shapes(alexnet_file):
    model = build_lpips("alex", weights_path=alexnet_file)
    with pytest.raises(ValueError, match=r"expected \[-1, 1\]"):
        model(torch.rand(1, 3, 32, 32) * 255, torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match="equal shape"):
        lpips_distance(_images(1, 32), _images(1, 48), model)


def test_diversity_is_mean_pairwise_lpips(alexnet_file):
    model = build_lpips("alex", weights_path=alexnet_file)
    samples = _images(4, seed=7)
    pairs = [(i, j) for i in range(4) for j in range(i + 1, 4)]
    direct = np.mean([float(model(samples[i:i + 1], samples[j:j + 1])) for i, j in pairs])
    assert lpips_diversity(samples, model) == pytest.approx(direct, rel=1e-5)
    metric = LPIPSDiversity(model=model)
    metric.update(torch.stack([samples, samples.flip(0)]))  # two conditions with the same pairwise set
    assert float(metric.compute()) == pytest.approx(direct, rel=1e-5)
    with pytest.raises(ValueError, match="at least 2"):
        lpips_diversity(samples[:1], model)


def _live_tensor_bytes() -> int:
    """Bytes of all tensor storages reachable as Python objects right now (each storage counted once)."""
    seen, total = set(), 0
    for obj in gc.get_objects():
        if issubclass(type(obj), torch.Tensor) and obj.device.type == "cpu":  # type(): no __class__ lookups
            storage = obj.untyped_storage()
            if storage.data_ptr() not in seen:
                seen.add(storage.data_ptr())
                total += storage.nbytes()
    return total


class _MeasuringDistance:
    """A stand-in LPIPS model (mean absolute difference) that records, at each call, the batch size and how much
    tensor memory is alive beyond ``baseline`` (in images)."""

    def __init__(self, image_bytes: int):
        self.image_bytes = image_bytes
        self.baseline = 0
        self.batches: list[int] = []
        self.extra_images: list[float] = []

    def __call__(self, x, y):
        self.batches.append(len(x))
        self.extra_images.append((_live_tensor_bytes() - self.baseline) / self.image_bytes)
        return (x - y).abs().flatten(1).mean(1)


def test_diversity_streams_pairs_instead_of_materialising_all_of_them():
    k, batch = 12, 6
    samples = _images(k, size=16, seed=3)
    model = _MeasuringDistance(image_bytes=3 * 16 * 16 * 4)
    gc.collect()
    model.baseline = _live_tensor_bytes()  # includes the K samples themselves
    value = lpips_diversity(samples, model, batch_size=batch)
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    direct = np.mean([float((samples[i] - samples[j]).abs().mean()) for i, j in pairs])
    assert value == pytest.approx(direct, rel=1e-6)
    assert sum(model.batches) == len(pairs) and max(model.batches) <= batch
    # at most one batch of pairs (2 x batch images) exists at a time, not all K(K-1) = 132 images
    assert max(model.extra_images) <= 2 * batch + 1, model.extra_images


def _save(folder, name, arr):
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(folder / name)


def test_lpips_between_folders_pairs_by_name_and_checks_sizes(tmp_path, alexnet_file):
    rng = np.random.default_rng(0)
    a, b = tmp_path / "a", tmp_path / "b"
    for name in ("x1.png", "x2.png", "x3.png"):
        _save(a, name, rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
        _save(b, name.replace(".png", ".jpg") if name == "x3.png" else name,
              rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    model = build_lpips("alex", weights_path=alexnet_file)
    result = lpips_between(a, b, model=model)
    assert result["protocol"]["num_samples"] == 3 and result["lpips"] > 0
    assert result["protocol"]["image_sizes"] == {"32x32": 3}

    _save(b, "x2.png", rng.integers(0, 256, (40, 32, 3), dtype=np.uint8))  # now 32x40 vs 32x32
    with pytest.raises(DataError, match=r"x2\.png.*differs from its pair"):
        lpips_between(a, b, model=model)

    _save(a, "only_here.png", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    with pytest.raises(DataError, match="only_here"):
        lpips_between(a, b, model=model)


def test_vgg_trunk_loads_too(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(0)
        vgg = torchvision.models.vgg16(weights=None)
    path = tmp_path / "vgg16.pth"
    torch.save(vgg.state_dict(), path)
    model = build_lpips("vgg", weights_path=path)
    torch.testing.assert_close(model.model.net.slice1[0].weight, vgg.features[0].weight)
    torch.testing.assert_close(model.model.net.slice5._modules["28"].weight, vgg.features[28].weight)
    # a file of the wrong network is refused clearly
    with pytest.raises(WeightsUnavailableError, match="not a torchvision AlexNet"):
        build_lpips("alex", weights_path=path)
