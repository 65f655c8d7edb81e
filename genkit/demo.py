"""``genkit demo``: the main job on the embedded defaults, end to end, with a browsable report.

1. trains the reshuffle decoders briefly on the sample photos and stylises them (reshuffle vs style-swap);
2. trains the face parser on synthetic faces;
3. trains a small portrait cGAN on synthetic faces (with the parser's loss) and runs edits with it;
4. computes the metrics (style distances and patch usage, FID/KID, LPIPS, mask consistency);
5. writes ``report.html`` with every image and a metrics table, plus a W&B run (offline without a key).

Every training is a regular ``genkit-train`` run (composed with :func:`genkit.train.compose`), so its
checkpoints, image grids and W&B run land under ``<out>/runs/``. Missing pretrained weights are replaced by
random ones only with ``allow_random`` (the default here, so the demo runs offline), and the report says so.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from genkit.report import Report

log = logging.getLogger(__name__)


@dataclass
class DemoSettings:
    out: Path
    allow_random: bool = True
    quick: bool = False  # minimal sizes and steps (tests); the images are then only a smoke check
    seed: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    def pick(self, full, quick):
        return quick if self.quick else full


def _train(settings: DemoSettings, name: str, overrides: list[str]) -> dict:
    from genkit.train import compose, run

    out_dir = settings.out / "runs" / name
    cfg = compose([*overrides, f"weights.allow_random={str(settings.allow_random).lower()}",
                   f"seed={settings.seed}", "trainer.enable_model_summary=false", "logger.wandb.silent=true"],
                  output_dir=out_dir)
    t0 = time.perf_counter()
    result = run(cfg)
    settings.timings[f"train {name}"] = time.perf_counter() - t0
    result["checkpoint"] = str(out_dir / "checkpoints" / "last.ckpt")
    return result


def _save_grid(rows: list[list[torch.Tensor]], path: Path, metadata: dict) -> Path:
    """rows of (3, H, W) images in [0, 1] (resized to the first image's size) -> one PNG."""
    from torchvision.utils import make_grid

    from genkit.io import save_image

    h, w = rows[0][0].shape[-2:]
    tiles = [torch.nn.functional.interpolate(t[None].float(), size=(h, w), mode="bilinear", align_corners=False)[0]
             for row in rows for t in row]
    grid = make_grid(torch.stack(tiles).clamp(0, 1), nrow=len(rows[0]), padding=4, pad_value=1.0)
    return save_image(grid, path, metadata=metadata)


# ------------------------------------------------------------------------------------------ style transfer
def style_section(settings: DemoSettings, report: Report, metrics: dict) -> None:
    from genkit.data.samples import sample_photo
    from genkit.io import pil_to_tensor
    from genkit.metrics import keys
    from genkit.metrics.style import build_style_encoder, style_transfer_metrics
    from genkit.models.reshuffle import Stylizer

    dec = _train(settings, "reshuffle_decoders", [
        "experiment=reshuffle_decoders", f"data.image_size={settings.pick(128, 64)}", "data.batch_size=4",
        f"model.width={settings.pick(0.5, 0.25)}", "model.optimizer.lr=1e-3", f"trainer.max_steps={settings.pick(150, 4)}", "trainer.max_epochs=-1",
        f"trainer.check_val_every_n_epoch={settings.pick(25, 1)}", "logger=wandb", "test=false",
        f"callbacks.image_grid.every_n_steps={settings.pick(100, 2)}"])
    size = settings.pick(256, 96)
    contents = {n: sample_photo(n) for n in ("astronaut", "chelsea")}
    styles = {n: sample_photo(n) for n in ("gravel", "brick")} if not settings.quick else {"gravel": sample_photo("gravel")}
    out = settings.out / "style"
    encoder = build_style_encoder(allow_random=settings.allow_random)
    t0 = time.perf_counter()
    modes = {"reshuffle": {}, "style-swap": {"max_usage": None}}
    stylizers = {m: Stylizer(decoder=dec["checkpoint"], size=size, allow_random=settings.allow_random, **opts)
                 for m, opts in modes.items()}
    section = report.section("Style transfer: deep feature reshuffle vs style-swap",
                             "Each row: content | style | reshuffle (usage-limited) | style-swap (unconstrained). "
                             "The usage columns count how many distinct style patches the relu4_1 target uses: "
                             "reshuffle spreads over the style, style-swap reuses a few.")
    rows, table = [], []
    for cname, content in contents.items():
        for sname, style in styles.items():
            row = [pil_to_tensor(content.resize((size, size))), pil_to_tensor(style.resize((size, size)))]
            for mode, st in stylizers.items():
                res = st(content, style)
                path = res.save(out / f"{cname}__{sname}__{mode}.png")
                row.append(res.image)
                lvl = res.levels[0]
                c = pil_to_tensor(content)[None]
                c = torch.nn.functional.interpolate(c, size=res.image.shape[-2:], mode="bilinear", align_corners=False)
                s = pil_to_tensor(style)[None]
                m = style_transfer_metrics(res.image[None], c, s, encoder)
                cd, sd = m[keys.KEY_CONTENT], m[keys.KEY_STYLE]
                table.append({"content": cname, "style": sname, "method": mode, "level": lvl.tap,
                              "style patches used": f"{lvl.as_dict().get('distinct_used')}/{lvl.n_style}",
                              "max usage": lvl.as_dict().get("max_usage"), "content dist": cd, "Gram style dist": sd,
                              "image": path.name})
            rows.append(row)
    settings.timings["stylize"] = time.perf_counter() - t0
    grid = _save_grid(rows, out / "style_grid.png", {"rows": "content | style | reshuffle | style-swap",
                                                     "random_weights": _random_used()})
    section.images.append(("content | style | reshuffle | style-swap", grid))
    section.table = table
    for mode in modes:
        sel = [r for r in table if r["method"] == mode]
        metrics[f"style/{mode}/gram_style_dist"] = float(np.mean([r["Gram style dist"] for r in sel]))
        metrics[f"style/{mode}/content_dist"] = float(np.mean([r["content dist"] for r in sel]))


# ------------------------------------------------------------------------------------------ portraits
def portrait_section(settings: DemoSettings, report: Report, metrics: dict) -> None:
    from genkit.data.datasets import SyntheticFaceDataset
    from genkit.data.transforms import PairedTransform
    from genkit.data.schemas import HELEN11
    from genkit.metrics.mask_consistency import MaskConsistency
    from genkit.models.parsing import load_parser
    from genkit.models.portrait.editor import PortraitEditor

    size = 64
    parser = _train(settings, "parser_synthetic", [
        "experiment=parser_synthetic", f"data.image_size={size}", f"trainer.max_epochs={settings.pick(8, 1)}",
        f"data.dataset.n={settings.pick(256, 8)}", "logger=wandb"])
    metrics["parser/test_miou"] = parser["metrics"].get("test/miou", float("nan"))
    portrait = _train(settings, "portrait_synthetic", [
        "experiment=portrait_synthetic", f"data.image_size={size}", f"data.dataset.n={settings.pick(256, 8)}",
        f"trainer.max_epochs={settings.pick(5, 1)}", f"model.parser.checkpoint={parser['checkpoint']}",
        "logger=wandb", "test=false"])

    editor = PortraitEditor.from_checkpoint(portrait["checkpoint"], parser=parser["checkpoint"])
    faces = SyntheticFaceDataset(n=8, size=size, seed=settings.seed + 3_000_000,
                                 transform=PairedTransform(size, HELEN11))
    out = settings.out / "portrait"
    t0 = time.perf_counter()
    rows, recon, gen_images, gen_masks, real = [], [], [], [], []
    n_rows = settings.pick(4, 2)
    for i in range(n_rows):
        target, donor = faces[i], faces[(i + 1) % len(faces)]
        t_img, t_mask = target["image"], target["mask"].numpy()
        d_img, d_mask = donor["image"], donor["mask"].numpy()
        rec = editor.reconstruct(t_img, t_mask)
        mouth = editor.transfer(t_img, t_mask, {"mouth": (d_img, d_mask)})
        hair = editor.transfer(t_img, t_mask, {"hair": (d_img, d_mask), "eyes": (d_img, d_mask)})
        for res, tag in ((rec, "reconstruct"), (mouth, "mouth_from_next"), (hair, "hair_eyes_from_next")):
            res.save(out / f"face{i}_{tag}.png", metadata=editor.metadata())
        mask_rgb = torch.from_numpy(HELEN11.colorize(t_mask)).permute(2, 0, 1).float() / 255
        rows.append([mask_rgb, t_img, rec.image, d_img, mouth.image, hair.image])
        recon.append((rec.image, t_img))
        gen_images.append(rec.image)
        gen_masks.append(target["mask"])
        real.append(t_img)
    settings.timings["edits"] = time.perf_counter() - t0
    grid = _save_grid(rows, out / "edit_grid.png", {"rows": "mask | target | reconstruction | donor | "
                                                    "mouth from donor | hair+eyes from donor",
                                                    "random_weights": _random_used()})
    section = report.section("Portrait editing (mask-guided cGAN) on synthetic faces",
                             "Columns: target mask | target | reconstruction | donor | mouth transferred from the "
                             "donor | hair and eyes transferred. Synthetic faces: a smoke test of the pipeline, "
                             "not a quality claim.")
    section.images.append(("mask | target | reconstruction | donor | mouth swap | hair+eyes swap", grid))
    for p in sorted((settings.out / "runs" / "portrait_synthetic" / "images").glob("*.png"))[-1:]:
        section.images.append((f"training grid ({p.stem})", p))
    for p in sorted((settings.out / "runs" / "parser_synthetic" / "images").glob("*.png"))[-1:]:
        section.images.append((f"face parser: photo | truth | prediction ({p.stem})", p))

    metrics["portrait/recon_l1"] = float(np.mean([(a - b).abs().mean().item() for a, b in recon]))
    consistency = MaskConsistency(load_parser(parser["checkpoint"]), input_range="unit")
    consistency.update(torch.stack(gen_images), torch.stack(gen_masks))
    mc = consistency.compute()
    metrics["portrait/mask_consistency_miou"] = float(mc["miou"])
    metrics["portrait/mask_consistency_pixel_acc"] = float(mc["pixel_acc"])
    _distribution_metrics(settings, torch.stack(real), torch.stack(gen_images), metrics)


def _distribution_metrics(settings: DemoSettings, real: torch.Tensor, fake: torch.Tensor, metrics: dict) -> None:
    from genkit.errors import WeightsUnavailableError
    from genkit.metrics.fid import FrechetInceptionDistance
    from genkit.metrics.lpips import build_lpips, lpips_distance

    try:
        fid = FrechetInceptionDistance(allow_random=settings.allow_random, value_range=(0.0, 1.0))
        fid.update(real, real=True)
        fid.update(fake, real=False)
        metrics["portrait/fid"] = float(fid.compute())
        lp = build_lpips(allow_random=settings.allow_random)
        metrics["portrait/lpips_recon"] = float(lpips_distance(fake * 2 - 1, real * 2 - 1, lp).mean())
    except WeightsUnavailableError as exc:
        log.warning("distribution metrics skipped: %s", exc)


def _random_used() -> bool:
    from genkit import weights

    return weights.used_random_weights()


def _log_wandb(settings: DemoSettings, report_images: list[tuple[str, Path]], metrics: dict) -> str | None:
    import wandb

    from genkit.tracking import wandb_mode

    run = wandb.init(project="genkit", name="demo", dir=str(settings.out), mode=wandb_mode(),
                     config={"quick": settings.quick, "allow_random": settings.allow_random},
                     tags=["demo"] + (["random-weights"] if _random_used() else []))
    try:
        run.log({**{k: v for k, v in metrics.items() if np.isfinite(v)},
                 **{f"images/{Path(p).stem}": wandb.Image(str(p), caption=c) for c, p in report_images}})
        run.summary["random_weights"] = _random_used()
    finally:
        run.finish()
    # run.dir can point at an earlier run of this process (wandb keeps global settings); look on disk instead
    runs = sorted((settings.out / "wandb").glob("*run-*"), key=lambda p: p.stat().st_mtime)
    return str(runs[-1]) if runs else None


def run_demo(settings: DemoSettings) -> Path:
    from genkit import weights

    settings.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(settings.seed)
    report = Report("genkit demo")
    metrics: dict[str, float] = {}
    t0 = time.perf_counter()
    style_section(settings, report, metrics)
    portrait_section(settings, report, metrics)
    settings.timings["total"] = time.perf_counter() - t0

    if weights.used_random_weights():
        report.notes.append(
            "RANDOM WEIGHTS were used for: " + ", ".join(k for k, v in weights.provenance().items() if v["random"])
            + ". The pretrained ImageNet files were not found (see `genkit weights list`). Images and numbers below "
              "show that the pipeline runs end to end; they say nothing about quality.")
    report.notes.append("Portrait results are on procedural synthetic faces (no dataset download).")
    table = report.section("Metrics")
    table.table = [{"metric": k, "value": v} for k, v in sorted(metrics.items())]
    timing = report.section("Timings (seconds)")
    timing.table = [{"stage": k, "seconds": round(v, 1)} for k, v in settings.timings.items()]
    images = [img for s in report.sections for img in s.images]
    wandb_dir = _log_wandb(settings, images, metrics)
    if wandb_dir:
        report.section("W&B", f"This demo's W&B run: {wandb_dir} (offline runs: upload with `wandb sync`).")
    from genkit.io import atomic_write_json

    atomic_write_json(settings.out / "metrics.json", {"metrics": metrics, "timings": settings.timings,
                                                      "random_weights": weights.used_random_weights(),
                                                      "weights": weights.provenance()})
    return report.write(settings.out / "report.html")


