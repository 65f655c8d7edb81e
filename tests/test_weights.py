"""Weights registry: offline errors, import with hash check, safe loading, the allow_random path."""

import time

import pytest
import torch

from genkit import weights
from genkit.cli import main as cli_main
from genkit.errors import WeightsUnavailableError
from genkit.nn.vgg import VGG19Encoder


def test_missing_weights_offline_error_names_file_cache_and_import_command(_isolated_weights_dir):
    t0 = time.time()
    with pytest.raises(WeightsUnavailableError) as exc:
        weights.resolve("vgg19")
    msg = str(exc.value)
    assert time.time() - t0 < 5
    assert "vgg19-dcbb9e9d.pth" in msg
    assert str(_isolated_weights_dir) in msg
    assert "genkit weights import vgg19" in msg
    assert "allow_random" in msg


def test_download_failure_is_reported_quickly(monkeypatch):
    monkeypatch.setenv("GENKIT_OFFLINE", "0")

    def refuse(*a, **k):
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    with pytest.raises(WeightsUnavailableError, match="download failed .*name resolution"):
        weights.resolve("inception-fid")


def test_import_checks_hash(tmp_path, capsys):
    bogus = tmp_path / "vgg19.pth"
    torch.save({"w": torch.zeros(1)}, bogus)
    assert cli_main(["weights", "import", "vgg19", str(bogus)]) == 2
    err = capsys.readouterr().err
    assert "does not match 'vgg19'" in err and str(bogus) in err
    assert weights.status("vgg19") == "missing"


def test_import_and_status_with_matching_prefix(tmp_path, monkeypatch):
    f = tmp_path / "w.pth"
    torch.save({"features.0.weight": torch.ones(2)}, f)
    digest = weights.sha256_file(f)
    entry = weights.WeightsEntry("toy", "toy-file.pth", "http://invalid/toy.pth", digest[:8], "toy")
    monkeypatch.setitem(weights.REGISTRY, "toy", entry)
    assert weights.status("toy") == "missing"
    dest = weights.import_weights("toy", f)
    assert dest.name == "toy-file.pth" and weights.status("toy") == "present"
    state = weights.load_state_dict("toy")
    assert torch.equal(state["features.0.weight"], torch.ones(2))
    assert weights.provenance()["toy"]["sha256"] == digest


def test_cached_file_with_wrong_hash_is_refused(_isolated_weights_dir):
    (_isolated_weights_dir / "vgg19-dcbb9e9d.pth").write_bytes(b"not the real file")
    assert weights.status("vgg19") == "hash mismatch"
    with pytest.raises(WeightsUnavailableError, match="expected a hash starting with dcbb9e9d"):
        weights.resolve("vgg19")


def test_loading_is_safe_no_arbitrary_unpickling(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    f = tmp_path / "evil.pth"
    torch.save({"x": Evil()}, f)
    with pytest.raises(WeightsUnavailableError, match="cannot be loaded safely"):
        weights.load_state_dict("vgg19", path=f)


def test_allow_random_is_loud_and_recorded():
    with pytest.raises(WeightsUnavailableError):
        VGG19Encoder(taps=("relu1_1",))
    with pytest.warns(RuntimeWarning, match="RANDOM WEIGHTS"):
        enc = VGG19Encoder(taps=("relu1_1", "relu3_1"), allow_random=True)
    assert enc.random_weights
    assert weights.provenance()["vgg19"]["random"] is True
    assert weights.used_random_weights()


def test_vgg_loads_an_explicit_weights_file_through_the_real_path(tmp_path):
    from torchvision.models import vgg19

    net = vgg19(weights=None)
    f = tmp_path / "my-vgg19.pth"
    torch.save(net.state_dict(), f)
    enc = VGG19Encoder(taps=("relu2_1",), weights_path=str(f))
    assert not enc.random_weights
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        ref = net.features[:7](((x - enc.normalize.mean) / enc.normalize.std))
    torch.testing.assert_close(enc(x)["relu2_1"], ref)
