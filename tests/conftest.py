"""Test-wide settings: offline W&B, no downloads, few threads, a private weights cache."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads (see genkit/__init__.py)
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("GENKIT_OFFLINE", "1")
os.environ.setdefault("HYDRA_FULL_ERROR", "1")
# commands the tests start (genkit, genkit-train) import this checkout's genkit, also from a git worktree
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_REPO, os.environ.get("PYTHONPATH")) if p)

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _isolated_weights_dir(tmp_path_factory, monkeypatch):
    """Each test sees an empty weights cache unless it fills one itself (no stray real files)."""
    d = tmp_path_factory.mktemp("weights")
    monkeypatch.setenv("GENKIT_WEIGHTS_DIR", str(d))
    monkeypatch.setenv("GENKIT_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))  # no stray cached FID stats
    yield d


@pytest.fixture
def synthetic_folder(tmp_path):
    """A small generic-layout dataset of synthetic faces."""
    from genkit.data.synthetic import write_synthetic_folder

    return write_synthetic_folder(tmp_path / "synth", n=6, size=64, seed=0, progress=False)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module: tiny tensors gain nothing from a second thread, and lose a lot when the
    cores are shared. Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
