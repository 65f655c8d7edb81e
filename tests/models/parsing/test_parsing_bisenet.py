"""BiSeNet face-parser backend: the published ``79999_iter.pth`` layout loads strictly, the forward pass equals the
published architecture, the input protocol (ImageNet mean/std, 512 px) and the registry entry; no network."""

import pytest
import torch
from fixtures.published_weights import bisenet_shapes, random_state, write_bisenet_file
from torch.nn import functional as F

from genkit.core import weights
from genkit.cli import main as cli_main
from genkit.data.schemas import BISENET19
from genkit.core.errors import CheckpointError, WeightsUnavailableError
from genkit.models.parsing import load_parser, load_parser_with_info
from genkit.models.parsing.bisenet import BiSeNet, BiSeNetParser

pytestmark = pytest.mark.usefixtures("one_thread")

PUBLISHED = bisenet_shapes(19)


@pytest.fixture(scope="module")
def state():
    return random_state(PUBLISHED, seed=1)


@pytest.fixture(scope="module")
def net(state):
    net = BiSeNet(19)
    net.load_state_dict(state, strict=True)
    return net.eval()


# ------------------------------------------------------------------------------------------- key layout
def test_state_dict_has_exactly_the_published_keys_and_shapes():
    ours = {k: tuple(v.shape) for k, v in BiSeNet(19).state_dict().items()}
    assert set(ours) - set(PUBLISHED) == set(), "keys the published file does not have"
    assert set(PUBLISHED) - set(ours) == set(), "published keys genkit lacks"
    assert ours == PUBLISHED


def test_published_state_loads_strictly_and_unchanged(state):
    net = BiSeNet(19)
    result = net.load_state_dict(state, strict=True)
    assert result.missing_keys == [] and result.unexpected_keys == []
    ours = net.state_dict()
    assert all(torch.equal(ours[k], v) for k, v in state.items())


# ------------------------------------------------------------------------------------------- forward pass
def _bn(x, sd, p):
    return F.batch_norm(x, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"], sd[f"{p}.bias"],
                        False, 0.0, 1e-5)


def _conv(x, sd, p, stride=1, pad=0):
    return F.conv2d(x, sd[f"{p}.weight"], None, stride, pad)


def _cbr(x, sd, p, pad):
    return F.relu(_bn(_conv(x, sd, f"{p}.conv", 1, pad), sd, f"{p}.bn"))


def _block(x, sd, p, stride):
    r = F.relu(_bn(_conv(x, sd, f"{p}.conv1", stride, 1), sd, f"{p}.bn1"))
    r = _bn(_conv(r, sd, f"{p}.conv2", 1, 1), sd, f"{p}.bn2")
    short = _bn(_conv(x, sd, f"{p}.downsample.0", stride), sd, f"{p}.downsample.1") \
        if f"{p}.downsample.0.weight" in sd else x
    return F.relu(short + r)


def _arm(x, sd, p):
    feat = _cbr(x, sd, f"{p}.conv", 1)
    return feat * torch.sigmoid(_bn(_conv(F.adaptive_avg_pool2d(feat, 1), sd, f"{p}.conv_atten"), sd, f"{p}.bn_atten"))


def reference_forward(x, sd):
    """The published BiSeNet (eval mode) written as plain functions of the state dict, from its model.py."""
    h = F.max_pool2d(F.relu(_bn(_conv(x, sd, "cp.resnet.conv1", 2, 3), sd, "cp.resnet.bn1")), 3, 2, 1)
    feats = []
    for i, stride in zip(range(1, 5), (1, 2, 2, 2)):
        h = _block(_block(h, sd, f"cp.resnet.layer{i}.0", stride), sd, f"cp.resnet.layer{i}.1", 1)
        feats.append(h)
    f8, f16, f32 = feats[1:]
    avg = _cbr(F.adaptive_avg_pool2d(f32, 1), sd, "cp.conv_avg", 0)
    s32 = _arm(f32, sd, "cp.arm32") + F.interpolate(avg, f32.shape[-2:], mode="nearest")
    up32 = _cbr(F.interpolate(s32, f16.shape[-2:], mode="nearest"), sd, "cp.conv_head32", 1)
    s16 = _arm(f16, sd, "cp.arm16") + up32
    up16 = _cbr(F.interpolate(s16, f8.shape[-2:], mode="nearest"), sd, "cp.conv_head16", 1)
    fuse = _cbr(torch.cat([f8, up16], 1), sd, "ffm.convblk", 0)
    att = torch.sigmoid(_conv(F.relu(_conv(F.adaptive_avg_pool2d(fuse, 1), sd, "ffm.conv1")), sd, "ffm.conv2"))
    fuse = fuse * att + fuse
    heads = [(fuse, "conv_out"), (up16, "conv_out16"), (up32, "conv_out32")]
    return [F.interpolate(_conv(_cbr(f, sd, f"{name}.conv", 1), sd, f"{name}.conv_out"), x.shape[-2:],
                          mode="bilinear", align_corners=True) for f, name in heads]


@pytest.mark.parametrize("size", [(64, 64), (72, 56)])
def test_forward_equals_the_published_architecture(net, state, size):
    torch.manual_seed(0)
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        ours = net(x)
        ref = reference_forward(x, state)
    assert len(ours) == 3
    for a, b in zip(ours, ref):
        assert a.shape == (2, 19, *size)
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert ours[0].std() > 0.1  # not a degenerate comparison


def test_eval_mode_uses_running_statistics(net):
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(net(x[:1])[0], net(x)[0][:1], rtol=1e-3, atol=1e-3)


# ------------------------------------------------------------------------------------------- input protocol
def test_parser_normalises_with_imagenet_mean_and_std(net):
    """Pixel (0.714, 0.456, 0.631) is mean + (1, 0, 1) std; (0.485, 0.232, 0.406) is mean + (0, -1, 0) std."""
    parser = BiSeNetParser(net, input_size=None).eval()
    seen = {}
    handle = parser.net.cp.register_forward_pre_hook(lambda m, args: seen.update(x=args[0].clone()))
    x = torch.empty(1, 3, 32, 32)
    x[0, :, :, :16] = torch.tensor([0.485 + 0.229, 0.456, 0.406 + 0.225]).view(3, 1, 1)
    x[0, :, :, 16:] = torch.tensor([0.485, 0.456 - 0.224, 0.406]).view(3, 1, 1)
    with torch.no_grad():
        out = parser(x)
    handle.remove()
    torch.testing.assert_close(seen["x"][0, :, 5, 3], torch.tensor([1.0, 0.0, 1.0]), rtol=0, atol=1e-5)
    torch.testing.assert_close(seen["x"][0, :, 5, 20], torch.tensor([0.0, -1.0, 0.0]), rtol=0, atol=1e-5)
    assert out.shape == (1, 19, 32, 32)
    torch.testing.assert_close(out, net(seen["x"])[0])  # the main head's logits


def test_parser_resizes_to_its_input_size_and_back(net):
    parser = BiSeNetParser(net, input_size=64).eval()
    seen = {}
    handle = parser.net.cp.register_forward_pre_hook(lambda m, args: seen.update(shape=tuple(args[0].shape)))
    with torch.no_grad():
        out = parser(torch.rand(2, 3, 32, 48))
    handle.remove()
    assert seen["shape"] == (2, 3, 64, 64) and out.shape == (2, 19, 32, 48)
    assert BiSeNetParser().input_size == 512 and BiSeNetParser().image_size == 512  # the published protocol
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        parser(torch.rand(3, 32, 32))


def test_parser_is_differentiable_wrt_the_image(net):
    parser = BiSeNetParser(net, input_size=64).eval().requires_grad_(False)
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    parser(x).logsumexp(1).mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------------- loading files
def test_load_parser_reads_the_published_file(tmp_path):
    path = tmp_path / "79999_iter.pth"
    state = write_bisenet_file(path, seed=3)
    parser, info = load_parser_with_info(path)
    assert isinstance(parser, BiSeNetParser) and not parser.training
    assert info.schema == BISENET19 and info.image_size == 512 and parser.num_classes == 19
    assert parser.schema == BISENET19 and parser.class_weights is None
    assert torch.equal(parser.net.state_dict()["conv_out.conv_out.weight"], state["conv_out.conv_out.weight"])
    assert weights.provenance()["bisenet-celebamask"]["sha256"] == weights.sha256_file(path)


def test_legacy_serialisation_and_missing_bn_counters_load(tmp_path):
    """The 2019 file predates torch's zip format; older saves also lack BN ``num_batches_tracked``."""
    path = tmp_path / "legacy.pth"
    state = write_bisenet_file(path, seed=4, legacy_format=True)
    assert torch.equal(load_parser(path).net.state_dict()["cp.resnet.conv1.weight"], state["cp.resnet.conv1.weight"])
    old = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save({"state_dict": {f"module.{k}": v for k, v in old.items()}}, tmp_path / "wrapped.pth")
    assert isinstance(load_parser(tmp_path / "wrapped.pth"), BiSeNetParser)  # DataParallel prefix, wrapped dict


def test_wrong_files_are_clear_errors(tmp_path):
    bad = random_state(bisenet_shapes(11), seed=0)  # another number of classes
    torch.save(bad, tmp_path / "eleven.pth")
    with pytest.raises(CheckpointError, match=r"eleven.pth: .*BiSeNet.*conv_out.conv_out.weight"):
        load_parser(tmp_path / "eleven.pth")
    torch.save({"foo": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match=r"other.pth: not a face-parser checkpoint.*79999_iter.pth"):
        load_parser(tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="nope.pth.*does not exist"):
        load_parser(tmp_path / "nope.pth")


# ------------------------------------------------------------------------------------------- registry
def test_registry_entry_offline_error_names_the_file_and_the_import(_isolated_weights_dir):
    entry = weights.get_entry("bisenet-celebamask")
    assert entry.file_name == "79999_iter.pth"
    assert entry.sha256_prefix == "468e13ca13a9b43cc0881a9f99083a430e9c0a38abd935431d1c28ee94b26567"
    assert entry.url.startswith("https://huggingface.co/") and entry.url.endswith("/79999_iter.pth")
    with pytest.raises(WeightsUnavailableError) as exc:
        load_parser("bisenet-celebamask")
    msg = str(exc.value)
    assert "79999_iter.pth" in msg and str(_isolated_weights_dir) in msg
    assert "genkit weights import bisenet-celebamask" in msg


def test_registry_name_loads_an_imported_file(tmp_path, monkeypatch):
    import dataclasses

    f = tmp_path / "download" / "79999_iter.pth"
    state = write_bisenet_file(f, seed=5)
    entry = weights.get_entry("bisenet-celebamask")
    monkeypatch.setitem(weights.REGISTRY, entry.name, dataclasses.replace(entry, sha256_prefix=weights.sha256_file(f)))
    assert cli_main(["weights", "import", "bisenet-celebamask", str(f)]) == 0
    parser = load_parser("bisenet-celebamask")
    assert isinstance(parser, BiSeNetParser)
    assert torch.equal(parser.net.state_dict()["ffm.conv1.weight"], state["ffm.conv1.weight"])


def test_import_refuses_a_file_that_is_not_the_published_one(tmp_path, capsys):
    f = tmp_path / "79999_iter.pth"
    write_bisenet_file(f)
    assert cli_main(["weights", "import", "bisenet-celebamask", str(f)]) == 2
    assert "does not match 'bisenet-celebamask'" in capsys.readouterr().err


def test_weights_list_shows_the_new_entries(capsys):
    assert cli_main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    for name, file in (("bisenet-celebamask", "79999_iter.pth"), ("vgg19-caffe", "vgg19-d01eb7cb.pth")):
        line = next(ln for ln in out.splitlines() if ln.startswith(name + " "))
        assert file in line and "missing" in line
    # the columns stay aligned with the longer names
    rows = {name: next(ln for ln in out.splitlines() if ln.startswith(name + " ")) for name in weights.REGISTRY}
    assert len({rows[name].index(e.file_name) for name, e in weights.REGISTRY.items()}) == 1
