"""``genkit export onnx``: the networks of a trained model as ONNX files, each checked against PyTorch.

* face parsers (genkit's ParserNet and the BiSeNet): ``parser.onnx``, RGB in [0, 1] (N, 3, H, W) -> logits
  (N, C, H, W), batch and size dynamic (ParserNet: sides divisible by ``multiple``; BiSeNet: genkit first resizes
  photos to 512 x 512, recorded as ``resize_to``);
* reshuffle decoders: ``encoder.onnx`` (the VGG-19 the decoders invert: image -> one output per level) and one
  ``decoder_<from>_to_<to>.onnx`` per decoder; the matching stays in Python;
* the portrait generator: ``synthesis.onnx`` (:mod:`genkit.apps.export.synthesis`).

Exports run in eval mode (batch norm with its running statistics, no dropout; a graph with a training-mode batch
norm or a dropout is refused). Each file's metadata records genkit's version, the kind, the weights' identity
(sha256 of the model folder's ``model.safetensors`` for the same weights) and the input/output conventions. Each
file is then run with onnxruntime on inputs of another batch and size than the trace (for parsers also a real photo,
``skimage.data.astronaut()`` at 512 px) and compared with PyTorch: images must agree within 1e-4, logits and
features within 1e-4 times their largest magnitude, parser labels exactly.
"""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from genkit.apps.export.trained import DECODERS, PARSER, PORTRAIT, Trained, open_trained
from genkit.core import model_folders
from genkit.core.errors import CheckpointError
from genkit.core.outputs import check_output_dir

OPSET = 17
IMAGE_TOLERANCE = 1e-4  # max absolute difference, images in [0, 1]


@dataclass
class Graph:
    """One network to export: ``checks`` are lists of input tensors (one per input name) it is compared on."""

    file: str
    module: nn.Module
    inputs: list[str]
    outputs: list[str]
    example: list[torch.Tensor]
    dynamic: dict[str, dict[int, str]]
    output_kind: str  # "image" ([0, 1] or [-1, 1]), "logits" or "features"
    checks: list[list[torch.Tensor]] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)


class _Taps(nn.Module):
    """The VGG-19 encoder returning its taps as a tuple (coarse to fine: the decoders' level order)."""

    def __init__(self, encoder, taps):
        super().__init__()
        self.encoder, self.taps = encoder, list(taps)

    def forward(self, image):
        feats = self.encoder(image, taps=self.taps)
        return tuple(feats[t] for t in self.taps)


def astronaut() -> torch.Tensor:
    """skimage's astronaut (512 x 512 RGB) in [0, 1], (1, 3, 512, 512): the real photo parsers are checked on."""
    from skimage import data

    return torch.from_numpy(data.astronaut().astype(np.float32) / 255.0).permute(2, 0, 1)[None].contiguous()


def _image_axes(*names: str) -> dict[str, dict[int, str]]:
    return {n: {0: "batch", 2: "height", 3: "width"} for n in names}


def parser_graphs(trained: Trained) -> list[Graph]:
    net = trained.network
    meta = {"schema": json.dumps(net.schema.to_dict()), "input": "RGB in [0, 1], (N, 3, H, W)",
            "output": "logits (N, C, H, W); labels = argmax over C", "image_size": str(net.image_size)}
    if trained.block.get("architecture") == "bisenet":
        from genkit.models.parsing.bisenet import INPUT_SIZE, BiSeNetParser

        net = BiSeNetParser(net.net, input_size=None, schema=net.schema).eval()  # resizing stays with the caller
        meta["resize_to"] = str(INPUT_SIZE)
    multiple = int(getattr(net, "multiple", 1))
    meta["multiple"] = str(multiple)
    g = torch.Generator().manual_seed(1)
    odd = torch.rand(2, 3, 6 * max(multiple, 8), 5 * max(multiple, 8), generator=g)
    return [Graph("parser.onnx", net, ["image"], ["logits"], [torch.rand(1, 3, 4 * max(multiple, 8),
                                                                           4 * max(multiple, 8), generator=g)],
                  _image_axes("image", "logits"), "logits", [[odd], [astronaut()]], meta)]


def decoder_graphs(trained: Trained) -> list[Graph]:
    from genkit.models.reshuffle.decoders import check_encoder
    from genkit.nn.vgg import VGG19_CHANNELS, VGG19Encoder

    record, decoders = trained.block, trained.network
    ident = record.get("encoder") or {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the random-weights warning: the card says it
        encoder = VGG19Encoder(taps=decoders.levels, weights="random" if ident.get("random") else "imagenet",
                               variant=ident.get("variant", "torchvision"))
    check_encoder(ident, encoder, f"{trained.source}: decoders")
    g = torch.Generator().manual_seed(1)
    levels = list(decoders.levels)
    graphs = [Graph("encoder.onnx", _Taps(encoder, levels).eval(), ["image"], levels,
                    [torch.rand(1, 3, 64, 64, generator=g)], _image_axes("image", *levels), "features",
                    [[torch.rand(2, 3, 48, 80, generator=g)]],
                    {"input": "RGB in [0, 1], (N, 3, H, W); H, W multiples of 8", "encoder": json.dumps(ident)})]
    for name, dec in decoders.decoders.items():
        c = VGG19_CHANNELS[dec.from_tap]
        out = dec.to_tap or "image"
        graphs.append(Graph(f"decoder_{name}.onnx", dec.eval(), [dec.from_tap], [out],
                            [torch.rand(1, c, 8, 8, generator=g)], _image_axes(dec.from_tap, out),
                            "image" if dec.to_tap is None else "features", [[torch.rand(2, c, 6, 10, generator=g)]],
                            {"input": f"{dec.from_tap} features", "output": dec.to_tap or "image (unclamped)"}))
    return graphs


def portrait_graphs(trained: Trained) -> list[Graph]:
    from genkit.apps.export.synthesis import SynthesisCore, probe_inputs, synthesis_feed

    gen = trained.network
    core = SynthesisCore(gen)
    names = core.input_names()

    def tensors(seeds):
        batch = [probe_inputs(gen, s) for s in seeds]
        feeds = [synthesis_feed(gen, m, c, p, gen.known_background(m)) for m, c, p in batch]
        return [torch.from_numpy(np.concatenate([f[n] for f in feeds])) for n in names]

    dynamic = {n: {0: "batch"} for n in names + ["image"]}
    meta = {"input": "label_map (N, H, W) int64 in the schema; centres (N, crop components, 2) (y, x) px and "
                     "presence (N, components) from genkit.apps.export.synthesis.synthesis_feed; codes (N, latent)",
            "output": "image (N, 3, H, W) in [-1, 1]", "components": json.dumps(list(gen.layout.names)),
            "schema": json.dumps(gen.schema.to_dict()), "image_size": str(gen.image_size)}
    return [Graph("synthesis.onnx", core, names, ["image"], tensors([0]), dynamic, "image", [tensors([1, 2])], meta)]


GRAPHS = {PARSER: parser_graphs, DECODERS: decoder_graphs, PORTRAIT: portrait_graphs}


def check_eval_mode(model, file: str) -> None:
    """Refuse a graph that still trains: a Dropout node or a batch norm in training mode."""
    for node in model.graph.node:
        training = any(a.name == "training_mode" and a.i == 1 for a in node.attribute)
        if node.op_type == "Dropout" or (node.op_type == "BatchNormalization" and training):
            raise CheckpointError(f"{file}: the exported graph has a {node.op_type} in training mode; export in "
                                  "eval mode")


def to_onnx(graph: Graph, metadata: dict) -> bytes:
    """The graph as ONNX bytes (TorchScript exporter, eval mode, dynamic axes) with ``metadata`` recorded."""
    import onnx

    graph.module.eval()
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings of shape checks that hold for every input
        torch.onnx.export(graph.module, tuple(graph.example), buf, dynamo=False, opset_version=OPSET,
                          input_names=graph.inputs, output_names=graph.outputs, dynamic_axes=graph.dynamic,
                          training=torch.onnx.TrainingMode.EVAL, do_constant_folding=True)
    model = onnx.load_from_string(buf.getvalue())
    check_eval_mode(model, graph.file)
    for key, value in {**metadata, **graph.metadata}.items():
        model.metadata_props.add(key=str(key), value=str(value))
    model.producer_name = "genkit"
    onnx.checker.check_model(model)
    return model.SerializeToString()


def compare(graph: Graph, data: bytes) -> dict:
    """Run ``data`` with onnxruntime on every check input and compare with the module; raise when outside the
    tolerance. Returns the largest difference, the bound and (parsers) whether the labels agreed."""
    import onnxruntime as ort

    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    worst, bound = 0.0, np.inf
    for inputs in graph.checks:
        with torch.no_grad():
            want = graph.module(*inputs)
        want = [w.numpy() for w in (want if isinstance(want, tuple) else (want,))]
        got = session.run(graph.outputs, {n: t.numpy() for n, t in zip(graph.inputs, inputs)})
        for w, o in zip(want, got):
            diff = float(np.abs(w - o).max())
            limit = IMAGE_TOLERANCE * (1.0 if graph.output_kind == "image" else max(1.0, float(np.abs(w).max())))
            if graph.output_kind == "image" and graph.file == "synthesis.onnx":
                diff /= 2.0  # [-1, 1] images compared on the [0, 1] scale
            worst, bound = max(worst, diff), min(bound, limit)
            if diff > limit:
                raise CheckpointError(f"{graph.file}: onnxruntime differs from PyTorch by {diff:.3g} (more than "
                                      f"{limit:.3g}) on inputs {[tuple(t.shape) for t in inputs]}")
            if graph.output_kind == "logits" and not np.array_equal(w.argmax(1), o.argmax(1)):
                raise CheckpointError(f"{graph.file}: onnxruntime labels differ from PyTorch's on inputs "
                                      f"{[tuple(t.shape) for t in inputs]}")
    return {"max_abs_diff": worst, "tolerance": bound,
            **({"labels_identical": True} if graph.output_kind == "logits" else {})}


def written_by_genkit(path: Path) -> bool:
    """An ONNX file :func:`to_onnx` wrote: producer ``genkit`` and the ``genkit_version`` metadata."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - any file onnx cannot parse is not one genkit wrote
        return False
    return model.producer_name == "genkit" and any(p.key == "genkit_version" for p in model.metadata_props)


def export_onnx(source: str | Path, out: str | Path, check: bool = True, overwrite: bool = False) -> list[dict]:
    """Write the ONNX files of ``source`` (anything :func:`~genkit.apps.export.trained.open_trained` takes) into
    ``out``, each checked with onnxruntime; returns one report per file (path, inputs, outputs, differences).
    ``overwrite``: replace ONNX files of the same names that genkit wrote (never other files)."""
    from genkit import __version__
    from genkit.core.files import atomic_write_bytes
    from genkit.core.outputs import check_replaceable

    out = check_output_dir(out, "ONNX output folder")
    trained = open_trained(source)
    graphs = GRAPHS[trained.kind](trained)
    present = [g.file for g in graphs if (out / g.file).exists() or (out / g.file).is_symlink()]
    check_replaceable(out, present, written_by_genkit, overwrite, "genkit export")
    metadata = {"genkit_version": __version__, "genkit_model": trained.kind, "architecture": trained.architecture,
                "weights_sha256": model_folders.state_sha256(trained.state),
                "source_sha256": trained.facts.get("source_sha256", "")}
    reports, files = [], {}
    for graph in graphs:  # every file is made and checked before any is written
        files[graph.file] = to_onnx(graph, metadata)
        report = {"file": str(out / graph.file), "inputs": graph.inputs, "outputs": graph.outputs}
        if check:
            report.update(compare(graph, files[graph.file]))
        reports.append(report)
    for name, data in files.items():
        atomic_write_bytes(out / name, data)
    return reports
