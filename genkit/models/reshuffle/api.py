"""Python API: ``stylize(content, style, ...)`` and the reusable :class:`Stylizer`.

Inputs are PIL images, image paths or RGB tensors in [0, 1] ((3, H, W) or (1, 3, H, W)). A result carries the
image and per-level assignment statistics (distinct style patches used, max usage, ...), the settings and the
weights provenance, ready to be written as PNG metadata.

    from genkit.models.reshuffle import stylize
    result = stylize(content_img, style_img, optimize=True, allow_random=True, size=256)
    result.to_pil(); result.levels[0].distinct_used
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import torch
from PIL import Image
from torch.nn import functional as F

from genkit.core import model_folders
from genkit.core.device import resolve_device
from genkit.core.errors import ConfigError, DataError
from genkit.core.reading import ReadPolicy
from genkit.models.reshuffle import color
from genkit.models.reshuffle.config import ReshuffleConfig, build_config
from genkit.models.reshuffle.decoders import (DecoderReconstructor, ReshuffleDecoders, check_levels, decoders_from_record,
                                              load_decoders, read_checkpoint)
from genkit.models.reshuffle.masks import check_masks, load_mask, resize_mask
from genkit.models.reshuffle.optimize import OptimizationReconstructor, OptimizeSettings, gram
from genkit.models.reshuffle.pyramid import transfer
from genkit.models.reshuffle.stats import LevelStats
from genkit.models.reshuffle.tiling import TiledEncoder


@dataclass
class StyleResult:
    """One stylised image with its statistics. ``image``: (3, H, W) float in [0, 1] on the CPU."""

    image: torch.Tensor
    levels: list[LevelStats]
    settings: dict
    timings: dict[str, float]
    random_weights: bool
    weights: dict
    content_name: str = "content"
    style_name: str = "style"
    optimization: list[dict] = field(default_factory=list)
    input_conversions: dict[str, str] = field(default_factory=dict)  # input name -> what reading converted
    processing_size: list[int] | None = None  # [W, H] the transfer ran at, when not the image's size

    def to_pil(self) -> Image.Image:
        from genkit.core.tensors import tensor_to_pil

        return tensor_to_pil(self.image)

    def level(self, tap: str) -> LevelStats:
        for lv in self.levels:
            if lv.tap == tap:
                return lv
        raise KeyError(f"no level {tap!r}; levels: {[lv.tap for lv in self.levels]}")

    def summary(self) -> dict:
        """Per-level usage statistics keyed by tap (JSON-friendly)."""
        return {lv.tap: lv.as_dict() for lv in self.levels}

    def metadata(self) -> dict:
        import genkit

        return {
            "generator": f"genkit {genkit.__version__} reshuffle",
            "content": self.content_name, "style": self.style_name,
            "size": list(self.image.shape[-2:])[::-1],
            **({"processing_size": list(self.processing_size)} if self.processing_size else {}),
            "settings": self.settings, "levels": self.summary(),
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "weights": self.weights, "random_weights": self.random_weights,
            **({"optimization": self.optimization} if self.optimization else {}),
            **({"input_conversions": self.input_conversions} if self.input_conversions else {}),
        }

    def save(self, path: str | Path) -> Path:
        from genkit.core.saving import save_image

        return save_image(self.image, path, metadata=self.metadata())


def _name_of(x, default: str) -> str:
    if isinstance(x, (str, Path)):
        return str(x)
    return getattr(x, "filename", None) or default


def to_tensor(x, name: str = "image", reading: ReadPolicy | None = None,
              notes: dict[str, str] | None = None, reduce_to: int | None = None) -> torch.Tensor:
    """An image input as a (1, 3, H, W) float tensor in [0, 1].

    Files and PIL images are read under ``reading`` (default :data:`genkit.core.reading.PHOTOS`: any mode is converted to
    8-bit RGB, EXIF orientation applied; a strict policy refuses non-RGB images); ``notes`` (a dict), when given,
    receives ``name -> conversion`` for inputs that were converted. ``reduce_to``: a file is resized to about this
    long side afterwards, so a large one is decoded reduced (see :func:`genkit.core.reading.read_image`).
    """
    from genkit.core.reading import PHOTOS, as_rgb, conversion_note, read_image
    from genkit.core.tensors import pil_to_tensor

    reading = reading or PHOTOS
    if isinstance(x, (str, Path)):
        x = read_image(x, reading, reduce_to=reduce_to)
        if notes is not None and conversion_note(x):
            notes[name] = conversion_note(x)
    if isinstance(x, Image.Image):
        x, note = as_rgb(x, reading, name)
        if notes is not None and note:
            notes[name] = note
        return pil_to_tensor(x)[None]
    if isinstance(x, torch.Tensor):
        t = x.detach().float()
        if t.dim() == 3:
            t = t[None]
        if t.dim() != 4 or t.shape[0] != 1 or t.shape[1] != 3:
            raise DataError(name, f"expected an RGB tensor (3, H, W) or (1, 3, H, W), got shape {tuple(x.shape)}")
        if not torch.isfinite(t).all():
            raise DataError(name, "image tensor holds NaN or infinite values")
        if t.min() < -1e-3 or t.max() > 1 + 1e-3:
            raise DataError(name, f"image tensor values must be in [0, 1], got [{float(t.min()):.3g}, {float(t.max()):.3g}]")
        return t.clamp(0, 1).cpu()
    raise DataError(name, f"unsupported image input of type {type(x).__name__}")


def _round(x: float) -> int:
    """Nearest integer, halves up (Python's ``round`` rounds halves to even)."""
    return int(math.floor(x + 0.5))


def target_size(hw: Sequence[int], long_side: int | None) -> tuple[int, int]:
    """The exact (H, W) of a result for an input of ``hw``: the input's size (``long_side`` None), else long side
    ``long_side`` with the input's aspect ratio, the short side rounded to the nearest pixel."""
    h, w = int(hw[0]), int(hw[1])
    if long_side is None:
        return h, w
    scale = long_side / max(h, w)
    return (long_side if h >= w else max(1, _round(h * scale)), long_side if w >= h else max(1, _round(w * scale)))


def processing_size(hw: Sequence[int], multiple: int) -> tuple[int, int]:
    """The size the network runs at for a result of ``hw`` (H, W): each side rounded to the nearest multiple of
    ``multiple`` (the deepest level's stride; halves up, at least one multiple)."""
    return tuple(max(multiple, _round(int(s) / multiple) * multiple) for s in hw)


def resize(image: torch.Tensor, hw: Sequence[int]) -> torch.Tensor:
    """(..., 3, H, W) images resized to ``hw`` (bicubic, antialiased when reducing, clamped to [0, 1])."""
    hw = (int(hw[0]), int(hw[1]))
    if tuple(image.shape[-2:]) == hw:
        return image
    batched = image if image.dim() == 4 else image[None]
    out = F.interpolate(batched, size=hw, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    return out if image.dim() == 4 else out[0]


def fit_size(image: torch.Tensor, long_side: int | None, multiple: int) -> torch.Tensor:
    """``image`` resized for processing: the long side ``long_side`` (None: keep) and both sides the nearest
    multiples of ``multiple`` (:func:`target_size`, then :func:`processing_size`).

    The result of the transfer is resized back to the exact :func:`target_size` (:class:`Stylizer` does). Rounding
    the size and resizing back was chosen over padding to the next multiple and cropping: the whole processed
    image is real content (padding would take up to 7 px rows and columns of invented content that draws style
    patches under the usage limit, its statistics and the masks), and the round trip's resampling costs little
    (docs/style-transfer.md, Output size).
    """
    return resize(image, processing_size(target_size(image.shape[-2:], long_side), multiple))


def _source_hw(x, read_hw: Sequence[int], reading: ReadPolicy | None = None) -> tuple[int, int]:
    """(H, W) of an input before :func:`genkit.core.reading.read_image` reduced it while decoding (a file far larger
    than the requested size): from the file's header, turned as reading turns it (EXIF orientation,
    :func:`~genkit.core.reading.upright_size`), so the result's aspect ratio and a label map's expected size are the
    file's as seen, not the reduced image's."""
    from genkit.core.reading import PHOTOS, upright_size

    rh, rw = int(read_hw[0]), int(read_hw[1])
    if not isinstance(x, (str, Path)):
        return rh, rw
    try:
        w, h = upright_size(x, reading or PHOTOS)
    except Exception:  # noqa: BLE001 - it was just read; keep what was read
        return rh, rw
    if h < rh or w < rw:  # never: a reduced decode is smaller on both sides
        return rh, rw
    return h, w


def _option_value(option: str, value: int) -> str:
    return f"{option} {value}" if option.startswith("-") else f"{option}={value}"


def check_min_size(hw: Sequence[int], cfg: ReshuffleConfig, name: str, long_side: int | None = None,
                   option: str = "--size", ceiling: int | None = None) -> tuple[int, int]:
    """The processing size of an input of ``hw`` (H, W) resized to ``long_side`` (None: kept); an input whose
    processing size is too small for the deepest level is refused (:func:`check_processing_side`)."""
    deepest = cfg.levels[0]
    return check_processing_side(hw, cfg.min_side(), cfg.stride, name, long_side, option, ceiling,
                                 f"at {deepest.tap} (stride {deepest.stride}) its feature map would be smaller than "
                                 f"one {deepest.patch_size}x{deepest.patch_size} patch", "shallower/fewer levels")


def check_processing_side(hw: Sequence[int], need: int, multiple: int, name: str, long_side: int | None,
                          option: str, ceiling: int | None, reason: str, alternative: str) -> tuple[int, int]:
    """The processing size (H, W) of an input of ``hw`` resized to ``long_side`` (None: kept), rounded to multiples
    of ``multiple``; when its shorter side is under ``need`` px, a :class:`DataError` naming ``name``, ``reason``
    and ``option`` (the size option that would help, e.g. ``--style-size`` for a style) with a value that works.
    ``ceiling``: the largest value the caller takes without ``--allow-large`` (the command line's); a value past
    it is suggested with that flag, so following the advice is not refused again."""
    h, w = int(hw[0]), int(hw[1])
    ph, pw = processing_size(target_size((h, w), long_side), multiple)
    if min(ph, pw) >= need:
        return ph, pw

    def fits(n: int) -> bool:
        return min(processing_size(target_size((h, w), n), multiple)) >= need

    n = max(need, -(-need * max(h, w) // min(h, w)))  # the long side that makes the short side ``need`` px
    while not fits(n):  # float rounding
        n += 1
    th, tw = target_size((h, w), n)
    size = f"image is {w}x{h} px" + (f" ({pw}x{ph} px as resized for processing)" if (ph, pw) != (h, w) else "")
    hint = f"{_option_value(option, n)} or more ({tw}x{th} px)"
    if ceiling is not None and n > ceiling:
        hint += f" with --allow-large (past the {ceiling} px ceiling)"
    raise DataError(name, f"{size}, too small: {reason}, which needs sides of at least {need} px. Use {hint}, or "
                          f"{alternative}.")


def prepare_input(x, name: str, long_side: int | None, cfg: ReshuffleConfig, reading: ReadPolicy | None = None,
                  notes: dict[str, str] | None = None, option: str = "--size",
                  ceiling: int | None = None) -> tuple[torch.Tensor, tuple[int, int]]:
    """An input read (:func:`to_tensor`) and resized for processing (:func:`fit_size`), with its own (H, W) (the
    file's, also when it was decoded reduced; a result has :func:`target_size` of it, a label map this size).
    Refused when the processing size is too small (:func:`check_min_size`, naming ``option``; ``ceiling``: see
    :func:`check_processing_side`)."""
    t = to_tensor(x, name, reading, notes, reduce_to=long_side)
    source = _source_hw(x, t.shape[-2:], reading)
    processing = check_min_size(source, cfg, name, long_side, option, ceiling)
    return resize(t, processing), source


class Stylizer:
    """Holds the encoder, the reconstruction (decoders or optimisation) and the settings; call it per pair.

    ``decoder``: a checkpoint path, a model folder or hub id (``user/name``) or a :class:`ReshuffleDecoders` (fast
    path); ``optimize``: True or :class:`OptimizeSettings` (image optimisation). Exactly one is needed. ``size``: long
    side of the result (None: the content's size), with the content's aspect ratio; ``style_size``: long side of the
    style image (default ``size``). Both are processed at the nearest multiples of the deepest level's stride (see
    :func:`fit_size`) and the result is resized back to its exact size.
    ``config`` or keyword options (see :func:`~genkit.models.reshuffle.config.build_config`) set the transfer.
    ``restore_detail`` (off: the release's method): with next-level decoders, add back what the decoders lose of
    the content (see :class:`~genkit.models.reshuffle.decoders.DecoderReconstructor`).
    """

    def __init__(self, decoder: str | Path | ReshuffleDecoders | None = None,
                 optimize: bool | OptimizeSettings | dict = False, config: ReshuffleConfig | None = None,
                 size: int | None = 512, style_size: int | None = None, device: str | torch.device = "cpu",
                 allow_random: bool = False, vgg_weights: str | None = None, encoder: torch.nn.Module | None = None,
                 reading: ReadPolicy | None = None, restore_detail: bool = False, vgg_variant: str | None = None,
                 **options):
        if (decoder is None) == (not optimize):
            raise ConfigError("choose one reconstruction: a decoder checkpoint (decoder=...) or optimize=True")
        self.device = resolve_device(device)
        self.size, self.style_size, self.reading = size, style_size, reading
        self.restore_detail = bool(restore_detail)
        self.decoder_path = None
        structure = None  # the decoder set's structure, checked before the (slow) encoder is built
        encoder_record = None
        if isinstance(decoder, (str, Path)):
            self.decoder_path = model_folders.local_path(decoder)  # a hub id is fetched once, here
            record = read_checkpoint(self.decoder_path)["genkit"]
            structure, encoder_record = decoders_from_record(record), record.get("encoder")
        elif isinstance(decoder, ReshuffleDecoders):
            structure = decoder
        if config is None:
            if "levels" not in options or not options["levels"]:
                options["levels"] = structure.levels if structure is not None else None
            config = build_config(**options)
        elif options:
            raise ConfigError(f"pass either config= or keyword options, not both ({sorted(options)})")
        self.config = config
        if structure is not None:
            check_levels(structure, config.taps,
                         f"{self.decoder_path}: decoder checkpoint" if self.decoder_path else "the decoders")
        self.optimize_settings = None
        if optimize:
            if isinstance(optimize, OptimizeSettings):
                self.optimize_settings = optimize
            else:
                self.optimize_settings = OptimizeSettings(**optimize) if isinstance(optimize, dict) else OptimizeSettings()
        if encoder is None:
            from genkit.nn.vgg import VGG19Encoder

            if vgg_variant is None:  # the encoder the decoders were trained for, else torchvision's
                vgg_variant = (encoder_record or {}).get("variant", "torchvision")
            encoder = VGG19Encoder.from_option(config.taps, vgg_weights, allow_random, vgg_variant)
        missing = set(config.taps) - set(encoder.taps)
        if missing:
            raise ConfigError(f"the encoder has no taps {sorted(missing)}")
        self.encoder = encoder.to(self.device).eval()
        self.decoders = None
        self.decoder_record: dict | None = None
        if self.decoder_path is not None:
            self.decoders, self.decoder_record = load_decoders(self.decoder_path, config.taps, encoder=self.encoder,
                                                               map_location=self.device)
        elif isinstance(decoder, ReshuffleDecoders):
            self.decoders = decoder.to(self.device).eval()
        self._style_cache: dict = {}
        self.size_options = ("size", "style_size")  # named by a too-small input's error (the CLI names its flags)
        self.size_ceiling: int | None = None  # the CLI's --allow-large ceiling, named in a suggestion past it

    # ------------------------------------------------------------------------------------------ inputs
    def prepare(self, x, name: str, long_side: int | None, notes: dict[str, str] | None = None,
                option: str = "size") -> tuple[torch.Tensor, tuple[int, int]]:
        """``x`` resized for processing and its own (H, W) (see :func:`prepare_input`)."""
        return prepare_input(x, name, long_side, self.config, self.reading, notes, option, self.size_ceiling)

    def _style_features(self, style: torch.Tensor, key) -> tuple[dict, dict]:
        if key is not None and key in self._style_cache:
            return self._style_cache[key]
        taps = set(self.config.taps)
        with torch.no_grad():
            feats = TiledEncoder(self.encoder, self.config.tile)(style.to(self.device), taps=taps)
        grams = None
        if self.optimize_settings is not None and self.optimize_settings.gram_weight > 0:
            grams = {t: gram(f) for t, f in feats.items()}
        out = (feats, grams)
        if key is not None:
            self._style_cache = {key: out}  # keep one style: bounded memory over long batches
        return out

    def settings(self) -> dict:
        out = {"reconstruction": "decoder" if self.decoders is not None else "optimize",
               "size": self.size, "style_size": self.style_size, "device": str(self.device),
               "encoder": getattr(self.encoder, "identity", None), **self.config.to_dict()}
        if self.decoders is not None:
            out["decoder"] = {"path": str(self.decoder_path) if self.decoder_path else None,
                              "levels": list(self.decoders.levels), "width": self.decoders.width,
                              "target": self.decoders.target, "chain": self.decoders.chain(),
                              "restore_detail": self.restore_detail and self.decoders.target != "image"}
            if self.decoder_path is not None:
                out["decoder"]["sha256"] = model_folders.weights_sha256(self.decoder_path)
                out["decoder"]["encoder"] = (self.decoder_record or {}).get("encoder")
        if self.optimize_settings is not None:
            out["optimize"] = self.optimize_settings.to_dict()
        return out

    # ------------------------------------------------------------------------------------------ transfer
    def __call__(self, content, style, content_mask=None, style_mask=None, *, content_name: str | None = None,
                 style_name: str | None = None, style_key=None) -> StyleResult:
        """Stylise one pair. ``style_key``: a hashable naming the style; consecutive calls with the same key
        reuse its encoded features (the batch loops use it)."""
        from genkit.core import weights

        t_start = time.perf_counter()
        cname = content_name or _name_of(content, "content")
        sname = style_name or _name_of(style, "style")
        notes: dict[str, str] = {}
        c_img, c_source = self.prepare(content, cname, self.size, notes, self.size_options[0])
        s_img, s_source = self.prepare(style, sname, self.style_size or self.size, notes, self.size_options[1])
        c_size = target_size(c_source, self.size)
        cmask = smask = None
        if content_mask is not None or style_mask is not None:
            if content_mask is None or style_mask is None:
                raise ConfigError("semantic masks need both a content mask and a style mask")
            cmask, smask = load_mask(content_mask, "content mask"), load_mask(style_mask, "style mask")
            files = tuple(m if isinstance(m, (str, Path)) else None for m in (content_mask, style_mask))
            images = (content_name or _name_of(content, ""), style_name or _name_of(style, ""))
            check_masks(cmask, smask, c_source, s_source, files, images)  # label maps have their image's own size
            cmask, smask = resize_mask(cmask, tuple(c_img.shape[-2:])), resize_mask(smask, tuple(s_img.shape[-2:]))
        mode = self.config.preserve_color
        c_in, s_in = color.prepare(c_img, s_img, mode)
        # colour modes adapt the style to each content: its features can only be reused without them
        key = None if (mode is not None or style_key is None) else (style_key, tuple(s_img.shape))
        t0 = time.perf_counter()
        s_feats, s_grams = self._style_features(s_in, key)
        t_style = time.perf_counter() - t0
        encoder = TiledEncoder(self.encoder, self.config.tile)  # no gradients through it: tiles bound the memory
        if self.decoders is not None:
            reconstruct = DecoderReconstructor(self.decoders, encoder, restore_detail=self.restore_detail,
                                               alphas={lv.tap: lv.alpha for lv in self.config.levels},
                                               tile=self.config.tile)
        else:
            reconstruct = OptimizationReconstructor(self.encoder, self.optimize_settings, s_grams)
        # ``transfer`` consumes the dict it gets (each level's style map is released once used): a copy when cached
        s_feats = dict(s_feats) if key is not None else s_feats
        out, stats = transfer(encoder, c_in.to(self.device), s_feats, self.config, reconstruct, cmask, smask)
        processed = tuple(out.shape[-2:])
        # the exact requested size (processing ran at multiples of the stride), then the content's colours back
        out = color.finish(resize(out.cpu(), c_size), resize(c_img, c_size), mode)
        timings = {"style_encode": t_style, "total": time.perf_counter() - t_start}
        for lv in stats:
            for k, v in lv.seconds.items():
                timings[f"{lv.tap}/{k}"] = v
        return StyleResult(image=out[0].cpu(), levels=stats, settings=self.settings(), timings=timings,
                           random_weights=bool(self.encoder.random_weights) or weights.used_random_weights(),
                           weights=weights.provenance(), content_name=cname, style_name=sname,
                           optimization=list(getattr(reconstruct, "history", [])), input_conversions=notes,
                           processing_size=None if processed == c_size else [processed[1], processed[0]])

    def batch(self, contents: Sequence, styles: Sequence, progress: bool = False) -> list[StyleResult]:
        """Every content with every style, returned content-major; pairs run style by style, so each style is
        encoded once."""
        pairs = [(i, j) for j in range(len(styles)) for i in range(len(contents))]
        results: dict[tuple[int, int], StyleResult] = {}
        it: Iterable = pairs
        if progress:
            from tqdm import tqdm

            it = tqdm(pairs, desc="stylize", unit="image")
        self._style_cache = {}
        try:
            for i, j in it:
                results[(i, j)] = self(contents[i], styles[j], style_key=("batch", j))
        finally:
            self._style_cache = {}
        return [results[(i, j)] for i in range(len(contents)) for j in range(len(styles))]


def stylize(content, style, *, decoder=None, optimize=False, content_mask=None, style_mask=None,
            stylizer: Stylizer | None = None, **options) -> StyleResult | list[StyleResult]:
    """Stylise ``content`` with ``style``; lists of either give all pairs (content-major) as a list.

    Options are those of :class:`Stylizer` (``size``, ``allow_random``, ``device``...) and of
    :func:`~genkit.models.reshuffle.config.build_config` (``levels``, ``alpha``, ``max_usage``, ``slack``,
    ``preserve_color``, ``iterations``...). Pass ``stylizer=`` to reuse a loaded encoder and decoders.
    """
    st = stylizer or Stylizer(decoder=decoder, optimize=optimize, **options)
    many = isinstance(content, (list, tuple)) or isinstance(style, (list, tuple))
    if many:
        if content_mask is not None or style_mask is not None:
            raise ConfigError("semantic masks are supported for single content/style pairs only")
        cs = list(content) if isinstance(content, (list, tuple)) else [content]
        ss = list(style) if isinstance(style, (list, tuple)) else [style]
        return st.batch(cs, ss)
    return st(content, style, content_mask, style_mask)
