"""Benchmark of the portrait editing cGAN: training iterations (G + D) and edits, at the paper's size.

    python benchmarks/portrait.py                         # CPU: s/iteration (256 px, batch 4) and s/edit (256 px)
    python benchmarks/portrait.py --device cuda --amp     # GPU: iterations/s with and without mixed precision
    python benchmarks/portrait.py --tiny --size 64        # the test-sized model

The full-size architecture is the default (``genkit/conf/model/portrait.yaml``: 512-d codes, 256-channel component maps,
9 residual blocks, two 2-scale discriminators, VGG-19 perceptual loss, a 32-channel depth-4 face parser for the
parsing loss). Pretrained weights are not needed: random weights cost the same time. A training iteration is what
``PortraitGAN.training_step`` does (generator losses + backward + Adam step, discriminator losses + backward + Adam
step, EMA update), alternating paired and unpaired iterations, without the Lightning loop around it.
An edit is ``PortraitEditor.transfer`` of one component from another face (encode target, encode source,
synthesize), from in-memory 256 px images and masks.
"""

from __future__ import annotations

import argparse
import ast
import logging
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build_model(size: int, tiny: bool, parser: bool, overrides: dict | None = None):
    from genkit.models.portrait.module import TINY_WIDTHS, PortraitGAN

    kw = dict(TINY_WIDTHS) if tiny else {}
    kw.update(overrides or {})
    model = PortraitGAN(image_size=size, allow_random=True, val_lpips=False, ema_decay=0.999, **kw)
    if parser:
        from genkit.models.parsing import ParserNet, ParsingLoss

        model.parsing_loss = ParsingLoss(ParserNet(model.schema.num_classes, base_channels=32, depth=4))
    return model


def batch(size: int, n: int, device):
    import numpy as np

    from genkit.data.synthetic import synthetic_face
    from genkit.data.transforms import to_symmetric

    faces = [synthetic_face(size, np.random.default_rng([0, i])) for i in range(n)]
    image = torch.stack([to_symmetric(torch.from_numpy(f[0]).permute(2, 0, 1).float() / 255) for f in faces])
    mask = torch.stack([torch.from_numpy(f[1]) for f in faces])
    return image.to(device), mask.to(device), faces


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_iterations(model, image, mask, iters: int, amp: bool, device) -> list[float]:
    hp = model.hparams
    opt_g = torch.optim.Adam(model.generator.parameters(), lr=hp.lr, betas=(hp.beta1, hp.beta2))
    opt_d = torch.optim.Adam(list(model.d_paired.parameters()) + list(model.d_transfer.parameters()), lr=hp.lr,
                             betas=(hp.beta1, hp.beta2))
    scaler = torch.amp.GradScaler("cuda", enabled=amp and device.type == "cuda")
    times = []
    for i in range(iters + 1):  # the first iteration is a warm-up
        paired = model.is_paired_step(i, image.shape[0])
        sync(device)
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.float16 if device.type == "cuda" else torch.bfloat16,
                            enabled=amp):
            model.set_discriminators_trainable(False)
            g = model.generator_pass(image, mask, paired)
        opt_g.zero_grad(set_to_none=True)
        scaler.scale(g["loss"]).backward()
        scaler.step(opt_g)
        with torch.autocast(device.type, dtype=torch.float16 if device.type == "cuda" else torch.bfloat16,
                            enabled=amp):
            model.set_discriminators_trainable(True)
            d = model.discriminator_pass(image, g["fake"], g["cond"], paired)
        opt_d.zero_grad(set_to_none=True)
        scaler.scale(d["loss"]).backward()
        scaler.step(opt_d)
        scaler.update()
        model.generator_ema.update_parameters(model.generator)
        sync(device)
        if i:
            times.append(time.perf_counter() - t0)
    return times


def time_edits(model, faces, size: int, iters: int, device) -> tuple[list[float], list[float]]:
    from PIL import Image

    from genkit.models.portrait.editor import PortraitEditor

    editor = PortraitEditor(model.inference_generator, device=device)
    (img_a, mask_a), (img_b, mask_b) = faces[0], faces[1]
    a, b = Image.fromarray(img_a), Image.fromarray(img_b)
    edits, forwards = [], []
    x = torch.zeros(1, 3, size, size, device=device)
    m = torch.from_numpy(mask_a).unsqueeze(0).to(device)
    for i in range(iters + 1):
        sync(device)
        t0 = time.perf_counter()
        editor.transfer(a, mask_a, {"mouth": (b, mask_b)})
        sync(device)
        t1 = time.perf_counter()
        with torch.no_grad():
            editor.generator(x, m)
        sync(device)
        if i:
            edits.append(t1 - t0)
            forwards.append(time.perf_counter() - t1)
    return edits, forwards


@torch.no_grad()
def edit_gflops(model, image, mask) -> float:
    """Floating-point operations of one transfer edit (two encodings + one synthesis), counted by torch."""
    from torch.utils.flop_counter import FlopCounterMode

    g = model.inference_generator.eval()
    with FlopCounterMode(display=False) as counter:
        codes = g.encode(image, mask)
        g.encode(image, mask)
        g.synthesize(mask, codes, image)
    return counter.get_total_flops() / 1e9


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--iters", type=int, default=3, help="timed training iterations (after one warm-up)")
    p.add_argument("--edits", type=int, default=5, help="timed edits (after one warm-up)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", action="store_true", help="also time mixed precision (fp16 + GradScaler on CUDA)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--tiny", action="store_true", help="the test-sized widths instead of the full-size model")
    p.add_argument("--no-parser", action="store_true", help="leave the parsing loss out")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a PortraitGAN argument, e.g. --set ngf=32 --set n_res_blocks=6")
    p.add_argument("--skip-train", action="store_true", help="time edits only")
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args(argv)

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = ast.literal_eval(value) if value[:1] in "-0123456789[{(" or value in ("True", "False",
                                                                                           "None") else value
    model = build_model(args.size, args.tiny, not args.no_parser, overrides).to(device)
    n_g = sum(p.numel() for p in model.generator.parameters())
    n_d = sum(p.numel() for p in model.d_paired.parameters()) * 2
    image, mask, faces = batch(args.size, max(args.batch, 2), device)
    image, mask = image[:args.batch], mask[:args.batch]
    flops = edit_gflops(model, image[:1], mask[:1])
    info = {"overrides": overrides, "edit_gflop": flops, "device": str(device), "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
            else f"CPU, {torch.get_num_threads()} threads", "size": args.size, "batch": args.batch,
            "tiny": args.tiny, "parser": not args.no_parser, "generator_params": n_g, "discriminator_params": n_d}
    print(f"portrait benchmark: {info['device_name']}, {args.size} px, batch {args.batch}, "
          f"G {n_g / 1e6:.1f} M + 2 D {n_d / 1e6:.1f} M parameters{' (tiny widths)' if args.tiny else ''}"
          f"{' ' + str(overrides) if overrides else ''}; one edit = {flops:.1f} GFLOP")

    results = {}
    modes = [] if args.skip_train else ([False, True] if args.amp else [False])
    for amp in modes:
        times = time_iterations(model, image, mask, args.iters, amp, device)
        key = "train_amp" if amp else "train_fp32"
        results[key] = {"s_per_iter": statistics.mean(times), "iter_per_s": 1 / statistics.mean(times),
                        "times": times}
        print(f"  training iteration (G+D){' AMP' if amp else ''}: {statistics.mean(times):.3f} s/it "
              f"({1 / statistics.mean(times):.2f} it/s; runs {', '.join(f'{t:.2f}' for t in times)})")
    edits, forwards = time_edits(model, faces, args.size, args.edits, device)
    results["edit"] = {"s_per_edit": statistics.mean(edits), "median": statistics.median(edits), "times": edits,
                       "generator_forward_s": statistics.mean(forwards)}
    print(f"  edit (transfer one component, {args.size} px): {statistics.mean(edits):.3f} s mean, "
          f"{statistics.median(edits):.3f} s median; generator forward alone {statistics.mean(forwards):.3f} s")
    if args.json:
        from genkit.io import atomic_write_json

        atomic_write_json(args.json, {"info": info, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
