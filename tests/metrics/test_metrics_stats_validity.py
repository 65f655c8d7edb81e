"""Statistics that cannot be right are refused with one line naming the file (issue #22, item 4).

A covariance must be symmetric positive semi-definite (within a tolerance), a mean finite, and the shapes must agree:
before this check ``genkit eval fid a.npz bad.npz`` with ``sigma = -I`` printed ``fid 0`` ("identical").
"""

from __future__ import annotations

import numpy as np
import pytest

from genkit.cli import main

D = 2048


def _bad_files(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, D))
    good_sigma = np.cov(x, rowvar=False)
    nan_mu = np.zeros(D)
    nan_mu[5] = np.nan
    inf_mu = np.zeros(D)
    inf_mu[7] = np.inf
    asym = good_sigma.copy()
    asym[0, 1] += 1.0
    one_negative = np.eye(D)
    one_negative[3, 3] = -1.0
    cases = {
        "negative_identity": (np.zeros(D), -np.eye(D), "positive semi-definite"),
        "one_negative_eigenvalue": (np.zeros(D), one_negative, "positive semi-definite"),
        "asymmetric": (x.mean(0), asym, "not symmetric"),
        "nan_mean": (nan_mu, np.eye(D), "NaN or infinite"),
        "inf_mean": (inf_mu, np.eye(D), "NaN or infinite"),
        "sigma_too_small": (np.zeros(D), np.eye(D - 1), "inconsistent"),
        "mu_too_long": (np.zeros(D + 1), np.eye(D), "inconsistent"),
    }
    out = {}
    for name, (mu, sigma, words) in cases.items():
        np.savez(tmp_path / f"{name}.npz", mu=mu, sigma=sigma)
        out[name] = (tmp_path / f"{name}.npz", words)
    np.savez(tmp_path / "good.npz", mu=x.mean(0), sigma=good_sigma, num_samples=np.asarray(64))
    return tmp_path / "good.npz", out


def test_impossible_statistics_are_refused_naming_the_file(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GENKIT_CACHE_DIR", str(tmp_path / "cache"))
    good, bad = _bad_files(tmp_path)
    for name, (path, words) in bad.items():
        for order in ((good, path), (path, good)):
            code = main(["eval", "fid", str(order[0]), str(order[1])])
            out, err = capsys.readouterr()
            assert code == 2, f"{name}: exit {code}, printed {out!r}"
            lines = [ln for ln in err.splitlines() if ln.startswith("genkit: error")]
            assert len(lines) == 1 and str(path) in lines[0] and words in lines[0], (name, err)
            assert "fid" not in out.lower(), (name, out)


def test_tiny_rounding_asymmetry_and_negative_eigenvalues_are_accepted(tmp_path, capsys, monkeypatch):
    """Statistics from a real run (float32 features, rank-deficient) must keep working."""
    monkeypatch.setenv("GENKIT_CACHE_DIR", str(tmp_path / "cache"))
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20, D)).astype(np.float32)
    sigma = np.cov(x, rowvar=False).astype(np.float32).astype(np.float64)
    sigma[0, 1] += 1e-9  # rounding-level asymmetry
    np.savez(tmp_path / "real.npz", mu=x.mean(0), sigma=sigma)
    np.savez(tmp_path / "same.npz", mu=x.mean(0), sigma=sigma)
    code = main(["eval", "fid", str(tmp_path / "real.npz"), str(tmp_path / "same.npz"), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    import json

    assert json.loads(out)["fid"] == pytest.approx(0.0, abs=1e-6)
