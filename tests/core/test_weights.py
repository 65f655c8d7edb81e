"""Weights registry: offline errors, import with hash check, safe loading, the allow_random path."""

import contextlib
import dataclasses
import hashlib
import io
import socket
import threading
import time
from pathlib import Path

import pytest
import torch

from genkit.core import weights
from genkit.cli import main as cli_main
from genkit.core.errors import ConfigError, GenkitError, WeightsFileError, WeightsUnavailableError
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
    import urllib.request

    monkeypatch.setenv("GENKIT_OFFLINE", "0")

    def refuse(*a, **k):
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
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
    with pytest.raises(WeightsFileError, match="expected a hash starting with dcbb9e9d"):
        weights.resolve("vgg19")


def test_loading_is_safe_no_arbitrary_unpickling(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    f = tmp_path / "evil.pth"
    torch.save({"x": Evil()}, f)
    with pytest.raises(WeightsFileError, match=r"cannot be loaded safely .*Unsupported global: .*print") as e:
        weights.load_state_dict("vgg19", path=f)
    assert "\n" not in str(e.value) and "\x1b" not in str(e.value)


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


# --------------------------------------------------------------------------------- downloads (issue 11.4)


@pytest.fixture
def online(monkeypatch):
    """Downloads allowed (tests stay offline: every server is a local one)."""
    monkeypatch.setenv("GENKIT_OFFLINE", "0")


def _entry(monkeypatch, url=None, data: bytes | None = None, full_hash: bool = False, hf=None, name="toy"):
    digest = hashlib.sha256(data or b"").hexdigest()
    entry = weights.WeightsEntry(name, f"toy-{digest[:8]}.pth", url, None if full_hash else digest[:8], "toy weights",
                                 sha256=digest if full_hash else None, hf=hf)
    monkeypatch.setitem(weights.REGISTRY, name, entry)
    return entry


def _state_bytes(state) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


@contextlib.contextmanager
def silent_server():
    """A TCP server that accepts connections and never answers (a hung mirror)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    held, stop = [], threading.Event()

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
                held.append(conn)
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.getsockname()[1]}/weights.pth"
    finally:
        stop.set()
        t.join(2)
        for c in held:
            c.close()
        srv.close()


@contextlib.contextmanager
def http_server(body: bytes, declared_length: int | None = None):
    """A local HTTP server answering every GET with ``body`` (optionally claiming another Content-Length)."""
    import http.server

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", str(declared_length or len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/toy.pth"
    finally:
        srv.shutdown()
        srv.server_close()


def _leftovers(folder) -> list:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_download_from_a_silent_server_times_out(online, monkeypatch, _isolated_weights_dir):
    monkeypatch.setenv("GENKIT_DOWNLOAD_TIMEOUT", "1")
    with silent_server() as url:
        _entry(monkeypatch, url, b"whatever")
        t0 = time.time()
        with pytest.raises(WeightsUnavailableError, match=r"download failed .*timed out after 1 s"):
            weights.resolve("toy")
        assert time.time() - t0 < 5
    assert list(_isolated_weights_dir.iterdir()) == []  # nothing half-landed


def test_download_timeout_default_and_bad_values(monkeypatch):
    monkeypatch.delenv("GENKIT_DOWNLOAD_TIMEOUT", raising=False)
    assert weights.download_timeout() == 30.0
    monkeypatch.setenv("GENKIT_DOWNLOAD_TIMEOUT", "2.5")
    assert weights.download_timeout() == 2.5
    monkeypatch.setenv("GENKIT_DOWNLOAD_TIMEOUT", "soon")
    with pytest.raises(ConfigError, match="GENKIT_DOWNLOAD_TIMEOUT"):
        weights.download_timeout()


def test_download_is_verified_before_it_lands(online, monkeypatch, _isolated_weights_dir):
    good = _state_bytes({"w": torch.ones(3)})
    entry = _entry(monkeypatch, "http://invalid/toy.pth", good)
    with http_server(b"a different file") as url:  # the mirror serves the wrong bytes
        monkeypatch.setitem(weights.REGISTRY, "toy", dataclasses.replace(entry, url=url))
        with pytest.raises(WeightsUnavailableError, match="sha256 .* does not match"):
            weights.resolve("toy")
    assert list(_isolated_weights_dir.iterdir()) == []
    with http_server(good[:100], declared_length=len(good)) as url:  # the connection drops half way
        monkeypatch.setitem(weights.REGISTRY, "toy", dataclasses.replace(entry, url=url))
        with pytest.raises(WeightsUnavailableError, match="download failed"):
            weights.resolve("toy")
    assert list(_isolated_weights_dir.iterdir()) == []
    with http_server(good) as url:
        monkeypatch.setitem(weights.REGISTRY, "toy", dataclasses.replace(entry, url=url))
        path = weights.resolve("toy")
    assert path.read_bytes() == good and _leftovers(_isolated_weights_dir) == []
    assert torch.equal(weights.load_state_dict("toy")["w"], torch.ones(3))


def test_present_file_with_a_wrong_hash_is_never_replaced_by_random_weights(_isolated_weights_dir, monkeypatch):
    monkeypatch.setattr(weights, "_PROVENANCE", {})
    bad = _isolated_weights_dir / "vgg19-dcbb9e9d.pth"
    bad.write_bytes(b"a truncated download")
    with pytest.raises(WeightsFileError) as e:
        VGG19Encoder(taps=("relu1_1",), allow_random=True)
    msg = str(e.value)
    assert str(bad) in msg and "sha256" in msg and "does not match" in msg
    assert "delete" in msg and "genkit weights import vgg19" in msg and "--allow-random" in msg
    assert "vgg19" not in weights.provenance()  # no random weights were recorded
    from genkit.metrics.inception import build_inception

    (_isolated_weights_dir / "weights-inception-2015-12-05-6726825d.pth").write_bytes(b"x")
    with pytest.raises(WeightsFileError, match="does not match"):
        build_inception(allow_random=True)


def _save(path, obj):
    torch.save(obj, path)
    return path


@pytest.mark.parametrize("make, message", [
    (lambda p: _save(p, torch.zeros(3)), "holds a Tensor, not a state dict"),
    (lambda p: _save(p, [torch.zeros(3)]), "holds a list, not a state dict"),
    (lambda p: _save(p, {"w": torch.tensor([1.0, float("nan")])}), "NaN or infinite values in 'w'"),
    (lambda p: _save(p, {"a": torch.zeros(1), "w": torch.tensor([float("inf")])}), "NaN or infinite values in 'w'"),
    (lambda p: _save(p, {"w": "not a tensor"}), "'w' is a str, not a tensor"),
    (lambda p: p.write_bytes(_state_bytes({"w": torch.zeros(1000)})[:300]) and p, "truncated or corrupt"),
    (lambda p: p.write_bytes(b"") or p, "empty"),
    (lambda p: p.mkdir() or p, "is a directory"),
])
def test_every_bad_weights_file_is_one_line_naming_it(tmp_path, make, message):
    path = make(tmp_path / "w.pth")
    with pytest.raises(GenkitError) as e:
        weights.load_state_dict("vgg19", path=path)
    msg = str(e.value)
    assert msg.startswith(str(path)) and message in msg and "\n" not in msg, msg


def test_wrong_keys_or_shapes_are_one_line_naming_the_file(tmp_path, capsys):
    from torchvision.models.vgg import cfgs, make_layers

    state = {f"features.{k}": v for k, v in make_layers(cfgs["E"]).state_dict().items()}  # the trunk is enough
    state["features.0.weight"] = torch.zeros(32, 3, 3, 3)
    del state["features.2.bias"]
    state["features.99.weight"] = torch.zeros(1)
    path = _save(tmp_path / "odd-vgg.pth", state)
    with pytest.raises(WeightsFileError) as e:
        VGG19Encoder(taps=("relu2_1",), weights_path=str(path))
    msg = str(e.value)
    assert msg.startswith(str(path)) and "\n" not in msg
    assert "missing features.2.bias" in msg and "unexpected features.99.weight" in msg
    assert "features.0.weight (32, 3, 3, 3) where (64, 3, 3, 3) is expected" in msg
    rc = cli_main(["stylize", str(path), str(path), "-o", str(tmp_path / "o.png"), "--optimize",
                   "--vgg-weights", str(path)])
    assert rc == 2


def test_full_sha256_entries_are_verified_in_full(monkeypatch, tmp_path):
    data = _state_bytes({"w": torch.ones(2)})
    entry = _entry(monkeypatch, "http://invalid/x.pth", data, full_hash=True)
    assert entry.sha256_prefix is None and len(entry.sha256) == 64
    src = tmp_path / "w.pth"
    src.write_bytes(data)
    assert weights.import_weights("toy", src).read_bytes() == data
    assert weights.status("toy") == "present"
    same_prefix = dataclasses.replace(entry, sha256=entry.sha256[:60] + "0000")  # only the tail differs
    monkeypatch.setitem(weights.REGISTRY, "toy", same_prefix)
    assert weights.status("toy") == "hash mismatch"
    with pytest.raises(WeightsFileError, match="does not match"):
        weights.resolve("toy")


# ------------------------------------------------------------------------------------- Hugging Face source


@pytest.fixture
def fake_hub(monkeypatch):
    """Replace huggingface_hub.hf_hub_download with a local fake; records its calls."""
    import huggingface_hub

    calls = []
    files: dict[tuple[str, str], bytes] = {}

    def fake(repo_id, filename, *, revision=None, local_dir=None, etag_timeout=None, **kw):
        from huggingface_hub import constants

        calls.append({"repo_id": repo_id, "filename": filename, "revision": revision, "local_dir": local_dir,
                      "etag_timeout": etag_timeout, "download_timeout": constants.HF_HUB_DOWNLOAD_TIMEOUT})
        if (repo_id, filename) not in files:
            raise OSError(f"404 for {repo_id}/{filename}")
        out = Path(local_dir) / filename
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(files[(repo_id, filename)])
        return str(out)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake)
    return calls, files


def test_hugging_face_source_downloads_verifies_and_lands(online, monkeypatch, fake_hub, _isolated_weights_dir):
    calls, files = fake_hub
    data = _state_bytes({"conv.weight": torch.ones(2, 2)})
    hf = weights.HFSource("genkit/face-parsing", "bisenet.pth", revision="abc123")
    entry = _entry(monkeypatch, None, data, full_hash=True, hf=hf, name="toy-hf")
    monkeypatch.setenv("GENKIT_DOWNLOAD_TIMEOUT", "7")
    files[("genkit/face-parsing", "bisenet.pth")] = data
    path = weights.resolve("toy-hf")
    assert path == weights.weights_path("toy-hf") and path.read_bytes() == data
    assert calls[0]["revision"] == "abc123" and calls[0]["etag_timeout"] == 7.0
    assert calls[0]["download_timeout"] == 7
    assert Path(calls[0]["local_dir"]).parent == path.parent  # a temporary folder next to the cache file
    assert _leftovers(_isolated_weights_dir) == []
    assert "huggingface.co/genkit/face-parsing" in weights.missing_message("toy-hf")
    assert entry.source() == "hf://genkit/face-parsing/bisenet.pth@abc123"


def test_hugging_face_source_wrong_bytes_and_offline(online, monkeypatch, fake_hub, _isolated_weights_dir):
    calls, files = fake_hub
    data = _state_bytes({"w": torch.ones(1)})
    _entry(monkeypatch, None, data, full_hash=True, hf=weights.HFSource("genkit/x", "x.pth"), name="toy-hf")
    files[("genkit/x", "x.pth")] = b"tampered"
    with pytest.raises(WeightsUnavailableError, match="sha256 .* does not match"):
        weights.resolve("toy-hf")
    assert list(_isolated_weights_dir.iterdir()) == []
    del files[("genkit/x", "x.pth")]
    with pytest.raises(WeightsUnavailableError, match="download failed .*404"):
        weights.resolve("toy-hf")
    monkeypatch.setenv("GENKIT_OFFLINE", "1")
    n = len(calls)
    with pytest.raises(WeightsUnavailableError, match="downloads are off"):
        weights.resolve("toy-hf")
    assert len(calls) == n  # offline: the hub is never called
