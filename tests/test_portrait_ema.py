"""EMA of weights: ``make_ema`` (used inside the portrait GAN) and the generic ``EMA`` callback for any model."""

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from genkit.callbacks.ema import EMA, make_ema


class Regressor(L.LightningModule):
    """A plain automatic-optimisation model: the callback must work without any EMA code in it."""

    def __init__(self):
        super().__init__()
        self.net = nn.Linear(4, 1)
        self.seen_in_validation = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.mse_loss(self.net(x), y)

    def validation_step(self, batch, batch_idx):
        self.seen_in_validation.append(self.net.weight.detach().clone())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def loader():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 4, generator=g)
    return DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8)


def fit(model, callbacks, max_steps, root, ckpt_path=None):
    tr = L.Trainer(max_steps=max_steps, accelerator="cpu", logger=False, enable_progress_bar=False,
                   enable_model_summary=False, num_sanity_val_steps=0, callbacks=callbacks, default_root_dir=root)
    tr.fit(model, loader(), loader(), ckpt_path=ckpt_path)
    return tr


def test_make_ema_averages_parameters():
    net = nn.Linear(2, 2)
    ema = make_ema(net, decay=0.5)
    assert all(not p.requires_grad for p in ema.parameters())
    ema.update_parameters(net)  # first update copies
    with torch.no_grad():
        net.weight.add_(2.0)
    ema.update_parameters(net)
    assert torch.allclose(ema.module.weight, net.weight - 1.0)
    assert int(ema.n_averaged) == 2
    with pytest.raises(ValueError):
        make_ema(net, decay=1.0)


def test_ema_callback_validates_with_averaged_weights_and_resumes(tmp_path):
    L.seed_everything(0)
    model = Regressor()
    cb = EMA(decay=0.7, attribute="net")
    ckpt = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    fit(model, [cb, ckpt], max_steps=8, root=tmp_path)  # 2 epochs of 4 steps, validation after each
    averaged = cb.ema.module.weight.detach().clone()
    live = model.net.weight.detach().clone()
    assert not torch.allclose(averaged, live)
    # validation saw the averaged weights; training weights were put back afterwards
    assert torch.allclose(model.seen_in_validation[-1], averaged)
    assert int(cb.ema.n_averaged) == 8
    # the checkpoint holds the trained weights (not the swapped-in average) and the callback's average
    state = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert torch.allclose(state["state_dict"]["net.weight"], live)
    cb_state = next(v for k, v in state["callbacks"].items() if k.startswith("EMA"))
    assert torch.allclose(cb_state["ema"]["module.weight"], averaged)

    resumed_cb = EMA(decay=0.7, attribute="net")
    fit(Regressor(), [resumed_cb], max_steps=12, root=tmp_path / "resumed", ckpt_path=tmp_path / "last.ckpt")
    assert int(resumed_cb.ema.n_averaged) == 12  # the same average continued
    assert set(resumed_cb.averaged_state_dict()) == {"weight", "bias"}
