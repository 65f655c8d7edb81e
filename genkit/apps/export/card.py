"""The generated ``README.md`` model card of a model folder (the Hugging Face hub's convention: YAML front matter,
then Markdown): task, architecture, training data and config, steps, metrics with their sample counts and weights
status, the random-weights warning when it applies, licence and how to load the model."""

from __future__ import annotations

import json

from genkit.apps.export.trained import DECODERS, PARSER, PORTRAIT, Trained

TASKS = {PARSER: ("face parsing (a label per pixel)", "image-segmentation"),
         DECODERS: ("style transfer by deep feature reshuffle: the fast path's decoders", "image-to-image"),
         PORTRAIT: ("mask-guided portrait editing: the generator", "image-to-image")}
LOADING = {
    PARSER: ("from genkit import load_parser\nnet = load_parser({ref!r})  # RGB in [0, 1] (B, 3, H, W) -> logits",
             "genkit parse photo.jpg --parser {ref} -o masks/"),
    DECODERS: ("from genkit import Stylizer\nst = Stylizer(decoder={ref!r}{vgg})\nresult = st('content.jpg', "
               "'style.jpg')", "genkit stylize content.jpg style.jpg --decoder {ref}{vgg_cli} -o out.png"),
    PORTRAIT: ("from genkit import PortraitEditor\neditor = PortraitEditor.from_checkpoint({ref!r})",
               "genkit edit --checkpoint {ref} --target face.png --mask face_mask.png -o out.png"),
}


def random_weights_notes(trained: Trained) -> list[str]:
    """Why this model's outputs are not meaningful, if they are not (random encoders, synthetic data...)."""
    notes = []
    block, training = trained.block, trained.block.get("training") or {}
    if trained.kind == DECODERS and (block.get("encoder") or {}).get("random"):
        notes.append("the decoders were trained to invert a RANDOMLY initialised VGG-19: they work only with "
                     "`--vgg-weights random` and their results say nothing about quality")
    if training.get("random_weights"):
        notes.append("trained with RANDOM pretrained networks (weights.allow_random): not meaningful for quality")
    if training.get("synthetic_data"):
        notes.append("trained on SYNTHETIC faces (genkit's procedural generator): a smoke-test model, not for "
                     "real photos")
    if block.get("architecture") == "bisenet" and not block.get("published"):
        notes.append(f"a BiSeNet file that is NOT the published 79999_iter.pth (sha256 "
                     f"{block.get('source_sha256', '?')[:16]}...)")
    return notes


def _metrics_lines(trained: Trained) -> list[str]:
    lines = []
    for m in trained.facts.get("metrics", []):
        lines.append(f"| {m['name']} | {m['value']:.6g} | {m.get('n', 'not recorded')} | {m.get('source', '')} |")
    selection = trained.block.get("selection") or {}
    if selection.get("metric"):
        for which in ("raw", "ema"):
            if selection.get(which) is not None:
                lines.append(f"| {selection['metric']} ({which} generator) | {float(selection[which]):.6g} | "
                             f"{selection.get('n', 'not recorded')} | last validation, step {selection.get('step', '?')}"
                             " |")
    if not lines:
        return ["No metric was recorded with this checkpoint."]
    weights = "RANDOM pretrained networks" if random_weights_notes(trained) else "as trained"
    return ["| metric | value | N (samples) | measured |", "|---|---|---|---|", *lines, "",
            f"Weights status of the measured model: {weights}."]


def _training_data(trained: Trained) -> str:
    training = trained.block.get("training") or {}
    if training.get("data_source"):
        return str(training["data_source"]) + (" (synthetic faces)" if training.get("synthetic_data") else "")
    if trained.architecture == "bisenet":
        return ("CelebAMask-HQ (the published 79999_iter.pth of zllrunning/face-parsing.PyTorch)"
                if trained.block.get("published") else "unknown (a BiSeNet file other than the published one)")
    return "not recorded"


def _vgg_option(trained: Trained) -> tuple[str, str]:
    if trained.kind == DECODERS and (trained.block.get("encoder") or {}).get("random"):
        return ", vgg_weights='random'", " --vgg-weights random"
    return "", ""


def _compact_json(value) -> str:
    """JSON for the card: a schema shows as its name and classes (its colours are in config.json)."""
    def shrink(v):
        if isinstance(v, dict):
            if "classes" in v and "colors" in v:
                return {"name": v.get("name"), "classes": " ".join(map(str, v["classes"]))}
            return {k: shrink(x) for k, x in v.items()}
        return v

    return json.dumps(shrink(value), indent=2, sort_keys=True, default=str)


def model_card(trained: Trained, ref: str = "path/to/this/folder") -> str:
    """The card's Markdown; ``ref`` is how users name the model (a folder path or ``user/name``)."""
    from genkit import __version__

    task, pipeline = TASKS[trained.kind]
    notes = random_weights_notes(trained)
    facts = trained.facts
    vgg, vgg_cli = _vgg_option(trained)
    python, cli = (t.format(ref=ref, vgg=vgg, vgg_cli=vgg_cli) for t in LOADING[trained.kind])
    tags = ["genkit", trained.kind, trained.architecture] + (["random-weights"] if notes else [])
    steps = facts.get("steps")
    lines = ["---", "library_name: genkit", "license: mit", f"pipeline_tag: {pipeline}", "tags:",
             *[f"- {t}" for t in tags], "---", "", f"# genkit {trained.kind}: {trained.architecture}", ""]
    if notes:
        lines += ["> **Warning - random weights / smoke-test model.** " + "; ".join(notes) + ".", ""]
    lines += [f"- **Task**: {task}", f"- **Architecture**: {trained.architecture} "
              f"({sum(int(v.numel()) for v in trained.state.values()):,} values in model.safetensors)",
              f"- **Training data**: {_training_data(trained)}",
              f"- **Training steps**: {steps if steps is not None else 'not recorded'}"
              + (f" (epoch {facts['epoch']})" if "epoch" in facts else ""),
              f"- **Exported from**: `{facts.get('source_file', trained.source)}`"
              + (f" (sha256 {facts['source_sha256']})" if facts.get("source_sha256") else ""),
              f"- **Written by**: genkit {__version__}", "- **Licence**: MIT (genkit); "
              + ("the BiSeNet code and weights of zllrunning/face-parsing.PyTorch are MIT, but CelebAMask-HQ, which "
                 "they were trained on, is for non-commercial research" if trained.architecture == "bisenet"
                 else "weights trained with genkit; the training data's own terms apply"), ""]
    lines += ["## Metrics", "", *_metrics_lines(trained), "", "## How to load it", "", "```python", python, "```",
              "", "```bash", cli, "```", "",
              "`config.json` holds what rebuilds the network (the same block as genkit's checkpoints) and "
              "`model.safetensors` its weights; genkit refuses a folder whose weights are not finite, are missing or "
              "do not fit the config.", "", "## Configuration", "", "```json",
              _compact_json({trained.block_key: trained.block}), "```", ""]
    if facts.get("run_config"):
        lines += ["## Training run config", "", "```json",
                  _compact_json(facts["run_config"]), "```", ""]
    return "\n".join(lines)
