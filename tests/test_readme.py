"""The README is true as written: its commands run on the offline default (no pretrained files, no network,
W&B offline).

Every command of the README's shell blocks has a plan below: run it (substituting only placeholders such as
``/path/to/photos`` or ``<parser run>``, and shrinking sizes and steps where the README shows the full command),
expect its documented error, or skip it with the reason. The shrinking may only touch sizes, counts and steps:
flags such as ``--allow-random`` / ``weights.allow_random=true`` must be in the README itself. A README command
without a plan (or a plan for a command the README no longer shows) fails the first test.
"""

from __future__ import annotations

import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import REPO, run_cli

README = REPO / "README.md"
FENCE = re.compile(r"^```(\w*)\s*$")


def readme_blocks(lang: str) -> list[str]:
    """Commands of the README's fenced blocks of a language (continuations joined, comments dropped)."""
    out, block, pending = [], None, ""
    for line in README.read_text(encoding="utf-8").splitlines():
        m = FENCE.match(line.strip())
        if m:
            block = m.group(1) if block is None else None
            continue
        if block != lang:
            continue
        if lang == "python":
            out.append(line)
            continue
        text = pending + line.strip()
        if text.endswith("\\"):
            pending = text[:-1] + " "
            continue
        pending = ""
        text = re.split(r"(?:^|\s)#", text, maxsplit=1)[0].strip()
        if text:
            out.append(" ".join(text.split()))
    return out


@dataclass(frozen=True)
class Plan:
    how: str                      # "run", "error" (exit code 2 and `match` in the message) or "skip"
    shrink: tuple[str, ...] = ()  # Hydra overrides / CLI options replacing (or added to) the README's values
    why: str = ""                 # for "skip": the reason; for "error": the text the message must contain
    slow: bool = False            # part of the training chain (needs the checkpoints of earlier commands)


TINY_PARSER = ("data.dataset.n=8", "data.image_size=32", "model.base_channels=4", "model.depth=2",
               "trainer.max_epochs=1", "test=false")
PLANS = {
    ". .venv/bin/activate": Plan("skip", why="the test runs inside the venv"),
    "make demo": Plan("skip", why="minutes; CI runs `genkit demo --quick` from the wheel, tests/test_demo.py the demo"),
    "make test": Plan("skip", why="runs this suite"),
    "genkit --help": Plan("run"),
    "genkit --version": Plan("run"),
    "genkit weights list": Plan("run"),
    "genkit-train experiment=reshuffle_decoders data.root=/path/to/photos weights.allow_random=true": Plan(
        "run", ("data.image_size=32", "data.batch_size=2", "trainer.max_epochs=1", "test=false"), slow=True),
    "genkit stylize content.jpg style.jpg -o out.png --allow-random --decoder "
    "outputs/reshuffle_decoders/runs/<time>/checkpoints/last.ckpt": Plan("run", ("--size", "64"), slow=True),
    "genkit stylize contents/ styles/ -o stylised/ --optimize --max-usage none --allow-random": Plan(
        "run", ("--size", "48", "--steps", "2"), slow=True),
    "genkit data synth --out data/faces -n 200": Plan("run", ("-n", "4", "--size", "64")),
    "genkit-train experiment=parser_synthetic": Plan("run", TINY_PARSER, slow=True),
    "genkit parse photos/ --checkpoint <parser run>/checkpoints/last.ckpt -o data/mine": Plan("run", slow=True),
    "genkit export pretrained <parser run> -o my-parser": Plan("run", slow=True),
    "genkit export onnx my-parser -o my-parser-onnx": Plan("run", slow=True),
    "genkit-train experiment=portrait_synthetic model.parser.checkpoint=<parser run>/checkpoints/last.ckpt "
    "weights.allow_random=true": Plan("run", ("data.dataset.n=8", "data.image_size=32", "trainer.max_epochs=1",
                                              "test=false"), slow=True),
    "genkit-train experiment=portrait_folder data.dataset.root=data/faces weights.allow_random=true": Plan(
        "run", ("data.image_size=32", "data.batch_size=2", "trainer.max_epochs=1", "test=false"), slow=True),
    "genkit edit --checkpoint <portrait run>/checkpoints/last.ckpt --target a.png --mask a_mask.png "
    "--mouth b.png:b_mask.png -o edited.png": Plan("run", slow=True),
    "genkit eval fid real/ generated/ --allow-random": Plan("run", ("--batch-size", "4")),
    "genkit eval stats real/ -o real.npz --allow-random": Plan("run", ("--batch-size", "4")),
    "genkit eval fid real/ generated/ --protocol pytorch-fid --allow-random": Plan("run", ("--batch-size", "4")),
    "genkit eval protocols real/ generated/ --allow-random": Plan("run", ("--batch-size", "4")),
    "genkit-train experiment=parser_synthetic ckpt_path=last": Plan(
        "run", (*TINY_PARSER[:-2], "trainer.max_epochs=2", "test=false"), slow=True),
    "genkit-train -m experiment=parser_synthetic model.optimizer.lr=1e-3,3e-4": Plan("run", TINY_PARSER, slow=True),
    "genkit-train experiment=parser_synthetic trainer.fast_dev_run=true": Plan("run", TINY_PARSER[:4]),
    "genkit weights import vgg19 /path/to/vgg19-dcbb9e9d.pth": Plan(
        "error", why="does not match 'vgg19'"),  # the real file cannot be made here: its hash check must speak
}

# what the test may change in a README command: sizes, counts, steps (never flags that change the behaviour)
SHRINKABLE_OVERRIDE = re.compile(
    r"^(data\.(dataset\.n|image_size|batch_size)|model\.(base_channels|depth)|trainer\.max_epochs|test)=")
SHRINKABLE_OPTION = {"--size", "--steps", "-n", "--batch-size"}


def test_every_readme_command_has_a_plan():
    commands = readme_blocks("bash")
    assert len(commands) >= 15, commands
    unplanned = [c for c in commands if c not in PLANS]
    assert not unplanned, "README commands without a plan in tests/test_readme.py:\n  " + "\n  ".join(unplanned)
    stale = [c for c in PLANS if c not in commands]
    assert not stale, "plans for commands the README no longer shows:\n  " + "\n  ".join(stale)


def test_plans_only_shrink_sizes_and_steps():
    for command, plan in PLANS.items():
        shrink = list(plan.shrink)
        while shrink:
            tok = shrink.pop(0)
            if tok.startswith("-"):
                assert tok in SHRINKABLE_OPTION, f"{command}: the test may not add {tok}"
                shrink.pop(0)
            else:
                assert SHRINKABLE_OVERRIDE.match(tok), f"{command}: the test may not add {tok}"
        assert plan.how != "skip" or plan.why


def test_readme_shows_random_weights_where_the_offline_default_needs_them():
    """The commands that need pretrained networks show the explicit flag (else they fail offline)."""
    for command in readme_blocks("bash"):
        needs = (re.search(r"genkit (stylize|eval (fid|kid|lpips|stats))\b", command)
                 or re.search(r"experiment=(portrait_|reshuffle_)", command) and "ckpt_path=" not in command)
        if needs:
            assert "--allow-random" in command or "weights.allow_random=true" in command, command


def test_documented_commands_parse_with_their_required_arguments():
    """Every complete ``genkit`` command in the fenced blocks of the README and docs/ parses (required options and
    mutually exclusive choices included; tests/test_docs.py checks that each option exists)."""
    import contextlib
    import io

    from genkit.cli import build_parser

    parser = build_parser()
    problems, checked = [], 0
    for path in [README, *sorted((REPO / "docs").glob("*.md"))]:
        block, pending = None, ""
        for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            m = FENCE.match(line.strip())
            if m:
                block, pending = (m.group(1) if block is None else None), ""
                continue
            line = pending + line.strip()
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            pending = ""
            text = re.sub(r"<[^>]*>", "X", re.split(r"(?:^|\s)#", line, maxsplit=1)[0]).strip().removeprefix("$ ")
            if block not in ("bash", "sh", "") or not text.startswith("genkit ") or "..." in text:
                continue
            checked += 1
            err = io.StringIO()
            try:
                with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                    parser.parse_args(shlex.split(text)[1:])
            except SystemExit as exc:
                if exc.code:
                    problems.append(f"{path.relative_to(REPO)}:{no}: {text}\n    {err.getvalue().strip().splitlines()[-1]}")
    assert checked > 30, checked
    assert not problems, "documented commands the CLI rejects:\n" + "\n".join(problems)


# --------------------------------------------------------------------------------------------- running


def _shrunk(tokens: list[str], shrink: tuple[str, ...]) -> list[str]:
    tokens = list(tokens)
    extra = list(shrink)
    while extra:
        tok = extra.pop(0)
        if tok.startswith("-"):
            value = extra.pop(0)
            if tok in tokens:
                tokens[tokens.index(tok) + 1] = value
            else:
                tokens += [tok, value]
        else:
            key = tok.split("=", 1)[0] + "="
            same = [i for i, t in enumerate(tokens) if t.startswith(key)]
            if same:
                tokens[same[0]] = tok
            else:
                tokens.append(tok)
    return tokens


def _newest(pattern: str, ws: Path) -> str:
    found = sorted(ws.glob(pattern), key=lambda p: p.stat().st_mtime)
    assert found, f"nothing matches {pattern} in {ws} (did the README command that makes it run?)"
    return str(found[-1])


def _substitute(command: str, ws: Path) -> list[str]:
    """The command's tokens with placeholders only replaced: example absolute paths and the <...> parts that the
    earlier README commands produced (the newest matching run)."""
    for name, task in (("<parser run>", "parser_synthetic"), ("<portrait run>", "portrait_synthetic")):
        if name in command:
            command = command.replace(name, _newest(f"outputs/{task}/runs/*", ws))
    tokens = []
    for tok in shlex.split(command):
        tok = tok.replace("/path/to/photos", str(ws / "photos")).replace("/path/to/", str(ws) + "/")
        if "<time>" in tok:
            tok = _newest(tok.replace("<time>", "*"), ws)
        assert "<" not in tok, f"unknown placeholder in {tok}"
        tokens.append(tok)
    return tokens


def run_readme_command(command: str, ws: Path, capsys) -> str:
    plan = PLANS[command]
    tokens = _shrunk(_substitute(command, ws), plan.shrink)
    if tokens[0] == "genkit-train":
        proc = run_cli(tokens, ws, check=False, timeout=600)
        code, out = proc.returncode, proc.stdout + proc.stderr
    else:
        assert tokens[0] == "genkit", command
        from genkit.cli import main

        capsys.readouterr()
        try:
            code = main(tokens[1:])
        except SystemExit as exc:  # --help / --version
            code = exc.code
        captured = capsys.readouterr()
        out = captured.out + captured.err
    if plan.how == "error":
        assert code == 2 and plan.why in out and "Traceback" not in out, f"{command}:\n{out[-3000:]}"
    else:
        assert code == 0, f"README command failed ({code}): {' '.join(tokens)}\n{out[-4000:]}"
    return out


def _photo(name: str, size: int = 96) -> Image.Image:
    import skimage.data

    img = getattr(skimage.data, name)()
    return Image.fromarray(img).convert("RGB").resize((size, size))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """The README's example inputs under their README names, small."""
    from genkit.data.synthetic import write_synthetic_folder

    ws = tmp_path_factory.mktemp("readme")
    for d in ("photos", "contents", "styles", "real", "generated"):
        (ws / d).mkdir()
    names = ["astronaut", "coffee", "chelsea", "rocket"]
    for n in names:
        _photo(n).save(ws / "photos" / f"{n}.png")
    _photo("astronaut").save(ws / "content.jpg")
    _photo("coffee").save(ws / "style.jpg")
    _photo("chelsea", 48).save(ws / "contents" / "chelsea.png")
    _photo("brick", 48).save(ws / "styles" / "brick.png")
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(ws / "real" / f"{i}.png")
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(ws / "generated" / f"{i}.png")
    faces = write_synthetic_folder(ws / "faces_src", n=2, size=64, seed=1, progress=False)
    for src, dst in (("synth_00000", "a"), ("synth_00001", "b")):
        shutil.copy(Path(faces) / "images" / f"{src}.png", ws / f"{dst}.png")
        shutil.copy(Path(faces) / "masks" / f"{src}.png", ws / f"{dst}_mask.png")
    (ws / "vgg19-dcbb9e9d.pth").write_bytes(b"not the real weights")
    return ws


def test_cheap_readme_commands(workspace, capsys, monkeypatch):
    monkeypatch.chdir(workspace)
    ran = []
    for command in readme_blocks("bash"):
        plan = PLANS[command]
        if plan.how != "skip" and not plan.slow:
            out = run_readme_command(command, workspace, capsys)
            ran.append((command, out))
    outputs = dict(ran)
    import genkit

    assert outputs["genkit --version"].strip() == f"genkit {genkit.__version__}"
    assert "RANDOM" in outputs["genkit eval fid real/ generated/ --allow-random"]
    assert (workspace / "real.npz").is_file() and len(list((workspace / "data/faces/masks").glob("*.png"))) == 4
    assert "finished at step 1" in outputs["genkit-train experiment=parser_synthetic trainer.fast_dev_run=true"]


def test_readme_python_block_imports():
    code = "\n".join(readme_blocks("python"))
    assert "from genkit import" in code
    exec(compile(code, "README.md", "exec"), {})


@pytest.mark.slow
def test_readme_training_chain(workspace, capsys, monkeypatch):
    """Decoders -> stylize, parser -> parse -> portrait -> edit, resume and a sweep, in README order."""
    monkeypatch.chdir(workspace)
    for command in readme_blocks("bash"):
        if PLANS[command].slow:
            run_readme_command(command, workspace, capsys)
    assert (workspace / "out.png").is_file() and len(list((workspace / "stylised").glob("*.png"))) == 1
    assert (workspace / "edited.png").is_file() and list((workspace / "data/mine/masks").glob("*.png"))
    assert (workspace / "my-parser" / "model.safetensors").is_file()
    assert (workspace / "my-parser-onnx" / "parser.onnx").is_file()
    assert list((workspace / "outputs/parser_synthetic/multiruns").glob("*/1/checkpoints/last.ckpt"))
