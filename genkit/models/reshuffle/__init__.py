"""Deep feature reshuffle style transfer (Gu, Chen, Liao, Yuan; CVPR 2018).

The style image's deep features are *rearranged* so that every content patch gets a similar style patch and
no style patch is used more than ``max_usage`` times: the rearrangement keeps the style's Gram statistics
(global look), the patch matching keeps its local patterns. ``max_usage=None`` is plain style-swap.

Modules, one job each: ``features`` (matching representation), ``matching`` (global/local candidates),
``solver`` (usage-limited assignment), ``voting``, ``level`` (match-vote-blend at one level), ``pyramid``
(coarse-to-fine), ``decoders`` / ``optimize`` (reconstruction), ``color``, ``masks``, ``stats``, ``api``
(``stylize``, ``Stylizer``), ``module`` (the decoder-training LightningModule).
"""

from genkit.models.reshuffle.api import Stylizer, StyleResult, stylize
from genkit.models.reshuffle.config import LevelConfig, ReshuffleConfig, build_config
from genkit.models.reshuffle.decoders import ReshuffleDecoders, load_decoders, save_decoders
from genkit.models.reshuffle.optimize import OptimizeSettings, gram_transfer
from genkit.models.reshuffle.stats import LevelStats

__all__ = ["stylize", "Stylizer", "StyleResult", "LevelConfig", "ReshuffleConfig", "build_config",
           "ReshuffleDecoders", "load_decoders", "save_decoders", "OptimizeSettings", "gram_transfer", "LevelStats",
           "ReshuffleDecoderModule"]


def __getattr__(name):
    if name == "ReshuffleDecoderModule":  # lazy: importing Lightning is slow and not needed to stylise
        from genkit.models.reshuffle.module import ReshuffleDecoderModule

        return ReshuffleDecoderModule
    raise AttributeError(name)
