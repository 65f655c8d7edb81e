"""ONNX exports of the three model kinds against PyTorch: largest differences and onnxruntime vs PyTorch speed.

    python benchmarks/export.py                # tiny random-weight models, the BiSeNet at full size (random values)
    python benchmarks/export.py --threads 2

Writes, in a temporary folder, a tiny ParserNet, a BiSeNet file in the published layout (random values), decoders
for the random VGG-19 and a tiny portrait generator; exports each with ``genkit export onnx`` (which checks every
file) and prints the reported differences; then times the BiSeNet on a 512 px photo (skimage's astronaut) in
PyTorch and in onnxruntime (best of ``--repeat``), and checks their labels agree.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]


def best_time(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    import numpy as np
    import onnxruntime as ort
    import torch
    from fixtures.published_weights import write_bisenet_file
    from fixtures.tiny_models import make_parser_checkpoint, write_decoders, write_generator

    from genkit.apps.export import export_onnx
    from genkit.apps.export.onnx_export import astronaut
    from genkit.models.parsing.checkpoint import load_parser

    torch.set_num_threads(args.threads)
    out: dict = {"threads": args.threads, "onnxruntime": ort.__version__, "torch": torch.__version__}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        write_bisenet_file(d / "79999_iter.pth")
        sources = {"parsernet": make_parser_checkpoint(d / "p.ckpt", "helen11", size=32),
                   "bisenet": d / "79999_iter.pth", "decoders": write_decoders(d / "dec.pt"),
                   "portrait": write_generator(d / "gen.pt")}
        for name, src in sources.items():
            out[name] = [{"file": Path(r["file"]).name, "max_abs_diff": r["max_abs_diff"],
                          "limit": r["tolerance"]} for r in export_onnx(src, d / f"onnx-{name}")]
        x = astronaut()
        net = load_parser(sources["bisenet"])
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        session = ort.InferenceSession(str(d / "onnx-bisenet" / "parser.onnx"), options,
                                       providers=["CPUExecutionProvider"])
        with torch.no_grad():
            torch_s = best_time(lambda: net(x), args.repeat)
            ort_s = best_time(lambda: session.run(None, {"image": x.numpy()}), args.repeat)
            same = bool(np.array_equal(net(x).argmax(1).numpy(), session.run(None, {"image": x.numpy()})[0].argmax(1)))
        out["bisenet_512px"] = {"torch_s": round(torch_s, 3), "onnxruntime_s": round(ort_s, 3), "labels_equal": same}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
