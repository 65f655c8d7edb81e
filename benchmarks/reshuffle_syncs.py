"""Host synchronisation points in the reshuffle's loop, per level, iteration and phase.

    .venv/bin/python benchmarks/reshuffle_syncs.py                # 512 px decoder path, astronaut x gravel
    .venv/bin/python benchmarks/reshuffle_syncs.py --size 256 --content chelsea --style brush_strokes

On CUDA the host waits for the device wherever a value or a size computed on the device is needed to go on.
Counted on any device (this machine has no GPU), by the operator that forces the wait:

* ``scalar``: a tensor read as a Python number or truth value (``item``, ``bool``, ``int``, ``float``);
* ``shape``: an operator whose output size depends on the data (``nonzero``, boolean-mask indexing,
  ``masked_select``, ``unique``, ``bincount``, ``repeat_interleave`` without ``output_size``);
* ``host``: a tensor copied to host memory (``tolist``, ``numpy``, ``cpu`` of a device tensor) and the host-only
  exact assignment (``scipy.optimize.linear_sum_assignment``) the fill runs on small chunks.

Each count is per iteration of a level (total over its iterations / iterations run). The phases are the level's
functions: the search (``patchmatch``, or ``dense_topk`` for a global one), the solver's greedy pass, fill and
swaps (``solve`` holds the rest of the solver), the vote, the reported similarity (the stopping rule's value: one
scalar read per iteration by design) and ``other``. VGG-19 and the decoders run with random weights.
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
import sys
import warnings
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

REPO = Path(__file__).resolve().parents[1]
LEVELS = ["relu4_1", "relu3_1", "relu2_1"]
SCALAR_OPS = {"_local_scalar_dense"}
SHAPE_OPS = {"nonzero", "masked_select", "unique", "_unique", "_unique2", "unique_consecutive", "unique_dim",
             "bincount", "nonzero_static"}
INDEX_OPS = {"index", "index_put", "index_put_", "_index_put_impl_"}


class SyncCounter(TorchDispatchMode):
    """Counts, per ``(level, phase, kind)``, the operators that make the host wait for a device."""

    def __init__(self):
        super().__init__()
        self.counts: collections.Counter = collections.Counter()
        self.level, self.phase = "-", "other"

    def add(self, kind: str) -> None:
        self.counts[(self.level, self.phase, kind)] += 1

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        if name in SCALAR_OPS:
            self.add("scalar")
        elif name in SHAPE_OPS:
            self.add("shape")
        elif name == "repeat_interleave" and kwargs.get("output_size") is None:
            self.add("shape")
        elif name in INDEX_OPS and any(i is not None and i.dtype == torch.bool for i in args[1]):
            self.add("shape")
        return func(*args, **kwargs)


def _phase(counter: SyncCounter, owner, name: str, label: str | None = None) -> None:
    """Wrap ``owner.name`` so that what it dispatches is counted under its phase (the innermost wrapped call)."""
    f = getattr(owner, name)

    @functools.wraps(f)
    def wrapped(*a, **k):
        outer, counter.phase = counter.phase, label or name
        try:
            return f(*a, **k)
        finally:
            counter.phase = outer

    setattr(owner, name, wrapped)


def _host_copy(counter: SyncCounter, name: str) -> None:
    f = getattr(torch.Tensor, name)

    @functools.wraps(f)
    def wrapped(self, *a, **k):
        if name != "cpu" or self.device.type != "cpu":
            counter.add("host")
        return f(self, *a, **k)

    setattr(torch.Tensor, name, wrapped)


def instrument(counter: SyncCounter) -> None:
    import scipy.optimize

    import genkit.models.reshuffle.level as level_mod
    import genkit.models.reshuffle.pyramid as pyramid_mod
    import genkit.models.reshuffle.solver as solver_mod

    for name in ("patchmatch", "dense_topk", "solve"):
        _phase(counter, level_mod, name)
    for name in ("greedy_assign", "fill_unassigned", "swap_refine"):
        _phase(counter, solver_mod, name)
    _phase(counter, level_mod.Voter, "update", "vote")
    _phase(counter, level_mod._LevelRun, "reported_similarity", "similarity")
    for name in ("tolist", "numpy", "cpu"):
        _host_copy(counter, name)
    lsap = scipy.optimize.linear_sum_assignment

    def counted_lsap(*a, **k):
        counter.add("host")
        return lsap(*a, **k)

    scipy.optimize.linear_sum_assignment = counted_lsap
    run_level = pyramid_mod.reshuffle_level

    def level_named(content, style, level, *a, **k):
        counter.level = level.tap
        try:
            return run_level(content, style, level, *a, **k)
        finally:
            counter.level = "-"

    pyramid_mod.reshuffle_level = level_named


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--content", default="astronaut")
    p.add_argument("--style", default="gravel")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="benchmark_out", help="folder for the JSON report")
    args = p.parse_args()
    sys.path.insert(0, str(REPO))
    from genkit.core.errors import GenkitError
    from genkit.data.samples import sample_photo
    from genkit.models.reshuffle import ReshuffleDecoders, Stylizer
    from genkit.nn.init import variance_preserving_init
    from genkit.nn.vgg import VGG19Encoder

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        encoder = VGG19Encoder(taps=LEVELS, weights="random")
    torch.manual_seed(0)
    decoder = variance_preserving_init(ReshuffleDecoders(LEVELS, width=1.0))
    try:
        stylizer = Stylizer(decoder=decoder, encoder=encoder, size=args.size, device=args.device)
    except GenkitError as e:
        print(f"reshuffle_syncs: {e}", file=sys.stderr)
        return 2
    counter = SyncCounter()
    instrument(counter)
    with counter:
        result = stylizer(sample_photo(args.content), sample_photo(args.style))
    print(f"# host synchronisation points per iteration, decoder path {args.size} px, {args.content} x {args.style}, "
          f"device {args.device} (RANDOM weights)")
    kinds = ("scalar", "shape", "host")
    report = {}
    for tap in LEVELS:
        iterations = result.level(tap).iterations
        phases = sorted({ph for (lv, ph, _k) in counter.counts if lv == tap})
        rows = {ph: {k: counter.counts[(tap, ph, k)] / iterations for k in kinds} for ph in phases}
        total = {k: sum(r[k] for r in rows.values()) for k in kinds}
        report[tap] = {"iterations": iterations, "phases": rows, "total": total}
        print(f"\n{tap}: {iterations} iterations; per iteration " + ", ".join(f"{k} {total[k]:.1f}" for k in kinds))
        for ph, r in rows.items():
            print(f"  {ph:<16} " + "  ".join(f"{k} {r[k]:6.1f}" for k in kinds))
    outside = {k: counter.counts[("-", "other", k)] for k in kinds}
    print("\noutside the levels (encode, decode, statistics), per transfer: " +
          ", ".join(f"{k} {v}" for k, v in outside.items()))
    report["outside_levels"] = outside
    Path(args.out).mkdir(parents=True, exist_ok=True)
    with open(Path(args.out) / "reshuffle_syncs.json", "w") as f:
        json.dump(report, f, indent=1)
    print(f"report: {Path(args.out) / 'reshuffle_syncs.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
