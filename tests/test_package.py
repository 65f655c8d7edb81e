"""genkit as an installable package: version, declared Python and dependency ranges, the tested dependency set,
the wheel's contents, configs found from outside the repository, the top-level API and the CLI surface
(help with defaults, one --device policy)."""

from __future__ import annotations

import argparse
import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

import genkit
from genkit.cli import build_parser

from helpers import BIN, REPO, run_cli

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
CONSTRAINTS = REPO / "constraints.txt"


def _requirements(extra: str | None = None) -> dict[str, Requirement]:
    reqs = PYPROJECT["project"]["optional-dependencies"][extra] if extra else PYPROJECT["project"]["dependencies"]
    return {canonical(r.name): r for r in map(Requirement, reqs)}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins() -> dict[str, Version]:
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        assert m, f"constraints.txt: {line!r} is not an exact pin (name==version)"
        pins[canonical(m.group(1))] = Version(m.group(2))
    return pins


# ------------------------------------------------------------------------------------ version and metadata


def test_version_flag_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"genkit {genkit.__version__}"


def test_the_version_is_written_once():
    """pyproject reads the version from genkit.__version__, so the two cannot disagree."""
    assert "version" not in PYPROJECT["project"]
    assert "version" in PYPROJECT["project"]["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "genkit.__version__"}
    Version(genkit.__version__)  # a valid PEP 440 version


def test_declared_python_is_the_tested_one():
    spec = PYPROJECT["project"]["requires-python"]
    assert spec == ">=3.11,<3.12", spec
    classifiers = PYPROJECT["project"]["classifiers"]
    versions = [c.rsplit(":: ", 1)[1] for c in classifiers if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)]
    assert versions == ["3.11"], versions
    assert sys.version_info[:2] == (3, 11), "the suite runs on the Python version pyproject declares"


@pytest.mark.parametrize("name, breaking", [
    ("lightning", "3.0"), ("hydra-core", "1.4"), ("omegaconf", "2.4"), ("numpy", "3.0"), ("torch", "3.0"),
    ("torch-fidelity", "0.5"), ("lpips", "0.2"), ("torchmetrics", "2.0"),
])
def test_dependencies_have_upper_bounds_where_breakage_is_known(name, breaking):
    req = _requirements()[name]
    assert not req.specifier.contains(breaking, prereleases=True), f"{req} admits {name} {breaking}"
    assert req.specifier.contains(metadata.version(name)), f"{req} excludes the installed {metadata.version(name)}"


# ------------------------------------------------------------------------------------ the tested dependency set


def test_constraints_pin_every_dependency_within_the_declared_ranges():
    pins = _pins()
    assert "genkit" not in pins, "constraints.txt must not pin genkit itself"
    assert pins["torch"] == Version("2.14.1") and pins["torchvision"] == Version("0.29.1")
    for extra in (None, "test"):
        for name, req in _requirements(extra).items():
            assert name in pins, f"{name} ({req}) is not pinned in constraints.txt: run `make constraints`"
            assert req.specifier.contains(pins[name], prereleases=True), (
                f"constraints.txt pins {name}=={pins[name]} outside pyproject's {req}")


def test_the_suite_runs_on_the_tested_dependency_set():
    """Direct dependencies installed here are the pinned ones (otherwise the tests test something else)."""
    pins = _pins()
    names = set(_requirements()) | set(_requirements("test"))
    wrong = {n: (metadata.version(n), str(pins[n])) for n in sorted(names) if n in pins
             and Version(metadata.version(n)) != pins[n]}
    assert not wrong, f"installed != constraints.txt (installed, pinned): {wrong}; run `make setup` or `make constraints`"


def test_make_setup_installs_with_the_constraints():
    proc = subprocess.run(["make", "-n", "-B", "setup", "VENV=/nonexistent-venv"], cwd=REPO, capture_output=True,
                          text=True, check=True)
    installs = [line for line in proc.stdout.splitlines() if "pip install" in line]
    assert installs and all("-c constraints.txt" in line for line in installs), proc.stdout
    regen = subprocess.run(["make", "-n", "constraints"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "pip freeze --exclude genkit" in regen and "> constraints.txt.tmp" in regen, regen


def test_benchmark_marked_tests_are_excluded_by_default(tmp_path):
    (tmp_path / "test_x.py").write_text("import pytest\n\n@pytest.mark.benchmark\ndef test_heavy():\n    pass\n\n"
                                        "def test_light():\n    pass\n")
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    run = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "test_x.py"]
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}  # faster; the markers come from pyproject
    default = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True, env=env).stdout
    assert "test_light" in default and "test_heavy" not in default, default
    chosen = subprocess.run([*run, "-m", "benchmark"], cwd=tmp_path, capture_output=True, text=True, env=env).stdout
    assert "test_heavy" in chosen and "test_light" not in chosen, chosen


# ------------------------------------------------------------------------------------ the wheel


def test_the_wheel_carries_every_config_and_data_file(tmp_path):
    """Built from a copy of the sources (no stale build/ folder): every non-Python file under genkit/ ships, and
    the top-level conf/ (the one copy of the configs) ships mapped into the package as genkit/conf/."""
    src = tmp_path / "src"
    shutil.copytree(REPO / "genkit", src / "genkit", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copytree(REPO / "conf", src / "conf")
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "LICENSE"):
        shutil.copy(REPO / name, src / name)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("genkit-*.whl")
    assert wheel.name.startswith(f"genkit-{genkit.__version__}-py3-none-any")
    names = set(zipfile.ZipFile(wheel).namelist())
    data = {p.relative_to(src).as_posix() for p in (src / "genkit").rglob("*") if p.is_file() and p.suffix != ".py"}
    configs = {"genkit/" + p.relative_to(src).as_posix() for p in (src / "conf").rglob("*.yaml")}
    assert any(n.startswith("genkit/conf/experiment/") for n in configs)
    assert (data | configs) - names == set(), f"missing from the wheel: {sorted((data | configs) - names)}"
    assert {n for n in names if n.endswith(".yaml")} == configs
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(meta).decode()
    assert "Requires-Python: <3.12,>=3.11" in text or "Requires-Python: >=3.11,<3.12" in text
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE") for n in names)


def test_license_file_is_mit():
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License") and "genkit developers" in text and "2026" in text
    assert PYPROJECT["project"]["license"] == {"text": "MIT"}


# ------------------------------------------------------------------------------------ user config folders

USER_EXPERIMENT = """# @package _global_
defaults:
  - override /data: faces_synthetic
  - override /model: parser
task_name: my_parser
model:
  base_channels: 8
"""


@pytest.fixture
def user_conf(tmp_path):
    d = tmp_path / "my_configs"
    (d / "experiment").mkdir(parents=True)
    (d / "experiment" / "my_parser.yaml").write_text(USER_EXPERIMENT)
    return d


@pytest.mark.parametrize("how", ["--config-dir", "hydra.searchpath"])
def test_a_user_experiment_in_an_outside_folder_composes(user_conf, tmp_path, how):
    """The packaged configs plus a user's folder: from an unrelated working directory, either way Hydra offers."""
    add = (["--config-dir", str(user_conf)] if how == "--config-dir"
           else [f"hydra.searchpath=[file://{user_conf}]"])
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    proc = run_cli(["genkit-train", *add, "experiment=my_parser", "--cfg", "job"], cwd)
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(proc.stdout)
    assert cfg.task_name == "my_parser" and cfg.model.base_channels == 8
    assert cfg.model._target_ == "genkit.models.parsing.module.ParserModule"  # the packaged model group
    assert cfg.trainer._target_ == "lightning.pytorch.Trainer"
    missing = run_cli(["genkit-train", "experiment=my_parser", "--cfg", "job"], cwd, check=False)
    assert missing.returncode != 0 and "my_parser" in missing.stderr  # not found without the user folder


# ------------------------------------------------------------------------------------ top-level API

API = {
    "stylize": "genkit.models.reshuffle.api:stylize",
    "Stylizer": "genkit.models.reshuffle.api:Stylizer",
    "StyleResult": "genkit.models.reshuffle.api:StyleResult",
    "PortraitEditor": "genkit.models.portrait.editor:PortraitEditor",
    "EditResult": "genkit.models.portrait.editor:EditResult",
    "fid": "genkit.metrics.fid:fid_between",
    "kid": "genkit.metrics.kid:kid_between",
    "lpips": "genkit.metrics.lpips:lpips_between",
    "load_parser": "genkit.models.parsing.checkpoint:load_parser",
    "GenkitError": "genkit.core.errors:GenkitError",
}


def test_top_level_api_names_resolve_to_the_implementations():
    import importlib

    for name, target in API.items():
        module, attr = target.split(":")
        assert getattr(genkit, name) is getattr(importlib.import_module(module), attr), name
    from genkit import PortraitEditor, Stylizer, fid, stylize  # noqa: F401  (the import IDEs see)

    assert set(API) | {"__version__"} <= set(genkit.__all__)
    assert set(genkit.__all__) <= set(dir(genkit))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        genkit.nope  # noqa: B018


def test_top_level_api_is_visible_to_type_checkers():
    """Every lazy name is also imported under ``if TYPE_CHECKING:`` (what IDEs and mypy/pyright read)."""
    tree = ast.parse(Path(genkit.__file__).read_text())
    seen = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom), ast.dump(imp)
                for alias in imp.names:
                    seen[alias.asname or alias.name] = f"{imp.module}:{alias.name}"
    assert seen == API


def test_import_genkit_and_help_stay_light():
    """``import genkit``, building the CLI parser and ``genkit --help`` do not import torch."""
    code = ("import sys, genkit; from genkit.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'lightning', 'hydra', 'wandb') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.strip() == "[]", out


# ------------------------------------------------------------------------------------ the CLI surface


def _all_parsers(parser: argparse.ArgumentParser, path=("genkit",)):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                assert helps.get(name), f"`{' '.join(path)} {name}` has no help line"
                yield from _all_parsers(sub, (*path, name))


PARSERS = list(_all_parsers(build_parser()))
MARKUP = re.compile(r"``|:(func|class|mod|meth|attr|ref):`|\bpaper [AB]\b|\(paper\)")


@pytest.mark.parametrize("path, parser", PARSERS, ids=[" ".join(p) for p, _ in PARSERS])
def test_every_option_has_help_and_help_shows_defaults(path, parser):
    text = parser.format_help()
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction, argparse._VersionAction)):
            continue
        name = "/".join(action.option_strings) or action.dest
        assert action.help and action.help.strip(), f"`{' '.join(path)}` {name}: no help line"
        if action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
            formatter = parser._get_formatter()
            rendered = formatter._expand_help(action)
            assert "default" in rendered, f"`{' '.join(path)}` {name}: help hides its default {action.default!r}"
    bad = MARKUP.search(text)
    assert not bad, f"`{' '.join(path)} --help` shows markup or jargon {bad.group(0)!r}:\n{text}"


def test_help_renders_defaults_concretely():
    sub = dict(PARSERS)
    assert "(default: 100)" in sub[("genkit", "data", "synth")].format_help()
    assert "(default: 1.0)" in sub[("genkit", "stylize")].format_help()  # --slack


DEVICE_COMMANDS = [path for path, p in PARSERS if "--device" in p._option_string_actions]


def test_one_device_policy_for_every_command():
    assert {p[1] for p in DEVICE_COMMANDS} >= {"stylize", "edit", "parse"}
    actions = {path: dict(PARSERS)[path]._option_string_actions["--device"] for path in DEVICE_COMMANDS}
    assert {a.default for a in actions.values()} == {"auto"}, {k: a.default for k, a in actions.items()}
    assert len({a.help for a in actions.values()}) == 1, {k: a.help for k, a in actions.items()}


@pytest.mark.parametrize("helper, home", [("resolve_device", "genkit/core/device.py"), ("cache_dir", "genkit/core/weights.py")])
def test_shared_helpers_are_defined_once(helper, home):
    defs = [f"{p.relative_to(REPO)}" for p in sorted((REPO / "genkit").rglob("*.py"))
            if re.search(rf"^\s*def {helper}\b", p.read_text(), re.M)]
    assert defs == [home], defs


def test_resolve_device_follows_the_policy(monkeypatch):
    import torch

    from genkit.core.device import resolve_device
    from genkit.core.errors import ConfigError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu") and resolve_device(None) == torch.device("cpu")
    with pytest.raises(ConfigError, match="CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match="invalid device 'gpu0'"):
        resolve_device("gpu0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_device_errors_are_clean_cli_errors(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    from genkit.cli import main

    from PIL import Image

    Image.new("RGB", (64, 64), (120, 80, 40)).save(tmp_path / "c.png")
    rc = main(["stylize", str(tmp_path / "c.png"), str(tmp_path / "c.png"), "-o", str(tmp_path / "o.png"),
               "--optimize", "--device", "cuda"])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("genkit: error: ") and "CUDA is not available" in err and "Traceback" not in err


def test_cli_console_scripts_are_declared():
    assert PYPROJECT["project"]["scripts"] == {"genkit": "genkit.cli:main", "genkit-train": "genkit.training.entry:main"}
    assert (BIN / "genkit").exists() and (BIN / "genkit-train").exists()


def test_python_api_takes_the_same_device_names(monkeypatch):
    """Stylizer and PortraitEditor resolve ``device`` with the same helper: ``auto`` works, CUDA is checked."""
    import torch

    from genkit import PortraitEditor, Stylizer
    from genkit.core.errors import ConfigError

    class Encoder(torch.nn.Module):  # stands in for VGG-19 (only its taps are read here)
        taps = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert Stylizer(optimize=True, device="auto", encoder=Encoder()).device == torch.device("cpu")
    assert PortraitEditor(torch.nn.Identity(), device="auto").device == torch.device("cpu")
    with pytest.raises(ConfigError, match="CUDA is not available"):
        Stylizer(optimize=True, device="cuda", encoder=Encoder())
    with pytest.raises(ConfigError, match="CUDA is not available"):
        PortraitEditor(torch.nn.Identity(), device="cuda:0")


# ------------------------------------------------------------------------------------ the layers

LAYERS = [  # lowest first: a package may import its own layer and those before it, never a later one
    ("core",), ("nn",), ("data",), ("metrics",), ("models",), ("training",), ("apps",), ("cli",),
]


def _genkit_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("genkit."):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("genkit.")}
    return found


def test_the_top_level_holds_at_most_three_modules_and_every_package_states_its_job():
    package = REPO / "genkit"
    modules = sorted(p.name for p in package.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert len(modules) <= 3, modules
    for init in package.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc) > 40, f"{init.relative_to(REPO)} does not say what its package is for"


def test_a_lower_layer_never_imports_a_higher_one():
    rank = {name: i for i, names in enumerate(LAYERS) for name in names}
    package = REPO / "genkit"
    wrong = []
    for path in package.rglob("*.py"):
        parts = path.relative_to(package).parts
        if len(parts) < 2 or parts[0] not in rank:
            continue
        for module in _genkit_imports(path):
            top = module.split(".")[1]
            if top in rank and rank[top] > rank[parts[0]]:
                wrong.append(f"{path.relative_to(REPO)} imports {module}")
    assert not wrong, "\n".join(wrong)
