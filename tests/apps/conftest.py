"""Fixtures of the browser-app tests: tiny models trained for a few steps on synthetic faces, and a running
``genkit ui`` (the real command, on 127.0.0.1 and a free port) that the API and browser tests share."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("gradio")

UI_SIZE = 128  # photos the app gets; the portrait model works at 32 px and pastes at the photo's size


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train_portrait(out: Path) -> Path:
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    from genkit.data.datamodules import FaceDataModule
    from fixtures.tiny_portrait import tiny_config
    from genkit.models.portrait.module import PortraitGAN

    L.seed_everything(0)
    model = PortraitGAN(image_size=32, **tiny_config(losses={"vgg": 0.0}, validation={"lpips": False}))
    dm = FaceDataModule(image_size=32, batch_size=4, n_synthetic=8, value_range="symmetric", seed=0)
    L.Trainer(max_steps=3, accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
              limit_val_batches=1, num_sanity_val_steps=0,
              callbacks=[ModelCheckpoint(dirpath=out, save_last=True)]).fit(model, dm)
    return out / "last.ckpt"


def _train_parser(folder: Path, out: Path) -> Path:
    """A tiny helen11 parser trained for a few steps on the synthetic faces (its masks are rough, but labels)."""
    import lightning as L
    import torch
    from torch.utils.data import DataLoader

    from genkit.core.reading import read_image, read_label_map
    from genkit.core.tensors import pil_to_tensor
    from genkit.data.transforms import resize_labels
    from genkit.models.parsing.module import ParserModule

    L.seed_everything(0)
    items = []
    for img in sorted((folder / "images").glob("*.png")):
        photo = read_image(img).resize((32, 32))
        labels = resize_labels(read_label_map(folder / "masks" / img.name, 11), 32)
        items.append({"image": pil_to_tensor(photo), "mask": torch.from_numpy(labels)})
    model = ParserModule(schema="helen11", image_size=32, base_channels=8, depth=2, class_weights="none", lr=5e-3,
                         scheduler=None)
    trainer = L.Trainer(accelerator="cpu", max_steps=120, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    trainer.fit(model, train_dataloaders=DataLoader(items, batch_size=4))
    trainer.save_checkpoint(out / "parser.ckpt")
    return out / "parser.ckpt"


@pytest.fixture(scope="session")
def ui_models(tmp_path_factory):
    from genkit.data.synthetic import write_synthetic_folder

    d = tmp_path_factory.mktemp("ui_models")
    faces = write_synthetic_folder(d / "faces", n=6, size=UI_SIZE, seed=3, progress=False)
    return {"faces": faces, "portrait": _train_portrait(d / "run"), "parser": _train_parser(faces, d)}


def _wait(url: str, proc: subprocess.Popen, seconds: float = 90) -> None:
    end = time.time() + seconds
    while time.time() < end:
        if proc.poll() is not None:
            raise AssertionError(f"genkit ui exited ({proc.returncode}); see its log")
        try:
            urllib.request.urlopen(url + "/gradio_api/info", timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise AssertionError("genkit ui did not answer in time")


@pytest.fixture(scope="session")
def ui_server(ui_models, tmp_path_factory):
    """``genkit ui`` with the tiny models, random VGG and the optimisation path (few steps); yields its URL and
    output folder, and stops it afterwards."""
    port, out = free_port(), tmp_path_factory.mktemp("ui_out")
    cwd = tmp_path_factory.mktemp("ui_cwd")
    (cwd / "private.txt").write_text("not to be served")
    env = {**os.environ, "GENKIT_OFFLINE": "1", "OMP_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    cmd = [sys.executable, "-m", "genkit", "ui", "--checkpoint", str(ui_models["portrait"]), "--parser",
           str(ui_models["parser"]), "--allow-random", "--steps", "3", "--port", str(port), "--out", str(out),
           "--concurrency", "2"]
    log = open(out / "server.log", "w")  # a file, not a pipe: a full pipe would stall the server
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(url, proc)
        yield {"url": url, "out": out, "cwd": cwd, "proc": proc, "log": out / "server.log"}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="session")
def ui_client(ui_server):
    from gradio_client import Client

    return Client(ui_server["url"], verbose=False)
