"""Benchmark of the portrait editing cGAN: what edits do (quality on synthetic faces), and how fast it runs.

    python benchmarks/portrait.py --quality               # train portrait_synthetic (AE and VAE), measure the edits
    python benchmarks/portrait.py --quality --quick       # the same at a smoke-test budget (numbers mean little)
    python benchmarks/portrait.py --quality --checkpoint last.ckpt --kinds ae   # measure a trained AE, no training
    python benchmarks/portrait.py                         # CPU: s/iteration (256 px, batch 4) and s/edit (256 px)
    python benchmarks/portrait.py --device cuda --amp     # GPU: iterations/s with and without mixed precision
    python benchmarks/portrait.py --tiny --size 64        # the test-sized model

``--quality`` trains the ``portrait_synthetic`` experiment as configured (its full training budget) once as an
autoencoder and once as a VAE (``model.generator.variational=true``), then measures on held-out synthetic faces,
whose components' appearance is known:

* transfer direction: per component group (eyes, mouth, skin, hair), the fraction of pairs where the transferred
  component's colour statistics are closer to the donor's than to the target's, and how often the other
  components stay closer to the target's (:func:`genkit.models.portrait.evaluation.transfer_direction`);
* hair removal: the error of what the generator puts where the hair was against the TRUE background (synthetic
  faces render it), beside the photo's own difference there and the face reconstruction error for scale;
* far background: the largest difference from the photo outside the paste band (0 by construction);
* local edits on a real non-square photo (the astronaut, 512 x 384): how many pixels each transfer changes, and how
  far from its component, with ``region="edit"`` against the whole head regenerated;
* hair removal on real photos (the astronaut's studio backdrop, and her head on a brick wall): the fill's colour
  gap to the backdrop ring and its texture ratio (no true background exists there), with the editor's default fill
  (harmonised with the photo's backdrop) and with ``fill="generator"`` (``--images DIR`` writes the edits);
* hair removal through the editor on synthetic faces drawn at 256 px (4x a 64 px model, as photos are), with both
  fills, against their true background;
* with ``--parser CKPT`` (the parsing loss on): the transfers' mask consistency (the parser's mIoU on them);
* VAE: E[mu^2 + sigma^2] and the KL per component (the prior has 1), reconstruction against the AE's, and the LPIPS
  diversity of prior samples per component (LPIPS with a RANDOM trunk when its weights are missing: then only the
  ordering means something).

The full-size architecture is the default (``conf/model/portrait.yaml``: 512-d codes, 256-channel component maps,
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
sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "tests"))  # the test fixtures (tiny widths, photos)


def build_model(size: int, tiny: bool, parser: bool, overrides: dict | None = None):
    from genkit.models.portrait.module import PortraitGAN
    from fixtures.tiny_portrait import tiny_config

    kw = tiny_config() if tiny else {}
    for key, value in (overrides or {}).items():  # "generator.ngf": 32 -> generator={"ngf": 32}
        block, _, name = key.partition(".")
        kw.setdefault(block, {})[name] = value
    model = PortraitGAN(image_size=size, allow_random=True, **{**kw, "validation": {"lpips": False},
                                                               "ema": {"decay": 0.999}})
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
    opt_g = model.make_optimizer_g(model.generator.parameters())
    opt_d = model.make_optimizer_d(list(model.d_paired.parameters()) + list(model.d_transfer.parameters()))
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
            d = model.discriminator_pass(g["real"], g["fake"], g["cond"], paired)
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


# ------------------------------------------------------------------------------------------------ quality
def train_synthetic(out: Path, extra: list[str]) -> tuple[Path, float]:
    """Train the portrait_synthetic experiment into ``out``; returns its checkpoint and the training time."""
    from genkit.training.entry import compose, run

    cfg = compose(["experiment=portrait_synthetic", "weights.allow_random=true", "logger=csv", "test=false",
                   "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
                   "model.validation.lpips=false", *extra], output_dir=out)
    t0 = time.perf_counter()
    run(cfg)
    return out / "checkpoints" / "last.ckpt", time.perf_counter() - t0


def quality(args) -> dict:
    import tempfile

    from genkit.models.portrait import evaluation as ev
    from genkit.models.portrait.checkpoint import load_generator

    quick = ["data.dataset.n=16", "trainer.max_epochs=1"] if args.quick else []
    out = Path(args.out or tempfile.mkdtemp(prefix="genkit_portrait_bench_"))
    results = {"budget": "quick (smoke test)" if args.quick else "portrait_synthetic as configured"}
    gens = {}
    kinds = [k for k in (("ae", []), ("vae", ["model.generator.variational=true"])) if k[0] in args.kinds]
    if args.checkpoint:  # measure an already-trained autoencoder instead of training
        gen, block, used, why = load_generator(args.checkpoint)
        gens["ae"], kinds = gen.eval(), []
        results["budget"] = f"checkpoint {args.checkpoint}"
        results["ae"] = {"checkpoint": str(args.checkpoint), "weights": used, "why": why}
    for kind, extra in kinds:
        parser = [f"model.parser.checkpoint={args.parser}"] if args.parser else []
        ckpt, seconds = train_synthetic(out / kind, quick + extra + parser + args.override)
        gen, block, used, why = load_generator(ckpt)
        gens[kind] = gen.eval()
        results[kind] = {"train_seconds": seconds, "weights": used, "why": why,
                         "selection": block.get("selection", {})}
        print(f"  trained {kind.upper()} in {seconds:.0f} s; editing with the {used} weights ({why})", flush=True)
    faces = ev.synthetic_transfer_set(args.faces, gens["ae"].image_size)  # held out: a seed no split uses
    image, mask, background = faces["image"], faces["mask"], faces["background"]
    with torch.no_grad():
        for kind, gen in gens.items():
            r = results[kind]
            r["transfer"] = ev.transfer_direction(gen, image, mask, faces["perm"], faces["expected"])
            r["hair_removal"] = ev.hair_removal_error(gen, image, mask, background)
            recon = gen(image, mask)
            face = 1 - gen.background_mask(mask)
            r["recon_face_l1"] = float(((recon - image).abs().mean(1, keepdim=True) / 2 * face).sum() / face.sum())
            r["real_hair_removal"] = real_hair_removal(gen, "backdrop", args.images)
            r["real_hair_removal_generator_fill"] = real_hair_removal(gen, "generator", args.images)
            r["editor_hair_removal"] = {fill: editor_hair_removal(gen, args.faces // 4, fill)
                                        for fill in ("backdrop", "generator")}
            r["local_edits"] = local_edit_reach(gen)
            if args.parser:
                from genkit.models.parsing import load_parser

                net = load_parser(args.parser, expected_schema=gen.schema).eval()
                r["transfer_mask_consistency"] = ev.transfer_mask_consistency(gen, net, image, mask, faces["perm"])
        if "vae" in gens:
            vae = gens["vae"]
            results["vae"]["codes"] = ev.code_statistics(vae, image, mask)
            results["vae"]["diversity"] = diversity(vae, image[:args.diversity_faces], mask[:args.diversity_faces])
    return results


def local_edit_reach(gen) -> dict:
    """On the astronaut cut to 512 x 384 (a real, non-square photo): each component transferred from a synthetic
    face, only what it edits (``edit``) against the whole head regenerated (``face``): the fraction of the photo's
    pixels that change by more than 2/255, and the farthest changed pixel from the component (px)."""
    import numpy as np
    from scipy.ndimage import distance_transform_edt

    from fixtures.portrait_photos import astronaut
    from genkit.data.synthetic import synthetic_face
    from genkit.models.portrait.editor import PortraitEditor

    editor = PortraitEditor(gen)
    photo, labels = astronaut((0, 0, 512, 384))
    donor = synthetic_face(gen.image_size, seed=12)[:2]
    before = torch.from_numpy(photo).permute(2, 0, 1).float() / 255
    out = {}
    for comp, names in (("mouth", ("mouth",)), ("eyes", ("left_eye", "right_eye")), ("skin", ("skin",)),
                        ("hair", ("hair",))):
        classes = [lab for n in names for lab in gen.layout.labels[n]]
        dist = distance_transform_edt(~np.isin(labels, classes))
        for region in ("edit", "face"):
            res = editor.transfer(photo, labels, {comp: donor}, region=region)
            changed = ((res.image - before).abs().amax(0) > 2 / 255).numpy()
            out[f"{comp}/{region}"] = {"changed": float(changed.mean()),
                                       "farthest_px": float(dist[changed].max()) if changed.any() else 0.0}
    return out


def editor_hair_removal(gen, n: int, fill: str, size: int = 256) -> dict:
    """Hair removed through the editor (``fill``: backdrop or generator) on ``n`` held-out synthetic faces drawn at
    ``size`` px (above the model's resolution, as photos are), against their TRUE background: the mean absolute
    error on the [0, 1] scale where the hair was, and the fill's colour gap and texture ratio to its ring."""
    import numpy as np
    from scipy.ndimage import distance_transform_edt

    from genkit.data.synthetic import render_synthetic_face
    from genkit.models.portrait import evaluation as ev
    from genkit.models.portrait.editor import PortraitEditor

    editor = PortraitEditor(gen, fill=fill)
    hair_label = gen.layout.labels["hair"][0]
    errors, gaps, ratios = [], [], []
    for i in range(n):
        image, labels, truth, _ = render_synthetic_face(size, np.random.default_rng([7_000_000, i]))
        hair = labels == hair_label
        res = editor.regenerate(image, labels, np.where(hair, gen.layout.background_label, labels))
        true = torch.from_numpy(truth).permute(2, 0, 1).float() / 255
        errors.append(float((res.image - true).abs().mean(0)[torch.from_numpy(hair)].mean()))
        dist = distance_transform_edt(~hair)
        ring = torch.from_numpy((labels == gen.layout.background_label) & (dist > 4) & (dist <= 16))
        stats = ev.fill_statistics(res.image[None], torch.from_numpy(hair), ring)
        gaps.append(stats["colour_gap"])
        ratios.append(stats["texture_ratio"])
    return {"hair_vs_true_background": float(np.mean(errors)), "colour_gap": float(np.mean(gaps)),
            "texture_ratio": float(np.mean(ratios)), "faces": n, "size": size}


def real_hair_removal(gen, fill: str = "backdrop", images: str | None = None) -> dict:
    """Hair removed on real photos (no true background): the astronaut (a plain studio backdrop) and the same head
    on a textured backdrop (skimage's brick wall); the fill (``fill``: backdrop or generator) against the backdrop
    ring around it. ``images``: a folder to write the edited photos to (hair_removed_PHOTO_FILL.png)."""
    import numpy as np
    from scipy.ndimage import distance_transform_edt
    from skimage import data

    from genkit.models.portrait import evaluation as ev
    from genkit.models.portrait.editor import PortraitEditor
    from fixtures.portrait_photos import BG, HAIR, astronaut

    editor = PortraitEditor(gen, fill=fill)
    photo, labels = astronaut()
    brick = np.stack([data.brick()] * 3, -1).astype(np.float32) * np.array([1.0, 0.75, 0.6], dtype=np.float32)
    textured = np.where((labels != BG)[..., None], photo, brick.clip(0, 255).astype(np.uint8))
    bald = np.where(labels == HAIR, BG, labels)
    hair_dist = distance_transform_edt(labels != HAIR)
    ring = (labels == BG) & (hair_dist > 8) & (hair_dist <= 32)
    out = {}
    for name, image in (("astronaut", photo), ("brick_backdrop", textured)):
        t0 = time.perf_counter()
        res = editor.regenerate(image, labels, bald)
        seconds = time.perf_counter() - t0
        filled = torch.from_numpy(labels == HAIR) & (res.alpha[0] > 0.99)
        out[name] = {**ev.fill_statistics(res.image[None], filled, torch.from_numpy(ring)), "seconds": seconds,
                     "fill": res.fill}
        if images:
            Path(images).mkdir(parents=True, exist_ok=True)
            res.save(Path(images) / f"hair_removed_{name}_{fill}.png")
    return out


def diversity(gen, image, mask, n: int = 6) -> dict:
    from genkit.core import weights
    from genkit.metrics.lpips import build_lpips, lpips_diversity
    from genkit.models.portrait.evaluation import prior_samples

    model = build_lpips(allow_random=True)
    out = {"lpips_weights": "RANDOM" if weights.used_random_weights() and "lpips-alex" in [
        k for k, v in weights.provenance().items() if v["random"]] else "pretrained"}
    for comp in gen.component_names:
        samples = prior_samples(gen, image, mask, comp, n)
        out[comp] = sum(lpips_diversity(s, model) for s in samples) / len(samples)
    return out


def print_quality(results: dict) -> None:
    print(f"\nportrait quality on held-out synthetic faces ({results['budget']}; synthetic faces: NOT a quality claim "
          "about photos)")
    groups = list(results["ae"]["transfer"])
    print(f"  {'transfer: closer to the donor':34s}" + "".join(f"{g:>10s}" for g in groups) + "   (others stay)")
    kinds = [k for k in ("ae", "vae") if k in results]
    for kind in kinds:
        t = results[kind]["transfer"]
        stay = sum(t[g]["others_stay"] for g in groups) / len(groups)
        print(f"  {kind.upper():34s}" + "".join(f"{t[g]['toward_donor']:>10.2f}" for g in groups) + f"   {stay:.2f}")
    print(f"  {'pairs':34s}" + "".join(f"{results['ae']['transfer'][g]['pairs']:>10d}" for g in groups))
    for kind in kinds:
        h = results[kind]["hair_removal"]
        print(f"  {kind.upper()} hair removed: error vs the true background {h['hair_vs_true_background']:.3f} "
              f"(the photo's hair there: {h['photo_in_hair_region']:.3f}; face reconstruction "
              f"{h['recon_face']:.3f}); far background vs photo: max {h['far_max']:.1e} over {h['far_pixels']} px")
        if "transfer_mask_consistency" in results[kind]:
            m = results[kind]["transfer_mask_consistency"]
            print(f"  {kind.upper()} transfers' mask consistency (parser mIoU / pixel accuracy): {m['miou']:.3f} / "
                  f"{m['pixel_acc']:.3f}")
        for name, e in results[kind].get("local_edits", {}).items():
            print(f"  {kind.upper()} astronaut 512x384, {name:11s}: {100 * e['changed']:5.1f} % of the pixels change, "
                  f"the farthest {e['farthest_px']:.0f} px from the component")
        for key, how in (("real_hair_removal_generator_fill", "generator fill"), ("real_hair_removal", "default fill")):
            for photo, f in results[kind].get(key, {}).items():
                print(f"  {kind.upper()} hair removed on {photo} ({how}, {f['fill']}): fill vs backdrop ring: colour "
                      f"gap {f['colour_gap']:.3f}, texture ratio {f['texture_ratio']:.2f} ({f['seconds']:.1f} s)")
        for fill, e in results[kind].get("editor_hair_removal", {}).items():
            print(f"  {kind.upper()} hair removed through the editor, --fill {fill}, {e['faces']} synthetic faces at "
                  f"{e['size']} px: error vs the true background {e['hair_vs_true_background']:.3f}; colour gap "
                  f"{e['colour_gap']:.3f}, texture ratio {e['texture_ratio']:.2f}")
    if "vae" not in results or "train_seconds" not in results["ae"]:
        return
    ae, vae = results["ae"]["recon_face_l1"], results["vae"]["recon_face_l1"]
    print(f"  reconstruction (face L1): AE {ae:.4f}, VAE {vae:.4f} ({100 * (vae / ae - 1):+.1f}%)")
    codes = results["vae"]["codes"]
    print("  VAE codes  E[mu^2+sigma^2]: " + ", ".join(f"{k} {v['moment']:.2f}" for k, v in codes.items()))
    print("             KL per dim:      " + ", ".join(f"{k} {v['kl']:.3f}" for k, v in codes.items()))
    d = results["vae"]["diversity"]
    print(f"  VAE prior-sample LPIPS diversity ({d['lpips_weights']} LPIPS trunk): "
          + ", ".join(f"{k} {v:.3f}" for k, v in d.items() if k != "lpips_weights"))
    print("  training time: " + ", ".join(f"{k.upper()} {results[k]['train_seconds']:.0f} s" for k in ("ae", "vae")))


def argument_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quality", action="store_true", help="train portrait_synthetic (AE and VAE) and measure edits")
    p.add_argument("--quick", action="store_true", help="with --quality: a smoke-test budget")
    p.add_argument("--faces", type=int, default=64, help="with --quality: held-out faces to measure on")
    p.add_argument("--kinds", default="ae,vae", help="with --quality: which models to train (ae, vae or both)")
    p.add_argument("--parser", help="with --quality: a parser checkpoint for the parsing loss (train it with "
                                    "experiment=parser_synthetic); also measures the transfers' mask consistency")
    p.add_argument("--diversity-faces", type=int, default=8, help="with --quality: faces for the sample diversity")
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="with --quality: a Hydra override for both trainings, e.g. trainer.max_epochs=8")
    p.add_argument("--out", help="with --quality: keep the runs here (default: a temporary folder)")
    p.add_argument("--checkpoint", help="with --quality: measure this trained portrait checkpoint (an autoencoder) "
                                        "instead of training (no VAE measures)")
    p.add_argument("--images", help="with --quality: write the hair-removal edits of the real photos here (PNG)")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--iters", type=int, default=3, help="timed training iterations (after one warm-up)")
    p.add_argument("--edits", type=int, default=5, help="timed edits (after one warm-up)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", action="store_true", help="also time mixed precision (fp16 + GradScaler on CUDA)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--tiny", action="store_true", help="the test-sized widths instead of the full-size model")
    p.add_argument("--no-parser", action="store_true", help="leave the parsing loss out")
    p.add_argument("--set", action="append", default=[], metavar="BLOCK.KEY=VALUE",
                   help="override a PortraitGAN sub-config value, e.g. --set generator.ngf=32 --set losses.vgg=0")
    p.add_argument("--skip-train", action="store_true", help="time edits only")
    p.add_argument("--json", help="also write the results to this file")
    return p


def main(argv=None) -> int:
    args = argument_parser().parse_args(argv)

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quality:
        import os

        print(f"load average before: {os.getloadavg()}", flush=True)
        results = quality(args)
        print_quality(results)
        print(f"load average after: {os.getloadavg()}")
        if args.json:
            from genkit.core.files import atomic_write_json

            atomic_write_json(args.json, results)
        return 0
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
        from genkit.core.files import atomic_write_json

        atomic_write_json(args.json, {"info": info, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
