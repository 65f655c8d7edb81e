"""genkit-train never keeps a broken model and fails in one line (#22 items 2, 6, 7)."""

import math
from pathlib import Path

import lightning as L
import pytest
import torch

from helpers import run_cli

from genkit.core.checkpoints import load_checkpoint
from genkit.training.callbacks.finite import NonFiniteError, StopOnNonFinite

from test_train import SMALL


class _Diverging(L.LightningModule):
    """A one-weight regression whose loss is NaN from step ``bad_step`` on (as a too-high learning rate makes it)."""

    def __init__(self, bad_step: int, poison: str = "loss"):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(4))
        self.bad_step, self.poison = bad_step, poison

    def training_step(self, batch, batch_idx):
        loss = ((batch[0] * self.w).sum(1) - 1).pow(2).mean()
        if self.global_step >= self.bad_step:
            if self.poison == "loss":
                return loss * float("nan")
            with torch.no_grad():
                self.w[0] = float("inf")
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(16, 4)), batch_size=2)


@pytest.mark.parametrize("poison", ["loss", "weights"])
def test_a_non_finite_step_stops_the_fit_and_no_such_checkpoint_is_written(tmp_path, poison):
    from genkit.training.callbacks.preemption import PreemptibleCheckpoint

    ckpt = PreemptibleCheckpoint(dirpath=tmp_path, every_n_train_steps=1, save_top_k=-1, save_last=True)
    trainer = L.Trainer(max_steps=8, callbacks=[StopOnNonFinite(), ckpt], logger=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu")
    with pytest.raises(NonFiniteError, match=r"training diverged at step 4 \(epoch 0\): "
                                             + ("loss is nan" if poison == "loss" else "parameter w is no longer")):
        trainer.fit(_Diverging(bad_step=3, poison=poison))
    written = sorted(tmp_path.glob("*.ckpt"))
    assert written and all(load_checkpoint(p) for p in written)  # every file finite (load_checkpoint refuses NaN)
    assert max(torch.load(p, weights_only=True)["global_step"] for p in written) <= 3


def test_the_checkpoint_guard_holds_even_when_parameters_are_checked_rarely(tmp_path):
    ckpt = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=1, save_top_k=-1)
    trainer = L.Trainer(max_steps=8, callbacks=[StopOnNonFinite(check_parameters_every_n_steps=0), ckpt],
                        logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    with pytest.raises(NonFiniteError, match="weight w is not finite"):
        trainer.fit(_Diverging(bad_step=3, poison="weights"))
    assert all(math.isfinite(float(load_checkpoint(p)["state_dict"]["w"].sum())) for p in tmp_path.glob("*.ckpt"))


def test_genkit_train_diverging_exits_1_in_one_line_and_keeps_only_finite_checkpoints(tmp_path):
    proc = run_cli(["genkit-train", "model.optimizer.lr=1e6", "trainer.max_epochs=3", "logger=csv", "test=false",
                    f"paths.log_dir={tmp_path}", *SMALL], tmp_path, check=False)
    assert proc.returncode == 1, proc.stderr[-2000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("genkit-train:")]
    assert len(errors) == 1 and errors[0].startswith("genkit-train: error: training diverged at step ")
    assert "Traceback" not in proc.stderr
    for path in tmp_path.rglob("*.ckpt"):
        load_checkpoint(path)  # raises on non-finite weights


@pytest.mark.parametrize("value, problem", [("-1", "must be a positive number"), ("nan", "must be a finite number")])
def test_an_invalid_learning_rate_is_one_line_and_leaves_no_run_folder(tmp_path, value, problem):
    proc = run_cli(["genkit-train", f"model.optimizer.lr={value}", "logger=csv", f"paths.log_dir={tmp_path}", *SMALL],
                   tmp_path, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"genkit-train: error: model.optimizer.lr={value}: {problem}"
    assert not list((tmp_path / "parser_synthetic" / "runs").glob("*"))


def test_an_os_error_during_training_is_one_line_naming_the_path(tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the checkpoints should go")
    proc = run_cli(["genkit-train", "trainer.max_epochs=1", "logger=csv", "test=false", f"paths.log_dir={tmp_path}",
                    f"callbacks.model_checkpoint.dirpath={blocker}/checkpoints", *SMALL], tmp_path, check=False)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"genkit-train: error: {blocker}/checkpoints: Not a directory"


def test_every_n_train_steps_alone_writes_a_checkpoint_every_n_steps(tmp_path):
    run_cli(["genkit-train", "trainer.max_epochs=3", "logger=csv", "test=false", f"paths.log_dir={tmp_path}",
             "callbacks.model_checkpoint.every_n_train_steps=2", "callbacks.model_checkpoint.save_top_k=-1",
             "callbacks.model_checkpoint.monitor=null", *SMALL], tmp_path)
    ckpts = sorted(p.name for p in tmp_path.rglob("checkpoints/*.ckpt"))
    steps = sorted(int(Path(n).stem.split("step")[1]) for n in ckpts if n != "last.ckpt")
    assert steps == [2, 4, 6], ckpts  # 2 batches per epoch, 3 epochs
