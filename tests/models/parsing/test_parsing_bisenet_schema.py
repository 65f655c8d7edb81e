"""Parsers in another schema: BiSeNet's class order, its declared mapping to Helen-11, and ``load_parser`` handing
19-class parsers (BiSeNet, genkit's own celebamask19 checkpoints) to the editor, the parsing loss and the
mask-consistency metric in the schema they expect."""

import numpy as np
import pytest
import torch
from fixtures.published_weights import write_bisenet_file
from torch import nn
from torch.nn import functional as F

from genkit.data.schemas import (BISENET19, BISENET_TO_HELEN, CELEBAMASK19, CELEBAMASK_TO_HELEN, HELEN11,
                                 LabelSchema, find_mapping)
from genkit.core.errors import CheckpointError
from genkit.metrics.mask_consistency import MaskConsistency
from genkit.models.parsing import ParserNet, ParsingLoss, load_mask_consistency, load_parser
from genkit.models.parsing.bisenet import BiSeNetParser
from genkit.models.parsing.checkpoint import make_info_block
from genkit.models.parsing.mapped import SchemaMappedParser, adapt_parser

pytestmark = pytest.mark.usefixtures("one_thread")

# face-parsing.PyTorch's label order (its training data's numbering, not CelebAMask-HQ's listing order)
BISENET_ORDER = ["background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear", "ear_r",
                 "nose", "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth", "hair", "hat"]
# the Helen-11 label of each BiSeNet label, written out by hand
H = {name: i for i, name in enumerate(HELEN11.classes)}
BISENET_IN_HELEN = [H["background"], H["skin"], H["left_brow"], H["right_brow"], H["left_eye"], H["right_eye"],
                    H["skin"], H["background"], H["background"], H["background"], H["nose"], H["inner_mouth"],
                    H["upper_lip"], H["lower_lip"], H["background"], H["background"], H["background"], H["hair"],
                    H["background"]]


class OneHotParser(nn.Module):
    """A stand-in parser whose logits are a confident one-hot encoding of a fixed label map."""

    def __init__(self, labels: torch.Tensor, schema: LabelSchema, confidence: float = 8.0):
        super().__init__()
        self.register_buffer("labels", labels)
        self.schema, self.num_classes, self.image_size, self.confidence = schema, schema.num_classes, 32, confidence
        self.scale = nn.Parameter(torch.ones(()))  # so freezing has something to freeze

    def forward(self, x):
        onehot = F.one_hot(self.labels, self.num_classes).permute(2, 0, 1).float()
        return (self.confidence * self.scale * onehot).expand(x.shape[0], -1, -1, -1) + 0 * x.mean()


def bisenet_label_map(size: int = 32) -> torch.Tensor:
    """Every BiSeNet class in a band of the map (a known synthetic label map in the parser's class order)."""
    labels = torch.arange(size * size).reshape(size, size) * 19 // (size * size)
    return labels.long()


def test_bisenet_schema_is_its_published_class_order():
    assert list(BISENET19.classes) == BISENET_ORDER and BISENET19.name == "bisenet19"
    assert set(BISENET19.classes) == set(CELEBAMASK19.classes) and BISENET19.classes != CELEBAMASK19.classes
    for a, b in BISENET19.flip_pairs:  # left/right pairs swap on a flip
        assert {BISENET19.classes[a][2:], BISENET19.classes[b][2:]} in ({"brow"}, {"eye"}, {"ear"})
    assert BISENET_TO_HELEN.lut().tolist() == BISENET_IN_HELEN
    assert find_mapping(BISENET19, HELEN11) is BISENET_TO_HELEN
    assert find_mapping(CELEBAMASK19, HELEN11) is CELEBAMASK_TO_HELEN
    assert find_mapping(HELEN11, BISENET19) is None
    # a permutation onto CelebAMask-HQ's own numbering is declared too
    to_celeba = find_mapping(BISENET19, CELEBAMASK19)
    assert [CELEBAMASK19.classes[i] for i in to_celeba.lut()] == BISENET_ORDER


def test_label_map_in_bisenet_order_comes_out_in_helen11():
    labels19 = bisenet_label_map()
    assert set(labels19.unique().tolist()) == set(range(19))
    mapped = adapt_parser(OneHotParser(labels19, BISENET19), "helen11")
    assert isinstance(mapped, SchemaMappedParser) and mapped.num_classes == 11 and mapped.schema == HELEN11
    out = mapped(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 11, 32, 32)
    expected = torch.tensor(BISENET_IN_HELEN)[labels19]
    assert torch.equal(out.argmax(1), expected.expand(2, -1, -1))
    # log of summed probabilities: a distribution over the target classes
    torch.testing.assert_close(out.exp().sum(1), torch.ones(2, 32, 32))


def test_summed_probabilities_not_the_argmax_of_the_source():
    """hair 0.4 / neck 0.3 / cloth 0.3: hair is the source's argmax, but background (neck + cloth) is more likely."""
    p = torch.zeros(19, 1, 1)
    p[17], p[14], p[16] = 0.4, 0.3, 0.3
    probe = OneHotParser(torch.zeros(1, 1, dtype=torch.long), BISENET19)
    probe.forward = lambda x: torch.log(p.clamp_min(1e-12)).unsqueeze(0)
    out = adapt_parser(probe, HELEN11)(torch.rand(1, 3, 1, 1))
    torch.testing.assert_close(out.exp()[0, :, 0, 0][[H["background"], H["hair"]]], torch.tensor([0.6, 0.4]))
    assert int(out.argmax(1)) == H["background"]


def test_same_schema_is_returned_as_is_and_undeclared_mappings_are_refused():
    parser = OneHotParser(bisenet_label_map(), BISENET19)
    assert adapt_parser(parser, "bisenet19") is parser and adapt_parser(parser, None) is parser
    with pytest.raises(CheckpointError, match="trained for schema 'bisenet19'.*'three'"):
        adapt_parser(parser, LabelSchema("three", ("a", "b", "c")), where="my-parser")


def _parser_checkpoint(path, schema, size=32):
    torch.manual_seed(0)
    net = ParserNet(schema.num_classes, base_channels=4, depth=2)
    torch.save({"genkit_parser": make_info_block(schema, size, net),
                "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}}, path)
    return path, net.eval()


def test_genkit_celebamask19_checkpoint_is_mapped_to_helen(tmp_path):
    path, net = _parser_checkpoint(tmp_path / "p19.ckpt", CELEBAMASK19)
    parser = load_parser(path, expected_schema="helen11")
    assert parser.num_classes == 11 and parser.schema == HELEN11 and parser.source_schema == CELEBAMASK19
    assert parser.image_size == 32 and parser.multiple == net.multiple and parser.class_weights is None
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        probs19 = net(x).softmax(1)
        by_hand = torch.zeros(2, 11, 32, 32)
        for s, t in enumerate(CELEBAMASK_TO_HELEN.lut()):
            by_hand[:, t] += probs19[:, s]
        torch.testing.assert_close(parser(x).exp(), by_hand, rtol=1e-4, atol=1e-5)
    # without an expected schema it is the 19-class parser itself
    assert load_parser(path).num_classes == 19


def test_bisenet_file_is_mapped_to_helen_and_to_celebamask_numbering(tmp_path):
    path = tmp_path / "79999_iter.pth"
    write_bisenet_file(path, seed=2)
    helen = load_parser(path, expected_schema="helen11")
    assert isinstance(helen.parser, BiSeNetParser) and helen.num_classes == 11
    celeba = load_parser(path, expected_schema=CELEBAMASK19)
    celeba.parser.input_size = helen.parser.input_size = None  # small inputs as they are (speed)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        raw = celeba.parser(x)
        out = celeba(x)
    perm = find_mapping(BISENET19, CELEBAMASK19).lut()
    assert torch.equal(out.argmax(1), torch.as_tensor(perm)[raw.argmax(1)])


# ------------------------------------------------------------------------------------------- consumers
def test_parsing_loss_accepts_a_19_class_parser(tmp_path):
    path, net = _parser_checkpoint(tmp_path / "p19.ckpt", CELEBAMASK19)
    loss_fn = ParsingLoss(load_parser(path, expected_schema=HELEN11), input_range="unit")
    image = torch.rand(2, 3, 32, 32, requires_grad=True)
    target = torch.randint(0, 11, (2, 32, 32))
    loss = loss_fn(image, target)
    with torch.no_grad():
        probs19 = net(image).softmax(1)
        helen = torch.stack([probs19[:, torch.as_tensor(CELEBAMASK_TO_HELEN.lut()) == t].sum(1) for t in range(11)], 1)
        nll = F.nll_loss(helen.log(), target)
    torch.testing.assert_close(loss.detach(), nll, rtol=1e-4, atol=1e-5)
    loss.backward()
    assert image.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in loss_fn.parser.parameters())


def test_mask_consistency_accepts_a_19_class_parser(tmp_path):
    labels19 = bisenet_label_map()
    helen_truth = torch.tensor(BISENET_IN_HELEN)[labels19]
    metric = MaskConsistency(adapt_parser(OneHotParser(labels19, BISENET19), HELEN11), input_range="unit")
    assert metric.num_classes == 11
    metric.update(torch.rand(2, 3, 32, 32), helen_truth.expand(2, -1, -1))
    scores = metric.compute()
    assert float(scores["miou"]) == pytest.approx(1.0) and float(scores["pixel_acc"]) == pytest.approx(1.0)
    # and from a checkpoint, with the expected schema
    path, _ = _parser_checkpoint(tmp_path / "p19.ckpt", CELEBAMASK19)
    m = load_mask_consistency(path, expected_schema="helen11", input_range="unit")
    m.update(torch.rand(1, 3, 32, 32), torch.randint(0, 11, (1, 32, 32)))
    assert m.num_classes == 11 and 0.0 <= float(m.compute()["miou"]) <= 1.0


def test_portrait_model_and_editor_accept_19_class_parsers(tmp_path):
    from genkit.models.portrait.checkpoint import export_generator
    from genkit.models.portrait.editor import PortraitEditor
    from genkit.models.portrait.module import PortraitGAN
    from fixtures.tiny_portrait import tiny_config, tiny_generator

    p19, _ = _parser_checkpoint(tmp_path / "p19.ckpt", CELEBAMASK19)
    model = PortraitGAN(image_size=32, **tiny_config(losses={"vgg": 0.0}, validation={"lpips": False},
                                                     parser={"checkpoint": str(p19)}))
    assert model.parser.num_classes == 11 and model.parser.schema == HELEN11

    torch.manual_seed(0)
    export = export_generator(tiny_generator(32, seed=None).eval(), tmp_path / "gen.pt",
                              ema=False)
    bisenet = tmp_path / "79999_iter.pth"
    write_bisenet_file(bisenet, seed=6)
    for parser in (p19, bisenet):
        editor = PortraitEditor.from_checkpoint(export, parser=parser)
        assert editor.parser.num_classes == 11
        photo = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
        out = editor.reconstruct(torch.from_numpy(photo).permute(2, 0, 1).float() / 255)
        assert out.mask.shape == (32, 32) and 0 <= int(out.mask.min()) and int(out.mask.max()) < 11
