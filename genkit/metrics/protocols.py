"""FID protocols: torch-fidelity (the default), clean-fid (clean and its legacy modes) and pytorch-fid.

A protocol is everything between the image files and the number: reading, resizing, quantisation, the Inception
graph and its weights file, and the distance's matrix square root. Each protocol here reproduces one library's
pipeline, built from that library's own pieces (see :mod:`genkit.metrics.extractors`), so a number can be compared
with a paper that used that library. Statistics record their protocol; FID between two protocols is refused.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

import numpy as np

from genkit.core.errors import ConfigError, DataError
from genkit.metrics import keys


@dataclass(frozen=True)
class Protocol:
    """What one library does, in the words the comparison table prints."""

    name: str
    library: str
    resize: str
    quantisation: str
    network: str
    weights_file: str
    distance: str
    kid: str


_TF_GRAPH = "TF 2015-12-05 Inception graph"
PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (
    Protocol("torch-fidelity", "torch-fidelity", keys.RESIZE_MODE,
             "none: uint8 pixels, resized in float32 inside the network",
             f"torch-fidelity FeatureExtractorInceptionV3 ({_TF_GRAPH})",
             "weights-inception-2015-12-05-6726825d.pth",
             "genkit's exact trace: sum of singular values of B1 B2^T (pivoted Cholesky factors)",
             "unbiased MMD^2, cubic kernel, 100 subsets of 1000 drawn with RandomState(seed), mean and std"),
    Protocol("clean-fid", "clean-fid (mode clean)",
             "PIL bicubic to 299x299 per channel in float32 (antialiased), clipped to [0, 255]",
             "none: the resized floats go to the network unquantised",
             f"clean-fid InceptionV3W: NVIDIA's TorchScript of the {_TF_GRAPH}, input (x - 128) / 128",
             "inception-2015-12-05.pt (TorchScript)",
             "scipy.linalg.sqrtm of S1 S2 (eps 1e-6 on the diagonal if singular), real part",
             "clean-fid's kernel_distance: unbiased MMD^2, 100 subsets of min(N1, N2, 1000), mean only"),
    Protocol("clean-fid-legacy-tf", "clean-fid (mode legacy_tensorflow)",
             "inside the TorchScript network: affine_grid + grid_sample bilinear (TF1 emulation)",
             "none: uint8 pixels",
             f"clean-fid InceptionV3W: NVIDIA's TorchScript of the {_TF_GRAPH}, its full forward",
             "inception-2015-12-05.pt (TorchScript)",
             "scipy.linalg.sqrtm of S1 S2 (eps 1e-6 on the diagonal if singular), real part",
             "clean-fid's kernel_distance"),
    Protocol("clean-fid-legacy-pytorch", "clean-fid (mode legacy_pytorch)",
             "F.interpolate bilinear (align_corners=False, no antialias) of 0-255 floats, outside the network",
             "none: the resized floats go to the network unquantised",
             "pytorch-fid's FID Inception (clean-fid's copy), input 2 x / 255 - 1",
             "pt_inception-2015-12-05-6726825d.pth",
             "scipy.linalg.sqrtm of S1 S2 (eps 1e-6 on the diagonal if singular), real part",
             "clean-fid's kernel_distance"),
    Protocol("pytorch-fid", "pytorch-fid",
             "F.interpolate bilinear (align_corners=False, no antialias) of x / 255 inside the network",
             "none: x / 255 in float32 (torchvision ToTensor)",
             "pytorch-fid InceptionV3 with FID Inception blocks, input 2 x - 1",
             "pt_inception-2015-12-05-6726825d.pth",
             "scipy.linalg.sqrtm of S1 S2 (eps 1e-6 on the diagonal if singular), real part",
             "none in pytorch-fid: torch-fidelity's estimator on pytorch-fid's features"),
)}
DEFAULT = "torch-fidelity"
MAIN = ("torch-fidelity", "clean-fid", "pytorch-fid")


def get_protocol(name: str | None) -> Protocol:
    """The protocol called ``name`` (``None``: the default, torch-fidelity); a ConfigError lists the choices."""
    name = DEFAULT if name is None else name
    if name not in PROTOCOLS:
        raise ConfigError(f"unknown FID protocol {name!r}; choose one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def protocol_of(record: dict) -> str | None:
    """The protocol recorded in statistics' or an extractor's protocol record (None: not written by genkit)."""
    if record.get(keys.KEY_FID_PROTOCOL):
        return record[keys.KEY_FID_PROTOCOL]
    if record.get(keys.KEY_RESIZE) == keys.RESIZE_MODE:  # genkit files from before protocols existed
        return DEFAULT
    return None


def check_same_protocol(p1: dict, p2: dict, what1: str, what2: str) -> None:
    """Refuse FID between statistics of two different protocols (unknown, foreign files pass)."""
    n1, n2 = protocol_of(p1), protocol_of(p2)
    if n1 and n2 and n1 != n2:
        raise ConfigError(f"{what1} was computed under the {n1} protocol and {what2} under {n2}; FID mixing two "
                          f"protocols is meaningless (recompute one side with --protocol {n1} or {n2})")


def build_extractor(name: str | None = None, weights_path=None, allow_random: bool = False, seed: int = 0,
                    device=None):
    """The feature extractor of a protocol (torch-fidelity's is :func:`genkit.metrics.inception.build_inception`)."""
    from genkit.metrics import extractors

    spec = get_protocol(name)
    if spec.name == "torch-fidelity":
        from genkit.metrics.inception import build_inception

        model = build_inception(weights_path, allow_random, seed=seed, device=device)
        return model
    if spec.name == "pytorch-fid":
        model = extractors.build_pytorch_fid(weights_path, allow_random, seed, resize=spec.resize)
    elif spec.name == "clean-fid-legacy-pytorch":
        model = extractors.build_pytorch_fid(weights_path, allow_random, seed, legacy_clean_fid=True,
                                             resize=spec.resize, name=spec.name)
    else:
        mode = "clean" if spec.name == "clean-fid" else "legacy_tensorflow"
        model = extractors.build_clean_fid(mode, weights_path, allow_random, resize=spec.resize, name=spec.name)
    return model if device is None else model.to(device)


def _library_sqrtm_distance(fn, mu1, sigma1, mu2, sigma2, name: str) -> float:
    import warnings

    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the libraries print (and scipy warns) when the product is singular
            return float(fn(mu1, sigma1, mu2, sigma2))
    except (ValueError, np.linalg.LinAlgError) as exc:
        raise DataError(None, f"the {name} protocol's matrix square root (scipy sqrtm) failed: {exc}; with few "
                        "images the product of covariances is singular (the torch-fidelity protocol's exact "
                        "trace handles it)") from None


def frechet_distance_for(name: str, mu1, sigma1, mu2, sigma2, num_samples1=None, num_samples2=None) -> float:
    """FID with the protocol's own matrix square root."""
    spec = get_protocol(name)
    if spec.name == "torch-fidelity":
        from genkit.metrics.fid import frechet_distance

        return frechet_distance(mu1, sigma1, mu2, sigma2, num_samples1, num_samples2)
    if spec.name == "pytorch-fid":
        from pytorch_fid.fid_score import calculate_frechet_distance as fn
    else:
        from cleanfid.fid import frechet_distance as fn
    args = [np.asarray(a, dtype=np.float64) for a in (mu1, sigma1, mu2, sigma2)]
    return _library_sqrtm_distance(fn, *args, name=spec.name)


def clean_fid_kid(features1, features2, subsets: int = 100, subset_size: int = 1000, seed: int | None = 0) -> float:
    """clean-fid's ``kernel_distance`` (it draws subsets from NumPy's global generator: seeded here, then restored)."""
    from cleanfid.fid import kernel_distance

    f1 = np.asarray(features1, dtype=np.float32)
    f2 = np.asarray(features2, dtype=np.float32)
    state = np.random.get_state()
    try:
        if seed is not None:
            np.random.seed(seed)
        return kernel_distance(f1, f2, num_subsets=subsets, max_subset_size=subset_size)
    finally:
        np.random.set_state(state)


def uses_clean_fid_kid(name: str | None) -> bool:
    return get_protocol(name).name.startswith("clean-fid")


_DIFF_FIELDS = ("resize", "quantisation", "network", "weights_file", "distance")


def differences(a: str, b: str) -> list[str]:
    """What protocol ``b`` does differently from ``a`` (field names of :class:`Protocol`)."""
    pa, pb = get_protocol(a), get_protocol(b)
    return [f for f in _DIFF_FIELDS if getattr(pa, f) != getattr(pb, f)]


def compare_protocols(input1, input2, names: tuple[str, ...] = MAIN, weights_paths: dict | None = None,
                      **kwargs) -> list[dict]:
    """FID of the same two inputs under every protocol in ``names``: one row per protocol.

    Each row: ``protocol``, ``fid`` (None when that protocol could not run: its weights are missing, ...),
    ``error``, ``differs_from`` (the first protocol) and ``differences`` (resize, quantisation, network,
    weights file, distance: which of them differ from the first protocol), and the full ``record``.
    ``weights_paths`` maps protocol names to weights files (default: each protocol's registry file); ``kwargs`` go
    to :func:`genkit.metrics.fid.fid_between`.
    """
    from genkit.core.errors import GenkitError
    from genkit.metrics.fid import SmallSampleWarning, fid_between
    import warnings

    if "weights_path" in kwargs:
        raise ConfigError("each protocol has its own weights file: give weights_paths={protocol: file}")
    rows = []
    for name in names:
        row = {"protocol": name, "fid": None, "error": None, "differs_from": names[0],
               "differences": differences(names[0], name), "record": None}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SmallSampleWarning)
                result = fid_between(input1, input2, protocol=name,
                                     weights_path=(weights_paths or {}).get(name), **kwargs)
            row["fid"], row["record"] = result[keys.KEY_FID], result[keys.KEY_PROTOCOL]
        except GenkitError as exc:
            row["error"] = str(exc).splitlines()[0]
        rows.append(row)
    return rows
