"""``genkit demo``: both methods on the embedded defaults, end to end, with a browsable report, in a few minutes.

1. Style transfer: one content photo and a colourful procedural painting, stylised three ways on the same optimiser
   and budget: deep feature reshuffle (usage-limited), style-swap (unlimited) and a Gram-only (Gatys) baseline; a
   plot of how evenly each uses the style's patches and each one's content / Gram distances.
2. Portraits: the ``portrait_synthetic`` experiment (as its owner tuned it, as a VAE so components can be sampled)
   trained on synthetic faces, then reconstructions, component transfers, mask edits and prior samples of held-out
   faces, each column labelled.
3. A metrics table that says what every number is (weights, N) and lists what it leaves out and why.
4. ``report.html`` with captions, ``metrics.json``, and the same images in the demo's W&B run (offline without a
   key).

Reconstruction of stylised features uses image optimisation, not the trained decoders: the decoders need the real
VGG-19 weights and far longer training than a 5-minute budget to look good (``genkit-train
experiment=reshuffle_decoders``). Every training is a regular ``genkit-train`` run (composed with
:func:`genkit.training.entry.compose`), so its checkpoints and W&B run land under ``<out>/runs/``. Missing pretrained weights
are replaced by random ones only with ``allow_random`` (the default here, so the demo runs offline), and the report
says so.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from genkit.apps.demo.report import Report

log = logging.getLogger(__name__)


@dataclass
class DemoSettings:
    out: Path
    allow_random: bool = True
    quick: bool = False  # small sizes and budgets (tests): the images are smaller and rougher, but not flat
    seed: int = 0
    threads: int | None = None  # torch CPU threads (None: the cores the load average leaves free)
    timings: dict[str, float] = field(default_factory=dict)

    def pick(self, full, quick):
        return quick if self.quick else full


def _train(settings: DemoSettings, name: str, overrides: list[str]) -> dict:
    from genkit.training.entry import compose, run

    out_dir = settings.out / "runs" / name
    cfg = compose([*overrides, f"weights.allow_random={str(settings.allow_random).lower()}",
                   f"seed={settings.seed}", "trainer.enable_model_summary=false", "trainer.enable_progress_bar=false",
                   "logger=wandb", "logger.wandb.silent=true"], output_dir=out_dir)
    t0 = time.perf_counter()
    log.info("demo: training %s ...", name)
    result = run(cfg)
    settings.timings[f"train {name}"] = time.perf_counter() - t0
    result["checkpoint"] = str(out_dir / "checkpoints" / "last.ckpt")
    return result


def _random_used() -> bool:
    from genkit.core import weights

    return weights.used_random_weights()


# ------------------------------------------------------------------------------------------ style transfer
@dataclass(frozen=True)
class StyleDemoSettings:
    """What the style strip runs. With random VGG weights the paper's α=0.6 leaves the style faint (random features
    carry little pattern), so the demo blends less content (α=0.3): the pattern shows over a readable content."""

    size: int
    steps: int
    alpha: float
    gram_weight: float = 10.0
    why: str = ""

    @classmethod
    def choose(cls, quick: bool, real_vgg: bool) -> "StyleDemoSettings":
        size, steps = (96, 10) if quick else (192, 30)
        if real_vgg:
            return cls(size, steps, 0.6, why="ImageNet VGG-19 present: the paper's default content weight α=0.6")
        return cls(size, steps, 0.3, why="Random VGG-19 weights: α=0.3 (the paper's 0.6 would leave the random "
                                         "features' style pattern too faint to see)")


STYLE_PAIR = ("astronaut", "mosaic")  # the comparison strip: content, style
MORE_PAIRS = (("chelsea", "brush_strokes"),)  # reshuffle only, full demo


def _vgg_is_real() -> bool:
    from genkit.core import weights

    return weights.status("vgg19") == "present"


@torch.no_grad()
def output_patch_usage(output: torch.Tensor, style: torch.Tensor, encoder, tap: str = "relu4_1",
                       patch: int = 3) -> torch.Tensor:
    """How often each style patch is the nearest (cosine of ``patch`` x ``patch`` feature patches at ``tap``) to a
    position of the OUTPUT image: (Hs * Ws,) counts. Unlike a method's own assignment this exists for every method,
    Gram included, and measures what the image shows rather than what was asked for."""
    from torch.nn import functional as F

    from genkit.models.reshuffle.features import normalize_positions, normalize_rows
    from genkit.models.reshuffle.matching import dense_topk

    def patches(img):
        f = normalize_positions(encoder.encode(img, tap)[0])
        return normalize_rows(F.unfold(f[None], patch, padding=patch // 2)[0].T)  # (H*W, C*p*p)

    ps = patches(style)
    nearest, _ = dense_topk(patches(output), ps, k=1)
    return torch.bincount(nearest[:, 0], minlength=ps.shape[0])


STYLE_METHODS = ("reshuffle", "style-swap", "Gram (Gatys)")


def _resized(img, hw) -> torch.Tensor:
    """A PIL image as a (1, 3, *hw) tensor in [0, 1]: the content at its output's size, the style at the size the
    methods used (``cfg.size``, square paintings)."""
    from genkit.core.tensors import pil_to_tensor

    return torch.nn.functional.interpolate(pil_to_tensor(img)[None], size=tuple(hw), mode="bicubic",
                                           align_corners=False, antialias=True).clamp(0, 1)


class StyleRunner:
    """The three methods on one encoder, optimiser and budget; ``run`` returns the result and its seconds."""

    def __init__(self, cfg, encoder):
        from genkit.models.reshuffle import Stylizer

        self.cfg, self.encoder, self.optimize = cfg, encoder, {"steps": cfg.steps}
        self.stylizers = {
            "reshuffle": Stylizer(optimize=self.optimize, size=cfg.size, alpha=cfg.alpha, encoder=encoder),
            "style-swap": Stylizer(optimize=self.optimize, size=cfg.size, alpha=cfg.alpha, encoder=encoder,
                                   max_usage=None),
        }

    def run(self, method: str, content, style):
        from genkit.models.reshuffle import gram_transfer

        t0 = time.perf_counter()
        if method == "Gram (Gatys)":
            res = gram_transfer(content, style, encoder=self.encoder, size=self.cfg.size,
                                style_weight=self.cfg.gram_weight, optimize=self.optimize)
        else:
            res = self.stylizers[method](content, style)
        return res, time.perf_counter() - t0


def _measure_method(method: str, res, content, style: torch.Tensor, encoder, seconds: float, metrics: dict):
    """One table row for a method's output (distances, patch usage of its target and of the output image); the
    numbers also go into ``metrics``. Returns (row, target usage or None, output usage, (content, style) dist)."""
    from genkit.metrics import keys
    from genkit.metrics.style import patch_usage_stats, style_transfer_metrics

    m = style_transfer_metrics(res.image[None], _resized(content, res.image.shape[-2:]), style, encoder)
    lvl = res.levels[0] if res.levels else None
    seen = output_patch_usage(res.image[None], style, encoder)
    seen_stats = patch_usage_stats(seen)
    row = {"method": method, "content dist (relu4_1)": m[keys.KEY_CONTENT], "Gram style dist": m[keys.KEY_STYLE],
           "seconds": round(seconds, 1), "style patches seen in the output": f"{int((seen > 0).sum())}/{seen.numel()}",
           "their evenness": seen_stats[keys.KEY_USAGE_ENTROPY]}
    metrics[f"style/{method}/output_patches_seen_fraction"] = float(seen_stats[keys.KEY_USAGE_FRACTION])
    if lvl is not None:
        u = patch_usage_stats(lvl.usage)
        row.update({"style patches used (relu4_1)": f"{lvl.distinct_used}/{lvl.n_style}",
                    "most uses of one patch": lvl.max_usage, "usage evenness (entropy, 1 = even)":
                        u[keys.KEY_USAGE_ENTROPY]})
        metrics[f"style/{method}/patches_used_fraction"] = float(lvl.distinct_fraction)
        metrics[f"style/{method}/usage_evenness"] = float(u[keys.KEY_USAGE_ENTROPY])
    else:
        row["style patches used (relu4_1)"] = "n/a: matches Gram statistics, no patches"
    metrics[f"style/{method}/content_dist"] = float(m[keys.KEY_CONTENT])
    metrics[f"style/{method}/gram_style_dist"] = float(m[keys.KEY_STYLE])
    return row, (lvl.usage if lvl is not None else None), seen, (m[keys.KEY_CONTENT], m[keys.KEY_STYLE])


def _more_styles(settings: DemoSettings, runner: StyleRunner, out: Path) -> list[list[torch.Tensor]]:
    """Reshuffle on the extra pairs: rows of content | style | output."""
    from genkit.core.saving import save_image
    from genkit.data.samples import sample_photo

    rows = []
    for c_name, s_name in settings.pick(MORE_PAIRS, ()):
        c_img, s_img = sample_photo(c_name), sample_photo(s_name)
        res, _ = runner.run("reshuffle", c_img, s_img)
        res.save(out / f"{c_name}__{s_name}__reshuffle.png")
        c = _resized(c_img, res.image.shape[-2:])[0]
        save_image(c, out / f"{c_name}__content.png")
        rows.append([c, _resized(s_img, (runner.cfg.size, runner.cfg.size))[0], res.image])
    return rows


def _style_report(report: Report, cfg, strip: Path, plot: Path, table: list, more: Path | None) -> None:
    section = report.section(
        "Style transfer: reshuffle vs style-swap vs Gram",
        f"Same content, style, optimiser and budget ({cfg.steps} L-BFGS evaluations at {cfg.size} px) for all three. "
        "Look for: reshuffle paints the style's tiles and colours over a still readable astronaut; style-swap keeps "
        "the content but reuses a few style patches (fewer tiles, paler); the Gram baseline shifts the colours "
        "without the tile pattern. " + cfg.why + ".")
    section.images.append(("content | style | reshuffle | style-swap | Gram (Gatys)", strip))
    section.images.append(("left: how often each style patch is used by the method's target at relu4_1 (reshuffle: "
                           "every patch about equally often; style-swap: a few patches many times and many never - "
                           "wash-out); middle: the same count for the output images (each output position's nearest "
                           "style patch), which exists for the Gram baseline too; right: content and Gram style "
                           "distances of each output", plot))
    section.table = table
    if more is not None:
        report.section("Reshuffle with another style",
                       "Another content and painting: the brush strokes' colours and directions replace the "
                       "photo's surfaces while the cat's outline stays.").images.append(
            ("content | style | reshuffle", more))


def style_section(settings: DemoSettings, report: Report, metrics: dict) -> None:
    from genkit.apps.demo.plots import labelled_grid, usage_plot
    from genkit.core.saving import save_image
    from genkit.data.samples import sample_photo
    from genkit.metrics.style import build_style_encoder

    t_all = time.perf_counter()
    cfg = StyleDemoSettings.choose(settings.quick, _vgg_is_real())
    out = settings.out / "style"
    encoder = build_style_encoder(allow_random=settings.allow_random)  # one VGG for all methods and metrics
    runner = StyleRunner(cfg, encoder)
    cname, sname = STYLE_PAIR
    content, style = sample_photo(cname), sample_photo(sname)
    s = _resized(style, (cfg.size, cfg.size))
    results, table, usage, output_usage, distances = {}, [], {}, {}, {}
    for method in STYLE_METHODS:
        res, seconds = runner.run(method, content, style)
        res.save(out / f"{cname}__{sname}__{method.split()[0].lower()}.png")
        results[method] = res
        row, usage[method], output_usage[method], distances[method] = _measure_method(
            method, res, content, s, encoder, seconds, metrics)
        table.append(row)
    content_img = _resized(content, results["reshuffle"].image.shape[-2:])[0]
    save_image(content_img, out / f"{cname}__content.png")
    strip = labelled_grid([[content_img, s[0], *(results[m].image for m in results)]],
                          [f"content ({cname})", f"style ({sname})", f"reshuffle (α={cfg.alpha})",
                           f"style-swap (α={cfg.alpha})", f"Gram / Gatys (weight {cfg.gram_weight:g})"],
                          out / "comparison_strip.png", tile_inches=2.4)
    note = "random VGG-19 weights: distances compare the methods with each other only" if _random_used() else ""
    plot = usage_plot(usage, distances, out / "patch_usage.png", level="relu4_1", note=note,
                      output_usage=output_usage)
    extra_rows = _more_styles(settings, runner, out)
    more = (labelled_grid(extra_rows, ["content", "style", f"reshuffle (α={cfg.alpha})"], out / "more_styles.png",
                          tile_inches=2.4) if extra_rows else None)
    settings.timings["style transfer"] = time.perf_counter() - t_all
    _style_report(report, cfg, strip, plot, table, more)
    metrics["_style_settings"] = {"size": cfg.size, "steps": cfg.steps, "alpha": cfg.alpha, "why": cfg.why}


# ------------------------------------------------------------------------------------------ portraits
def move_component(mask: torch.Tensor, labels: list[int], dy: int, dx: int = 0, into: tuple[int, ...] = (1,),
                   fill: int = 1) -> torch.Tensor:
    """The label map with the pixels of ``labels`` shifted by (dy, dx); they land only on ``into`` labels (skin),
    and the pixels they leave become ``fill`` (skin)."""
    m = mask.clone()
    part = torch.isin(mask, torch.tensor(labels))
    m[part] = fill
    ys, xs = torch.nonzero(part, as_tuple=True)
    ny, nx = ys + dy, xs + dx
    ok = (ny >= 0) & (ny < m.shape[0]) & (nx >= 0) & (nx < m.shape[1])
    ys, xs, ny, nx = ys[ok], xs[ok], ny[ok], nx[ok]
    land = torch.isin(m[ny, nx], torch.tensor(into))
    m[ny[land], nx[land]] = mask[ys[land], xs[land]]
    return m


def remove_component(mask: torch.Tensor, labels: list[int], fill: int = 0) -> torch.Tensor:
    m = mask.clone()
    m[torch.isin(mask, torch.tensor(labels))] = fill
    return m


PORTRAIT_COLUMNS = ["target\nphoto", "target\nmask", "recon-\nstruction", "donor", "eyes\nfrom donor",
                    "mouth\nfrom donor", "skin\nfrom donor", "hair\nfrom donor", "mask edit:\nmouth moved",
                    "mask edit:\nhair removed"]


def _face_edits(editor, t_img, t_mask, d_img, d_mask, size: int) -> dict:
    """Every edit the grid shows for one face: {column name: (result, edited component or None)}."""
    from genkit.data.schemas import HELEN11

    lab = {n: HELEN11.index(n) for n in HELEN11.classes}
    mouth = [lab["upper_lip"], lab["inner_mouth"], lab["lower_lip"]]
    edits = {"reconstruction": (editor.reconstruct(t_img, t_mask, region="face"), None)}  # the model's whole head
    for comp in ("eyes", "mouth", "skin", "hair"):
        edits[f"{comp} from donor"] = (editor.transfer(t_img, t_mask, {comp: (d_img, d_mask)}), comp)
    moved = move_component(t_mask, mouth, dy=max(2, size // 16))
    bald = remove_component(t_mask, [lab["hair"]])
    edits["mask edit: mouth moved down"] = (editor.regenerate(t_img, t_mask, moved), "mouth")
    edits["mask edit: hair removed"] = (editor.regenerate(t_img, t_mask, bald), "hair")
    return edits


def _edit_rows(editor, images, masks, donors, n_rows: int, size: int, out: Path, manifest: list) -> list:
    """The edit grid's rows (target, its mask, reconstruction, donor, the edits), each file saved and listed."""
    from genkit.core.saving import save_image, save_label_map

    rows = []
    for i in range(n_rows):
        t_img, t_mask, d = images[i], masks[i], donors[i]
        save_image(t_img, out / f"face{i}_target.png")
        save_label_map(t_mask.numpy().astype(np.uint8), out / f"face{i}_mask.png")
        edits = _face_edits(editor, t_img, t_mask, images[d], masks[d], size)
        row = [t_img, _colour(t_mask), edits["reconstruction"][0].image, images[d]]
        for name, (res, comp) in edits.items():
            slug = name.replace("mask edit: ", "").replace(" ", "_")
            path = res.save(out / f"face{i}_{slug}.png", metadata=editor.metadata())
            save_label_map(res.mask.numpy().astype(np.uint8), out / f"face{i}_{slug}_layout.png")
            manifest.append({"face": i, "operation": name, "component": comp, "file": path.name,
                             "target": f"face{i}_target.png", "target_mask": f"face{i}_mask.png",
                             "layout_mask": f"face{i}_{slug}_layout.png", "donor": d if "donor" in name else None})
            if name != "reconstruction":
                row.append(res.image)
        rows.append(row)
    return rows


def _prior_samples(editor, images, masks, n_rows: int, seed: int, out: Path, manifest: list) -> Path:
    """A grid of components drawn from the VAE prior (skin, hair, mouth), each file saved and listed."""
    from genkit.apps.demo.plots import labelled_grid

    sample_rows = []
    for i in range(n_rows):
        drawn = (editor.sample(images[i], masks[i], "skin", n=2, seed=seed + i)
                 + editor.sample(images[i], masks[i], "hair", n=2, seed=seed + 100 + i)
                 + editor.sample(images[i], masks[i], "mouth", n=1, seed=seed + 200 + i))
        sample_rows.append([images[i], *(r.image for r in drawn)])
        for k, r in enumerate(drawn):
            comp = "skin" if k < 2 else "hair" if k < 4 else "mouth"
            p = r.save(out / f"face{i}_sample{k}_{comp}.png", metadata=editor.metadata())
            manifest.append({"face": i, "operation": f"prior sample ({comp})", "component": comp,
                             "file": p.name, "target": f"face{i}_target.png", "target_mask": f"face{i}_mask.png",
                             "layout_mask": f"face{i}_mask.png", "donor": None})
    return labelled_grid(sample_rows, ["target\nphoto", "skin:\nprior sample 1", "skin:\nprior sample 2",
                                       "hair:\nprior sample 1", "hair:\nprior sample 2", "mouth:\nprior sample"],
                         out / "prior_samples.png", row_labels=[f"face {i}" for i in range(n_rows)], tile_inches=1.5)


def _portrait_report(report: Report, settings: DemoSettings, iterations: int, size: int, grid: Path,
                     sample_grid: Path | None) -> None:
    section = report.section(
        "Portrait editing (mask-guided cGAN) on synthetic faces",
        f"The portrait_synthetic experiment ({iterations} iterations at {size} px, VAE component embeddings), on "
        f"held-out synthetic faces; each face takes components from the face whose colours differ most from its own (its "
        f"donor, so each change is visible; the metrics below use every face with the next one). Look for: the "
        "reconstruction matches the target photo; each transfer changes only its component toward the donor's "
        "colour (eyes are a few pixels at 64 px); moving the mouth in the label map moves it in the image; removing "
        "the hair fills in background; outside the face every pixel is the target photo's own. Synthetic faces: a "
        "test of the pipeline, not a quality claim.")
    section.images.append(("one row per face; columns as labelled", grid))
    if sample_grid is not None:
        section.images.append(("components drawn from the VAE prior N(0, I), the rest the face's own", sample_grid))
    else:
        section.text += " The model is a plain autoencoder, so it has no prior to sample components from."
    for p in sorted((settings.out / "runs" / "portrait_synthetic" / "images").glob("*.png"))[-1:]:
        section.images.append((f"last training image grid ({p.stem}): mask | target | result | transfer | no hair", p))


def portrait_section(settings: DemoSettings, report: Report, metrics: dict) -> None:
    from genkit.apps.demo.plots import labelled_grid
    from genkit.core.files import atomic_write_json
    from genkit.models.portrait import evaluation as ev
    from genkit.models.portrait.editor import PortraitEditor

    size = 64
    n_train = settings.pick(256, 128)
    portrait = _train(settings, "portrait_synthetic", [
        "experiment=portrait_synthetic", "model.generator.variational=true", "model.validation.lpips=false",
        f"data.dataset.n={n_train}", f"trainer.max_epochs={settings.pick(5, 1)}", "test=false",
        f"callbacks.image_grid.every_n_steps={settings.pick(80, 1000)}",
        *settings.pick([], ["+trainer.num_sanity_val_steps=0", "trainer.limit_val_batches=2"])])
    editor = PortraitEditor.from_checkpoint(portrait["checkpoint"])
    iterations = int(portrait.get("global_step", 0) or 0)

    t0 = time.perf_counter()
    n_eval = settings.pick(32, 8)
    faces = ev.synthetic_transfer_set(n_eval, size, seed=settings.seed + 7_000_000)
    images = (faces["image"] + 1) / 2  # [0, 1]
    masks, perm = faces["mask"], faces["perm"]
    donors = most_different_donors(images, masks, editor.generator.layout)
    out = settings.out / "portrait"
    n_rows = settings.pick(4, 2)
    manifest = []
    rows = _edit_rows(editor, images, masks, donors, n_rows, size, out, manifest)
    sample_grid = (_prior_samples(editor, images, masks, n_rows, settings.seed, out, manifest)
                   if editor.variational else None)
    grid = labelled_grid(rows, PORTRAIT_COLUMNS, out / "edit_grid.png",
                         row_labels=[f"face {i} (donor: face {donors[i]})" for i in range(n_rows)], tile_inches=1.3)
    atomic_write_json(out / "edits.json", {"size": size, "edits": manifest, "paste_grow": _paste_margin(editor)})

    # numbers that mean something at this N: pixel errors against known truths, transfer direction on known faces
    gen = editor.generator
    img_sym, m_dev = faces["image"].to(editor.device), masks.to(editor.device)
    direction = ev.transfer_direction(gen, img_sym, m_dev, perm, faces["expected"])
    hair = ev.hair_removal_error(gen, img_sym, m_dev, faces["background"].to(editor.device))
    settings.timings["portrait edits + measures"] = time.perf_counter() - t0
    _portrait_report(report, settings, iterations, size, grid, sample_grid)
    metrics["portrait/iterations"] = iterations
    metrics["_portrait"] = {"n_eval": n_eval, "direction": direction, "hair": hair}


def most_different_donors(images: torch.Tensor, masks: torch.Tensor, layout,
                          groups=("left_eye", "mouth", "skin", "hair")) -> list[int]:
    """For each face, the other face whose components' mean colours differ most from its own (summed over
    ``groups``): the grid's donors, so that each transfer has something visible to change."""
    means = []
    for name in groups:
        region = layout.region(masks, name)  # (B, 1, H, W)
        area = region.sum((2, 3)).clamp_min(1)
        means.append((images * region).sum((2, 3)) / area)  # (B, 3)
    feats = torch.cat(means, 1)
    dist = torch.cdist(feats, feats)
    dist.fill_diagonal_(-1)
    return [int(j) for j in dist.argmax(1)]


def _paste_margin(editor) -> int:
    g = editor.generator
    return int(getattr(g, "paste_grow", 0) or 0) + int(getattr(g, "paste_feather", 0) or 0)


def _colour(mask: torch.Tensor) -> torch.Tensor:
    from genkit.data.schemas import HELEN11

    return torch.from_numpy(HELEN11.colorize(mask)).permute(2, 0, 1).float() / 255


# ------------------------------------------------------------------------------------------ metrics table
def metrics_table(metrics: dict, random_weights: dict[str, bool]) -> tuple[list[dict], list[dict]]:
    """(shown, left out): each shown row says what the number is, on what (N) and with which weights.
    ``random_weights``: weights name -> True when random (or missing)."""
    vgg = "RANDOM VGG-19" if random_weights.get("vgg19") else "ImageNet VGG-19"
    shown, omitted = [], []
    st = metrics.get("_style_settings", {})
    for method in ("reshuffle", "style-swap", "Gram (Gatys)"):
        key = f"style/{method}/content_dist"
        if key not in metrics:
            continue
        what = f"1 pair ({STYLE_PAIR[0]} x {STYLE_PAIR[1]}, {st.get('size')} px), {vgg}"
        shown.append({"metric": f"{method}: content distance (relu4_1 MSE)", "value": metrics[key], "on": what,
                      "meaning": "relative between methods only" if random_weights.get("vgg19") else "lower = closer"})
        shown.append({"metric": f"{method}: Gram style distance (relu1_1-5_1)",
                      "value": metrics[f"style/{method}/gram_style_dist"], "on": what,
                      "meaning": "relative between methods only" if random_weights.get("vgg19") else "lower = closer"})
        if f"style/{method}/patches_used_fraction" in metrics:
            shown.append({"metric": f"{method}: style patches used at relu4_1",
                          "value": metrics[f"style/{method}/patches_used_fraction"], "on": what,
                          "meaning": "fraction of the style's patches in the target (1 = all; a property of the "
                                     "matching, valid with any weights)"})
    p = metrics.get("_portrait")
    if p:
        n = p["n_eval"]
        on = f"{n} held-out synthetic faces, 64 px"
        for g, d in p["direction"].items():
            shown.append({"metric": f"{g} transfer: result closer to the donor", "value": d["toward_donor"],
                          "on": f"{d['pairs']} face pairs ({on})",
                          "meaning": "fraction of pairs whose transferred component's colour statistics are nearer "
                                     "the donor's (rendered truth) than the target's; 0.5 = chance"})
        h = p["hair"]
        shown.append({"metric": "face reconstruction error (L1, [0, 1])", "value": h["recon_face"], "on": on,
                      "meaning": "mean absolute error on face pixels; lower is better"})
        shown.append({"metric": "hair removed: error vs the TRUE background", "value": h["hair_vs_true_background"],
                      "on": on, "meaning": f"where the hair was (the photo's own hair there: "
                                           f"{h['photo_in_hair_region']:.3f}, for scale)"})
        shown.append({"metric": "far background: largest difference from the photo", "value": h["far_max"],
                      "on": f"{h['far_pixels']} pixels ({on})", "meaning": "0 = the photo is kept exactly"})
        omitted.append({"metric": "FID / KID of the portraits", "why left out":
                        f"needs hundreds of images (N={n} here): at this N the estimate is mostly bias"
                        + ("; and the Inception weights are missing (it would run on random ones)"
                           if random_weights.get("inception-fid") else "")})
        omitted.append({"metric": "LPIPS (reconstruction, diversity)", "why left out":
                        "the LPIPS trunk weights are missing: a random trunk's distances rank nothing"
                        if random_weights.get("lpips-alex") else "the pixel errors above measure the same against known "
                                                                 "truths at this N"})
        omitted.append({"metric": "mask consistency (parser mIoU)", "why left out":
                        "needs a trained face parser; training one does not fit the demo's 5-minute budget "
                        "(genkit-train experiment=parser_synthetic, then genkit eval mask-consistency)"})
    return shown, omitted


# ------------------------------------------------------------------------------------------ W&B
def _log_wandb(settings: DemoSettings, report_images: list[tuple[str, Path]], metrics: dict) -> str | None:
    import wandb

    from genkit.training.tracking import wandb_mode

    run = wandb.init(project="genkit", name="demo", dir=str(settings.out), mode=wandb_mode(),
                     config={"quick": settings.quick, "allow_random": settings.allow_random},
                     tags=["demo"] + (["random-weights"] if _random_used() else []),
                     settings=wandb.Settings(silent=True, console="off"))
    try:
        run.log({**{k: v for k, v in metrics.items() if isinstance(v, (int, float)) and np.isfinite(v)},
                 **{Path(p).stem: wandb.Image(str(p), caption=c) for c, p in report_images}})
        run.summary["random_weights"] = _random_used()
    finally:
        run.finish()
    # run.dir can point at an earlier run of this process (wandb keeps global settings); look on disk instead
    runs = sorted((settings.out / "wandb").glob("*run-*"), key=lambda p: p.stat().st_mtime)
    return str(runs[-1]) if runs else None


def free_cores() -> int:
    """The CPU cores not already kept busy by other processes (1-minute load average), at least 1, at most torch's
    default. On a shared machine, oversubscribed threads are much slower than fewer ones (measured here: a stylisation
    took 73 s with 2 threads next to a busy process, 14 s with 1)."""
    busy = int(os.getloadavg()[0] + 0.5) if hasattr(os, "getloadavg") else 0
    return max(1, min(torch.get_num_threads(), (os.cpu_count() or 1) - busy))


def run_demo(settings: DemoSettings) -> Path:
    from genkit.core import weights
    from genkit.core.files import atomic_write_json

    os.environ.setdefault("WANDB_SILENT", "true")
    threads = settings.threads or free_cores()
    torch.set_num_threads(threads)
    log.info("demo: %d torch thread(s)%s", threads, "" if settings.threads else
             " (the cores the load average leaves free; --threads to choose)")
    settings.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(settings.seed)
    report = Report("genkit demo")
    metrics: dict = {}
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    style_section(settings, report, metrics)
    portrait_section(settings, report, metrics)

    random = {k: v["random"] for k, v in weights.provenance().items()}
    if weights.used_random_weights():
        report.notes.append(
            "RANDOM WEIGHTS were used for: " + ", ".join(k for k, v in random.items() if v)
            + ". The pretrained ImageNet files were not found (see `genkit weights list`). The images show what each "
              "method does with random features; numbers that need the real weights are marked or left out.")
    if settings.quick:
        report.notes.append("--quick: small images and short budgets (style at 96 px, 10 optimiser steps; the portrait "
                            "model trained for about 30 iterations). The eye and skin transfers show; the mouth and "
                            "hair codes need the full demo's training to change anything visible.")
    report.notes.append("Portraits are procedural synthetic faces (no dataset download); style transfer reconstructs "
                        "by image optimisation. The reshuffle decoders are not trained here: they need the real VGG-19 "
                        "weights and far longer training to look good (genkit-train experiment=reshuffle_decoders).")
    unavailable = dict(random)  # for the table: weights used at random, or missing for metrics the demo skipped
    for name in ("inception-fid", "lpips-alex"):
        unavailable.setdefault(name, weights.status(name) != "present")
    shown, omitted = metrics_table(metrics, unavailable)
    sec = report.section("Metrics", "Each number says what it measures, on how many images and with which weights.")
    sec.table = shown
    if omitted:
        report.section("Left out, and why").table = omitted
    timing = report.section("Timings (seconds)")
    images = [img for s in report.sections for img in s.images]
    flat = {f"{r['metric']}": r["value"] for r in shown}
    t_wandb = time.perf_counter()
    wandb_dir = _log_wandb(settings, images, flat)
    settings.timings["W&B run (the report's images)"] = time.perf_counter() - t_wandb
    settings.timings["total (without start-up)"] = time.perf_counter() - t0
    load_after = os.getloadavg()
    timing.text = (f"torch threads: {torch.get_num_threads()}; CPU cores: {os.cpu_count()}; load average (1, 5, 15 "
                   f"min): {', '.join(f'{v:.2f}' for v in load_before)} at the start, "
                   f"{', '.join(f'{v:.2f}' for v in load_after)} at the end.")
    timing.table = [{"stage": k, "seconds": round(v, 1)} for k, v in settings.timings.items()]
    if wandb_dir:
        report.section("W&B", f"This demo's W&B run, with the same images: {wandb_dir} "
                              "(offline runs: upload with `wandb sync`).")
    atomic_write_json(settings.out / "metrics.json", {
        "metrics": {k: v for k, v in metrics.items() if not k.startswith("_")},
        "table": shown, "left_out": omitted, "style_settings": metrics.get("_style_settings"),
        "timings": settings.timings, "load_average": {"start": load_before, "end": load_after},
        "torch_threads": torch.get_num_threads(), "random_weights": weights.used_random_weights(), "weights": weights.provenance()})
    return report.write(settings.out / "report.html")
