"""The documentation builds cleanly and cannot silently drift from the command line.

* ``mkdocs build --strict`` (broken links and anchors, pages missing from the nav: all fatal, see mkdocs.yml);
* every ``genkit ...`` command shown in the docs and the README (fenced code blocks and inline code) names
  sub-commands, options and fixed positional choices that exist in ``genkit.cli.build_parser()``;
* every Hydra config choice shown with ``genkit-train`` (``experiment=...``, ``trainer=...``, ``hydra/launcher=...``)
  names a file under ``conf/``.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from genkit.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CONF = ROOT / "conf"
SOURCES = sorted(DOCS.rglob("*.md")) + [ROOT / "README.md"]

FENCE = re.compile(r"^(```|~~~)")
INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
GROUP_CHOICE = re.compile(r"^[+~]*([a-z_][a-z0-9_/]*)=(.+)$")
BRACKETS = "[](){}"


# --------------------------------------------------------------------------------------------- extraction


def _command_lines(path: Path) -> list[tuple[int, str]]:
    """``(line number, text)`` of shell lines in fenced code blocks (continuations joined) and of inline code."""
    out: list[tuple[int, str]] = []
    fence = None
    pending, pending_no = "", 0
    for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        m = FENCE.match(line.strip())
        if m and (fence is None or line.strip().startswith(fence)):
            fence = m.group(1) if fence is None else None
            pending = ""
            continue
        if fence is not None:
            text = line.rstrip()
            if not pending:
                pending_no = no
            if text.endswith("\\"):
                pending += text[:-1] + " "
                continue
            out.append((pending_no, pending + text))
            pending = ""
        else:
            out.extend((no, span) for span in INLINE.findall(line))
    return out


def _strip_comment(text: str) -> str:
    return re.split(r"(?:^|\s)#", text, maxsplit=1)[0]


def _segments(text: str) -> list[list[str]]:
    """Shell-like token lists of each command in a line (split at ``&&`` and ``;``; prompts dropped)."""
    text = _strip_comment(text).strip()
    if text.startswith("$ "):
        text = text[2:]
    out = []
    for part in re.split(r"&&|;", text):
        try:
            tokens = shlex.split(part)
        except ValueError:
            tokens = part.split()
        while tokens and re.match(r"^[A-Z_][A-Z0-9_]*=", tokens[0]):  # VAR=value prefixes
            tokens = tokens[1:]
        if tokens:
            out.append(tokens)
    return out


def _program(tokens: list[str]) -> tuple[str | None, list[str]]:
    first = os.path.basename(tokens[0])
    if first in ("genkit", "genkit-train"):
        return first, tokens[1:]
    if first.startswith("python") and tokens[1:3] == ["-m", "genkit.training.entry"]:
        return "genkit-train", tokens[3:]
    if first.startswith("python") and tokens[1:3] == ["-m", "genkit"]:
        return "genkit", tokens[3:]
    return None, tokens


def _is_placeholder(tok: str) -> bool:
    return (not tok or tok == "..." or "<" in tok or tok.isupper() or tok.startswith("$")
            or tok in ("|", "-", "CMD"))


# ------------------------------------------------------------------------------------------- checking


def _subparsers(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def _takes_values(action: argparse.Action) -> str:
    """'none', 'one' (exactly one value) or 'unknown' (optional or variable number)."""
    if action.nargs == 0 or isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction,
                                                 argparse._StoreConstAction, argparse._CountAction,
                                                 argparse._HelpAction, argparse._VersionAction)):
        return "none"
    if action.nargs is None or action.nargs == 1:
        return "one"
    return "unknown"


def check_genkit_command(args: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """Problems with ``genkit ARGS``: unknown sub-commands, options, or fixed positional choices."""
    problems: list[str] = []
    path = ["genkit"]
    positional_index = 0
    positionals_checkable = True
    i = 0
    while i < len(args):
        raw = args[i]
        tok = raw.strip(BRACKETS)
        i += 1
        if raw in ("|",) or not tok:
            continue
        if tok.startswith("-") and not re.match(r"^-\d", tok):
            name = tok.split("=", 1)[0]
            for alt in name.split("|"):
                alt = alt.strip(BRACKETS)
                if not alt.startswith("-"):
                    continue
                action = parser._option_string_actions.get(alt)
                if action is None:
                    problems.append(f"`{' '.join(path)}` has no option {alt}")
                    continue
                kind = _takes_values(action)
                if "=" in tok or kind == "none":
                    continue
                if kind == "one":
                    i += 1  # its value
                else:
                    positionals_checkable = False  # cannot tell values from positionals any more
            continue
        sub = _subparsers(parser)
        if sub is not None:
            if _is_placeholder(tok):
                return problems  # e.g. `genkit eval METRIC`: nothing more to check
            alts = [a for a in tok.split("|") if a]
            missing = [a for a in alts if a not in sub.choices]
            if missing:
                problems.append(f"`{' '.join(path)}` has no sub-command {', '.join(missing)} "
                                f"(choices: {', '.join(sub.choices)})")
                return problems
            parser = sub.choices[alts[0]]
            path.append(alts[0])
            for other in alts[1:]:  # `genkit eval fid|kid ...`: check the rest of the line against each
                problems.extend(check_genkit_command(path[1:-1] + [other] + args[i:], build_parser_cached()))
            positional_index = 0
            positionals_checkable = True
            continue
        if positionals_checkable:
            positionals = [a for a in parser._get_positional_actions()
                           if not isinstance(a, argparse._SubParsersAction)]
            if positional_index < len(positionals):
                action = positionals[positional_index]
                if action.choices is not None and not _is_placeholder(tok):
                    bad = [a for a in tok.split("|") if a and a not in action.choices]
                    if bad:
                        problems.append(f"`{' '.join(path)}`: {action.dest} must be one of "
                                        f"{', '.join(map(str, action.choices))}, docs show {', '.join(bad)}")
                if action.nargs in (None, 1):
                    positional_index += 1
                else:
                    positionals_checkable = False
    return problems


_PARSER: list[argparse.ArgumentParser] = []


def build_parser_cached() -> argparse.ArgumentParser:
    if not _PARSER:
        _PARSER.append(build_parser())
    return _PARSER[0]


def check_hydra_choices(args: list[str]) -> list[str]:
    """Config-group choices (``group=option``, comma lists for sweeps) must name files under conf/."""
    problems = []
    for tok in args:
        m = GROUP_CHOICE.match(tok)
        if not m or not (CONF / m.group(1)).is_dir():
            continue
        group, value = m.groups()
        for option in re.split(r"[,|]", value):
            if not option or _is_placeholder(option) or option in ("null", "none"):
                continue
            if "*" in option:  # `experiment=parser_*`: a pattern must match some config
                if not list((CONF / group).glob(f"{option}.yaml")):
                    problems.append(f"{group}={option}: matches no file in conf/{group}/")
                continue
            if not (CONF / group / f"{option}.yaml").is_file():
                have = sorted(p.stem for p in (CONF / group).glob("*.yaml"))
                problems.append(f"{group}={option}: no conf/{group}/{option}.yaml (have: {', '.join(have)})")
    return problems


def collect_problems(paths: list[Path]) -> tuple[list[str], int]:
    parser = build_parser_cached()
    problems, checked = [], 0
    for path in paths:
        rel = path.relative_to(ROOT)
        for no, text in _command_lines(path):
            for tokens in _segments(text):
                program, args = _program(tokens)
                if program == "genkit":
                    checked += 1
                    problems.extend(f"{rel}:{no}: {p}" for p in check_genkit_command(args, parser))
                elif program == "genkit-train":
                    checked += 1
                    problems.extend(f"{rel}:{no}: {p}" for p in check_hydra_choices(args))
                elif GROUP_CHOICE.match(tokens[0]):  # inline `trainer=ddp`, `experiment=parser_helen`, ...
                    problems.extend(f"{rel}:{no}: {p}" for p in check_hydra_choices(tokens))
    return problems, checked


# ---------------------------------------------------------------------------------------------- tests


def test_mkdocs_strict_build(tmp_path):
    site = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                           "-d", str(site)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    pages = {p.stem for p in DOCS.glob("*.md")}
    for page in pages:
        html = site / ("index.html" if page == "index" else f"{page}/index.html")
        assert html.is_file(), f"{page}.md was not rendered"


def test_every_documented_genkit_command_exists():
    problems, checked = collect_problems(SOURCES)
    assert checked > 50, f"only {checked} commands found in the docs: is the extraction broken?"
    assert not problems, "docs show commands the CLI does not have:\n  " + "\n  ".join(problems)


def test_every_top_level_sub_command_is_documented():
    """The other direction: each `genkit` sub-command appears in some docs command."""
    parser = build_parser_cached()
    shown = set()
    for path in SOURCES:
        for _, text in _command_lines(path):
            for tokens in _segments(text):
                program, args = _program(tokens)
                if program == "genkit":
                    for tok in args:
                        if not tok.startswith("-"):
                            shown.update(tok.strip(BRACKETS).split("|"))
                            break
    assert set(_subparsers(parser).choices) <= shown, sorted(set(_subparsers(parser).choices) - shown)


@pytest.mark.parametrize("line, expected", [
    ("genkit stylize a.png b.png -o out.png --optimize", []),
    ("genkit stylise a.png b.png -o out.png", ["no sub-command stylise"]),
    ("genkit stylize a.png b.png -o out.png --no-such-option", ["no option --no-such-option"]),
    ("genkit eval fid|kid|nope a b", ["no sub-command nope"]),
    ("genkit eval kid a b --net alex", ["no option --net"]),
    ("genkit data prepare celebamask-hq --src a --out b", []),
    ("genkit data prepare imagenet --src a --out b", ["dataset must be one of"]),
    ("genkit edit --checkpoint c --target a.png --mouth b.png:b_mask.png -o out.png", []),
    ("genkit <version> reshuffle", []),
])
def test_the_checker_itself(line, expected):
    _, args = _program(_segments(line)[0])
    problems = check_genkit_command(args, build_parser_cached())
    assert len(problems) == len(expected), problems
    for p, e in zip(problems, expected):
        assert e in p


def test_the_hydra_checker_itself():
    assert check_hydra_choices(["experiment=parser_synthetic", "trainer=ddp_cpu", "hydra/launcher=slurm"]) == []
    assert check_hydra_choices(["-m", "experiment=parser_synthetic,portrait_nope", "model.lr=1e-3,3e-4"])
    assert check_hydra_choices(["data.root=/x", "ckpt_path=last", "experiment=parser_*"]) == []
    assert check_hydra_choices(["experiment=nope_*"])
