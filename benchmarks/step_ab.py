"""One training step of this checkout against an older commit's, interleaved in one process.

    python benchmarks/step_ab.py --ref 04da734 [--sizes 64,64,10] [--jit false] [--repeats 40]

The older commit's ``mlpx/`` is exported (``git archive``) into a temporary folder as the
package ``mlpx_ref``, so both versions run side by side on the same data, batches and
initial weights. Blocks of 100 Adam steps (digits, batch 32) alternate between the two
(``old, new`` then ``new, old``), and the report is the median of the paired ratios
new / old: load on a shared machine slows both sides of a pair alike, which whole-process
timings cannot promise (the speed benchmark's epoch times varied by 2x between runs while
other work ran, Dec 1 2026). A ratio within a few percent of 1 is noise.

Measured Dec 1 2026 (this machine, issue 13's redesign against 04da734, medians of 40
pairs): digits [64, 64, 10] NumPy 0.998-1.001, kernels 0.995-1.007; [64, 512, 512, 10]
NumPy 1.011, kernels 1.000.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def export_ref(ref: str, folder: Path) -> None:
    """``git archive ref mlpx`` into ``folder/mlpx_ref``, its imports renamed."""
    tar = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "mlpx"], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(tar)) as archive:
        archive.extractall(folder, filter="data")
    (folder / "mlpx").rename(folder / "mlpx_ref")
    for path in (folder / "mlpx_ref").rglob("*.py"):
        text = path.read_text()
        text = re.sub(r"\bmlpx\.", "mlpx_ref.", text)
        text = re.sub(r"from mlpx import", "from mlpx_ref import", text)
        path.write_text(text)


def make_step(pkg: Any, sizes: list[int], jit: str, X0: np.ndarray, y0: np.ndarray) -> Any:
    """One training step (forward, backward, Adam) of ``pkg``'s network, as a function of
    the batch's rows: FastStep where the package has it, else the older train_batch API."""
    net = pkg.MLP(sizes, "relu", seed=0, jit=jit)
    opt = pkg.make_optimizer("adam", lr=1e-3, jit=jit)
    X, y = net.check_data(X0, y0)
    try:
        fast = __import__(f"{pkg.__name__}.fast.step", fromlist=["FastStep"])
    except ImportError:
        fast = None
    if fast is not None:
        step = fast.FastStep(net, opt)

        def run(rows: np.ndarray) -> None:
            step.train_batch(X, y, rows)
            step.update()

        return run
    params, box = net.parameters(), [None]

    def run_legacy(rows: np.ndarray) -> None:
        _, _, box[0] = net.train_batch(X, y, rows, out=box[0])
        opt.step(params, box[0].parameters())

    return run_legacy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ref", required=True, help="the older commit")
    parser.add_argument("--sizes", default="64,64,10", help="layer widths, digits input (64)")
    parser.add_argument("--jit", default="false", choices=["auto", "true", "false"])
    parser.add_argument("--repeats", type=int, default=40, help="pairs of 100-step blocks")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    from sklearn.datasets import load_digits

    X0, y0 = load_digits(return_X_y=True)
    X0 = (X0 - X0.mean(0)) / np.where(X0.std(0) > 0, X0.std(0), 1)
    with tempfile.TemporaryDirectory(prefix="mlpx-ref-") as tmp:
        export_ref(args.ref, Path(tmp))
        sys.path.insert(0, tmp)
        sys.path.insert(0, str(ROOT))
        import mlpx_ref  # type: ignore[import-not-found]

        import mlpx

        steps = {
            "old": make_step(mlpx_ref, sizes, args.jit, X0, y0),
            "new": make_step(mlpx, sizes, args.jit, X0, y0),
        }
        rng = np.random.default_rng(0)
        batches = [rng.permutation(len(y0))[:32] for _ in range(100)]
        for step in steps.values():  # buffers, kernels, caches
            for rows in batches:
                step(rows)
        times: dict[str, list[float]] = {"old": [], "new": []}
        for rep in range(args.repeats):
            for key in ("old", "new") if rep % 2 else ("new", "old"):
                t0 = time.perf_counter()
                for rows in batches:
                    steps[key](rows)
                times[key].append((time.perf_counter() - t0) / len(batches) * 1e6)
    old, new = np.array(times["old"]), np.array(times["new"])
    print(
        f"--ref {args.ref} --sizes {args.sizes} --jit {args.jit}: old {np.median(old):.1f} "
        f"us/step, new {np.median(new):.1f} us/step, new/old paired median "
        f"{np.median(new / old):.3f} ({args.repeats} pairs)"
    )


if __name__ == "__main__":
    main()
