"""Face parser benchmark: CPU inference speed at 256 px and a longer training run on synthetic faces.

    python benchmarks/parser.py                          # both parts, default sizes
    python benchmarks/parser.py --skip-train --threads 2 # only the inference timing
    python benchmarks/parser.py --train-steps 3000 --train-size 128 --json out.json

Inference: seconds per image (batch 1, median of ``--infer-runs``) for network + argmax at ``--infer-size``,
and for the whole ``genkit parse`` path (centre crop, resize, network, label map) on a 512 px photo.
Training: seeded Lightning run on the procedural faces, reporting the untrained and trained validation mIoU /
pixel accuracy, per-class IoU and the test mIoU. These faces are synthetic: the numbers show that the parser
learns, not how well it parses real photos.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def time_inference(args) -> dict:
    import numpy as np
    import torch
    from PIL import Image

    from genkit.data.samples import sample_photo
    from genkit.data.transforms import center_crop_resize
    from genkit.models.parsing.inference import predict_labels
    from genkit.models.parsing.network import ParserNet

    torch.manual_seed(0)
    net = ParserNet(args.num_classes, args.base_channels, args.depth).eval().to(args.device)
    x = torch.rand(1, 3, args.infer_size, args.infer_size, device=args.device)
    photo = sample_photo("astronaut")  # 512x512 RGB

    def net_only():
        with torch.inference_mode():
            net(x).argmax(1).cpu()

    def full_path():
        crop, _ = center_crop_resize(photo, args.infer_size)
        labels = predict_labels(net, crop, args.device)
        Image.fromarray(labels.astype(np.uint8))

    out = {}
    for name, fn in (("net_s_per_image", net_only), ("parse_s_per_image", full_path)):
        for _ in range(3):
            fn()
        times = []
        for _ in range(args.infer_runs):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        out[name] = statistics.median(times)
        out[name.replace("_s_", "_min_s_")] = min(times)
    xb = torch.rand(8, 3, args.infer_size, args.infer_size, device=args.device)
    with torch.inference_mode():
        net(xb)
        t = time.perf_counter()
        net(xb).argmax(1).cpu()
        out["batch8_s_per_image"] = (time.perf_counter() - t) / 8
    out["params"] = sum(p.numel() for p in net.parameters())
    return out


def train_run(args) -> dict:
    import lightning as L

    from genkit.data.datamodules import FaceDataModule
    from genkit.models.parsing.module import ParserModule

    L.seed_everything(args.seed)
    dm = FaceDataModule(image_size=args.train_size, batch_size=args.batch_size, n_synthetic=args.n_synthetic,
                        seed=args.seed, num_workers=args.num_workers)
    model = ParserModule(schema="helen11", image_size=args.train_size, base_channels=args.train_base_channels,
                         depth=args.train_depth, lr=args.lr)
    kw = dict(accelerator="cpu" if args.device == "cpu" else "auto", logger=False, enable_checkpointing=False,
              enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    untrained = L.Trainer(**kw).validate(model, datamodule=dm, verbose=False)[0]
    trainer = L.Trainer(max_steps=args.train_steps, check_val_every_n_epoch=10_000, **kw)
    t = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    seconds = time.perf_counter() - t
    trained = L.Trainer(**kw).validate(model, datamodule=dm, verbose=False)[0]
    test = L.Trainer(**kw).test(model, datamodule=dm, verbose=False)[0]
    return {
        "steps": trainer.global_step, "train_seconds": seconds, "steps_per_s": trainer.global_step / seconds,
        "untrained_val_miou": untrained["val/miou"], "untrained_val_pixel_acc": untrained["val/pixel_acc"],
        "val_miou": trained["val/miou"], "val_pixel_acc": trained["val/pixel_acc"],
        "test_miou": test["test/miou"], "test_pixel_acc": test["test/pixel_acc"],
        "val_iou_per_class": {k.split("/")[-1]: round(v, 4) for k, v in trained.items() if k.startswith("val/iou/")},
        "setup": {"size": args.train_size, "batch_size": args.batch_size, "n_synthetic": args.n_synthetic,
                  "base_channels": args.train_base_channels, "depth": args.train_depth, "lr": args.lr,
                  "seed": args.seed, "data": "synthetic faces (procedural; not a quality claim)"},
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--num-classes", type=int, default=11)
    p.add_argument("--base-channels", type=int, default=32, help="inference network width")
    p.add_argument("--depth", type=int, default=4, help="inference network depth")
    p.add_argument("--infer-size", type=int, default=256)
    p.add_argument("--infer-runs", type=int, default=20)
    p.add_argument("--train-steps", type=int, default=1000)
    p.add_argument("--train-size", type=int, default=64)
    p.add_argument("--train-base-channels", type=int, default=32)
    p.add_argument("--train-depth", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--n-synthetic", type=int, default=512)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-infer", action="store_true")
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    import os

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    results = {"threads": args.threads, "device": args.device, "torch": torch.__version__, "cpus": os.cpu_count(),
               "load_average_1min": load}
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {load:.2f} "
          "(other processes on the cores slow multi-threaded runs a lot)", flush=True)
    if not args.skip_infer:
        r = time_inference(args)
        results["inference"] = r
        print(f"inference @ {args.infer_size}px (base {args.base_channels}, depth {args.depth}, {r['params']:,} params, "
              f"{args.threads} threads): network {r['net_s_per_image']:.4f} s/img (min {r['net_min_s_per_image']:.4f}), "
              f"genkit-parse path {r['parse_s_per_image']:.4f} s/img, batch-8 {r['batch8_s_per_image']:.4f} s/img "
              f"[target <= 0.3 s]", flush=True)
    if not args.skip_train:
        r = train_run(args)
        results["training"] = r
        print(f"training {r['steps']} steps @ {args.train_size}px in {r['train_seconds']:.1f} s "
              f"({r['steps_per_s']:.2f} steps/s): val mIoU {r['untrained_val_miou']:.3f} (untrained) -> "
              f"{r['val_miou']:.3f}, pixel acc {r['untrained_val_pixel_acc']:.3f} -> {r['val_pixel_acc']:.3f}; "
              f"test mIoU {r['test_miou']:.3f}", flush=True)
        print("  per-class val IoU: " + ", ".join(f"{k}={v:.3f}" for k, v in r["val_iou_per_class"].items()))
        print("  (synthetic faces: shows learning, not real-photo quality)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
