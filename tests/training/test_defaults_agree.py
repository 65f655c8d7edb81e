"""Every default has one home, and what runs is what the yaml says.

A notebook user who builds a module with its Python defaults and a Hydra user who runs ``conf/model/*.yaml`` get
the same training; every experiment runs the values it composes. (On genkit 0.2 these failed: the portrait
schedule decayed over 10 epochs from Python and 45 from the yaml; the parser's AdamW ran 2e-3 vs 3e-3.)
"""

import functools
import inspect

import hydra.utils
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from genkit.core.hparams import build, plain
from genkit.training.entry import CONF_DIR
from helpers import REPO

MODELS = sorted(p.stem for p in (REPO / "conf" / "model").glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml"))


def described(fn) -> dict | None:
    """A factory as it runs (what is compared with the yaml): its target and every keyword it will be called with,
    the function's own defaults included (``None`` stays ``None``)."""
    if fn is None:
        return None
    out = plain(fn)
    target = fn.func if isinstance(fn, functools.partial) else fn
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return out
    for p in params:
        if p.default is not p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            out.setdefault(p.name, plain(p.default))
    return out


def _compose(overrides):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("train", [*overrides, "weights.allow_random=true"])


def _factories(model_cfg: dict) -> list[str]:
    return [k for k, v in model_cfg.items() if isinstance(v, dict) and v.get("_partial_")]


def _agrees(runs: dict, yaml: dict) -> dict:
    """The keys of ``yaml`` (meta keys aside) whose value differs from ``runs``: {key: (runs, yaml)}."""
    return {k: (runs.get(k), v) for k, v in yaml.items()
            if not k.startswith("_") and plain(runs.get(k)) != plain(v)}


def _running_factory(model, key):
    value = model.hparams[key]
    return described(build(value, None, key)) if value is not None else None


@pytest.mark.parametrize("name", MODELS)
def test_python_defaults_equal_the_yaml(name):
    cfg = _compose([f"model={name}"])
    yaml = OmegaConf.to_container(cfg.model, resolve=True)
    raw = OmegaConf.to_container(cfg.model, resolve=False)
    target = hydra.utils.get_class(yaml["_target_"])
    params = inspect.signature(target.__init__).parameters
    # only what the yaml takes from other groups (data size, schema, the weights flag) is passed from Python
    needed = {k: yaml[k] for k, v in raw.items() if isinstance(v, str) and v.startswith("${")}
    model = target(**needed)
    wrong = {}
    for key, value in yaml.items():
        if key.startswith("_") or key in needed:
            continue
        if isinstance(value, dict) and value.get("_partial_"):
            wrong.update({f"{key}.{k}": d for k, d in _agrees(_running_factory(model, key) or {}, value).items()})
        elif isinstance(value, dict) and "_target_" in value:  # a sub-config class: its own signature defaults
            sub = inspect.signature(hydra.utils.get_class(value["_target_"])).parameters
            defaults = {k: p.default for k, p in sub.items() if p.default is not p.empty}
            wrong.update({f"{key}.{k}": d for k, d in _agrees(defaults, value).items() if k in defaults})
        elif key in params and params[key].default is not params[key].empty:
            if plain(params[key].default) != value and not (value is None and key in _factories(yaml)):
                wrong[key] = (params[key].default, value)
    assert not wrong, f"conf/model/{name}.yaml and the Python defaults of {target.__name__} disagree: {wrong}"


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_what_runs_equals_what_the_experiment_composes(experiment):
    cfg = _compose([f"experiment={experiment}"])
    yaml = OmegaConf.to_container(cfg.model, resolve=True)
    model = hydra.utils.instantiate(cfg.model)
    wrong = {}
    for key in _factories(yaml):
        wrong.update({f"{key}.{k}": d for k, d in _agrees(_running_factory(model, key), yaml[key]).items()})
    scalars = {k: v for k, v in yaml.items() if not isinstance(v, (dict, list)) and not k.startswith("_")}
    wrong.update({k: d for k, d in _agrees(dict(model.hparams), scalars).items() if k in model.hparams})
    assert not wrong, f"experiment={experiment}: the model runs {wrong} (runs, yaml)"
