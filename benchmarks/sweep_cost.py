"""What a run and a sweep cost around their training: mlpx against a plain scikit-learn loop.

    python benchmarks/sweep_cost.py [--repeats 3] [--epochs 20] [--skip-single] [--skip-grid]
        [--joblib "OVERRIDES" | --joblib ""] [--joblib-small "OVERRIDES" | ""]
        [--joblib-peer WIDTHS,EPOCHS] [--joblib-small-peer WIDTHS,EPOCHS] [--ceiling X]
        [--out FILE]

(``PYTHONPATH=<another checkout>`` measures that checkout's mlpx: the children inherit it.)

The issue-14 grid, 12 jobs on digits::

    mlpx -m optimizer.lr=0.001,0.003,0.01 model.widths=[64],[128] trainer.seed=0,1 \\
        trainer.epochs=20

each side a fresh process, in a fresh temporary folder with the MLflow store created
beforehand (one `mlpx logger.experiment_name=warm trainer.epochs=1` run):

* ``mlpx default``: the grid as above;
* ``mlpx lean``: the same with ``analysis=off logger.log_figures=false``;
* ``sklearn loop``: one Python process looping over the same 12 configurations with
  ``MLPClassifier(hidden_layer_sizes=widths, learning_rate_init=lr, random_state=seed,
  max_iter=epochs, batch_size=32)`` on the same split (load, standardise, fit, score).

The joblib comparisons (``--joblib``: widths [512, 256]; ``--joblib-small``: widths [128]):
a sweep of 6 jobs that each train ~2.4 s (every epoch, no early stopping), one job at a time
and with ``hydra/launcher=joblib hydra.launcher.n_jobs=2``; the speed-up is the ratio of
their medians. Their peer: the same 6 networks fitted by scikit-learn's ``MLPClassifier``
in a loop and under ``joblib.Parallel(n_jobs=2)`` (``SKLEARN_JOBLIB``), what two workers
gain on this machine for such jobs without mlpx.

Each joblib comparison also times where the one-at-a-time sweep's time goes (the phases
below, ``{name}_phases_median_s``). With ``--ceiling X`` (what two fits at once gain here,
``benchmarks/parallel_ceiling.py``) it reports ``{name}_bound``: the most two workers could
gain if they started for free and everything but the launching process's own phases (the
sweep's start, mlpx's imports, the summary) ran X times faster (:func:`joblib_bound`).

mlpx's split-dataset cache (``MLPX_DATA_CACHE``, mlpx/data_cache.py) lives in the temporary
folder and is warm after the first run, as for a user after their first run; one single run
with a cold cache is timed too.

Then single runs (fresh processes, existing store): ``mlpx --help``, ``mlpx`` (default;
twice, around ``MLPX_FIGURE_PROCESS=0 mlpx``, which draws the figures in the run's process
instead of a forked child), ``mlpx logger=none``, and ``mlpx`` on a fresh store. Each
single run is also timed per phase in a child process that wraps mlpx's own functions with
a clock (imports, config, store, data, training, analyses, figures, logging/end). Prints
medians and writes ``benchmarks/results/sweep_cost.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "sweep_cost.json"
GRID = ["optimizer.lr=0.001,0.003,0.01", "model.widths=[64],[128]", "trainer.seed=0,1"]

SKLEARN_LOOP = """
import itertools, sys, warnings
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler
warnings.simplefilter("ignore", ConvergenceWarning)
epochs = int(sys.argv[1])
X, y = load_digits(return_X_y=True)
for lr, widths, seed in itertools.product([0.001, 0.003, 0.01], [(64,), (128,)], [0, 1]):
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=seed, stratify=y)
    sc = StandardScaler().fit(Xtr)
    clf = MLPClassifier(hidden_layer_sizes=widths, learning_rate_init=lr, random_state=seed,
                        max_iter=epochs, batch_size=32)
    clf.fit(sc.transform(Xtr), ytr)
    clf.score(sc.transform(Xte), yte)
"""

# The joblib comparisons' peer: the same 6 networks (digits' 70% training split, the
# widths given, Adam at lr 0.001, batches of 32, every epoch of the number given, chosen so
# that each fit takes ~2.5 s here, as the mlpx jobs train) fitted by scikit-learn's
# MLPClassifier, one after the other in one process (BLAS on every core) or by
# joblib.Parallel(n_jobs=2) (loky's workers: BLAS on one core each). Its speed-up is what
# two workers gain for such jobs on this machine, without mlpx.
SKLEARN_JOBLIB = """
import sys, warnings
from joblib import Parallel, delayed
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

def fit(seed):
    warnings.simplefilter("ignore", ConvergenceWarning)
    X, y = load_digits(return_X_y=True)
    Xtr, _, ytr, _ = train_test_split(X, y, test_size=0.3, random_state=seed, stratify=y)
    clf = MLPClassifier(hidden_layer_sizes=widths, learning_rate_init=0.001, batch_size=32,
                        max_iter=epochs, tol=0.0, n_iter_no_change=epochs + 1,
                        random_state=seed)
    clf.fit(StandardScaler().fit_transform(Xtr), ytr)

n_jobs, epochs = int(sys.argv[1]), int(sys.argv[3])
widths = tuple(int(w) for w in sys.argv[2].split(","))
if n_jobs == 1:
    for seed in range(6):
        fit(seed)
else:
    Parallel(n_jobs=n_jobs)(delayed(fit)(seed) for seed in range(6))
"""

# Run in a child: mlpx's entry point with a clock around each phase's function (a phase
# whose function an older checkout lacks is not clocked). Single runs and sweeps alike: in a
# sweep the per-job phases add up over its jobs.
PHASES = """
import sys, time, json
t0 = time.perf_counter()
import mlpx.app.cli as cli
import mlpx.app.build as build
import mlpx.train as train
import mlpx.app.report as report
import mlpx.app.sweep as sweep
import mlpx.tracking.model as tmodel
from hydra._internal.config_loader_impl import ConfigLoaderImpl
try:
    import mlpx.app.offload as offload
except ImportError:
    offload = None
t_import = time.perf_counter() - t0
spent = {}
def clock(owner, name, phase):
    fn = getattr(owner, name, None)
    if fn is None:
        return
    def wrapped(*a, **k):
        s = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            spent[phase] = spent.get(phase, 0.0) + time.perf_counter() - s
    setattr(owner, name, wrapped)
clock(build, "build_dataset", "data")
clock(build, "build_tracker", "store")
clock(train, "fit", "training")
clock(cli, "_sanity_checks", "analyses")
clock(cli, "_post_training_analyses", "analyses")
clock(cli, "_log_figures", "figures")  # before the figure process (older checkouts)
clock(offload, "log_figures", "figures")
clock(tmodel, "log_model", "model logging")
clock(ConfigLoaderImpl, "load_sweep_config", "sweep: Hydra composing each job")
clock(sweep.MlflowSweepCallback, "on_multirun_start", "sweep: start (MLflow import, parent run)")
clock(offload, "stop_worker", "sweep: waiting for the artifact helper")
clock(report, "write_sweep_summary", "sweep: summary")
sys.argv = ["mlpx"] + sys.argv[1:]
try:
    cli.entry()
finally:
    total = time.perf_counter() - t0
    spent["imports (mlpx.app.cli)"] = t_import
    spent["rest (config, model, logging, end)"] = total - sum(spent.values())
    spent["total in process"] = total
    print("PHASES " + json.dumps(spent), file=sys.stderr)
"""


def wall(cmd: list[str], cwd: str, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return took


def phases(args: list[str], cwd: str) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-c", PHASES, *args], cwd=cwd, capture_output=True, text=True
    )
    line = [x for x in proc.stderr.splitlines() if x.startswith("PHASES ")]
    if proc.returncode != 0 or not line:
        raise RuntimeError(f"phases {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(line[-1][len("PHASES ") :])


def fresh_store(root: str) -> str:
    folder = tempfile.mkdtemp(dir=root)
    wall(["mlpx", "logger.experiment_name=warm", "trainer.epochs=1"], folder)
    return folder


# The joblib comparisons: 6 jobs that train ~2.4 s each here (every epoch: no early
# stopping), one at a time against hydra/launcher=joblib with 2 workers, each with its
# scikit-learn peer (widths, epochs). Big networks, whose matrix products BLAS spreads over
# both cores when the jobs run one at a time, and a small one, which runs on one core.
JOBLIB_SWEEP = (
    "trainer.seed=0,1,2,3,4,5 model.widths=[512,256] trainer.epochs=60 "
    "trainer.early_stopping.patience=0"
)
JOBLIB_PEER = ("512,256", "15")
JOBLIB_SMALL_SWEEP = (
    "trainer.seed=0,1,2,3,4,5 model.widths=[128] trainer.epochs=400 "
    "trainer.early_stopping.patience=0"
)
JOBLIB_SMALL_PEER = ("128", "150")


def peer_arg(text: str) -> tuple[str, str]:
    """``"512,256,15"`` -> ``("512,256", "15")``: the peer's widths and epochs."""
    widths, _, epochs = text.rpartition(",")
    if not widths or not epochs.isdigit():
        raise SystemExit(f"peer {text!r}: give WIDTHS,EPOCHS, e.g. 512,256,15")
    return widths, epochs


def joblib_pair(root: str, overrides: str, peer: tuple[str, str]) -> dict[str, float]:
    """Wall seconds of the same sweep one job at a time and with 2 joblib workers, and of
    the scikit-learn peer's two sides (:data:`SKLEARN_JOBLIB` with ``peer``: widths,
    epochs)."""
    args = ["mlpx", "-m", *overrides.split()]
    sk = [sys.executable, "-c", SKLEARN_JOBLIB]
    return {
        "one at a time": wall(args, fresh_store(root)),
        "joblib n_jobs=2": wall(
            [*args, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], fresh_store(root)
        ),
        "scikit-learn one at a time": wall([*sk, "1", *peer], root),
        "scikit-learn joblib n_jobs=2": wall([*sk, "2", *peer], root),
    }


def joblib_summary(times: dict[str, list[float]]) -> dict[str, Any]:
    """Medians and the two speed-ups (mlpx's, the peer's) of :func:`joblib_pair`'s times."""
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "median_s": {k: round(v, 2) for k, v in med.items()},
        "speedup": round(med["one at a time"] / med["joblib n_jobs=2"], 2),
        "peer_speedup": round(
            med["scikit-learn one at a time"] / med["scikit-learn joblib n_jobs=2"], 2
        ),
    }


#: The phases of a sweep that only the launching process runs, whatever its launcher: they
#: are not divided among joblib's workers.
LAUNCHER_PHASES = (
    "sweep: start (MLflow import, parent run)",
    "imports (mlpx.app.cli)",
    "sweep: summary",
)


def joblib_bound(phases: dict[str, float], ceiling: float) -> float:
    """The most two workers can gain on a sweep whose one-at-a-time ``phases`` are given,
    when everything but the launcher's phases runs ``ceiling`` times faster on two workers
    (``benchmarks/parallel_ceiling.py``'s ceiling) and the workers start for free (Amdahl):
    ``total / (launcher + (total - launcher) / ceiling)``."""
    total = phases["total in process"]
    launcher = sum(phases.get(k, 0.0) for k in LAUNCHER_PHASES)
    return total / (launcher + (total - launcher) / ceiling)


def median_phases(samples: list[dict[str, float]]) -> dict[str, float]:
    """Each phase's median over ``samples`` (0 where a sample did not have it)."""
    keys = list(dict.fromkeys(k for s in samples for k in s))
    return {k: round(statistics.median(s.get(k, 0.0) for s in samples), 3) for k in keys}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--skip-single", action="store_true")
    parser.add_argument("--skip-grid", action="store_true")
    parser.add_argument(
        "--joblib",
        default=JOBLIB_SWEEP,
        help="the overrides of the joblib comparison (its jobs should train >= 2 s each); "
        "'' skips it",
    )
    parser.add_argument(
        "--joblib-small",
        default=JOBLIB_SMALL_SWEEP,
        help="the same with a small network; '' skips it",
    )
    parser.add_argument(
        "--joblib-peer",
        default=",".join(JOBLIB_PEER),
        help="the scikit-learn peer of --joblib: WIDTHS,EPOCHS (e.g. 512,256,15)",
    )
    parser.add_argument(
        "--joblib-small-peer",
        default=",".join(JOBLIB_SMALL_PEER),
        help="the same for --joblib-small (e.g. 128,150)",
    )
    parser.add_argument(
        "--ceiling",
        type=float,
        default=0.0,
        help="the ceiling of benchmarks/parallel_ceiling.py (e.g. 1.67): reports the most "
        "two workers could gain on each joblib sweep (joblib_bound)",
    )
    parser.add_argument("--out", type=Path, default=OUT, help="where the JSON goes")
    args = parser.parse_args()
    epochs = f"trainer.epochs={args.epochs}"
    sides = {
        "mlpx default": ["mlpx", "-m", *GRID, epochs],
        "mlpx lean": ["mlpx", "-m", *GRID, epochs, "analysis=off", "logger.log_figures=false"],
        "sklearn loop": [sys.executable, "-c", SKLEARN_LOOP, str(args.epochs)],
    }
    times: dict[str, list[float]] = {k: [] for k in sides}
    singles: dict[str, list[float]] = {
        "mlpx --help": [],
        "mlpx (existing store)": [],
        "mlpx (existing store, MLPX_FIGURE_PROCESS=0)": [],
        "mlpx logger=none": [],
        "mlpx (fresh store)": [],
        "mlpx (existing store, cold data cache)": [],
    }
    breakdown: dict[str, list[dict[str, float]]] = {
        "mlpx (existing store)": [],
        "mlpx logger=none": [],
        "mlpx (fresh store)": [],
    }
    pairs = {
        name: (sweep, peer, {}, [])
        for name, sweep, peer in (
            ("joblib", args.joblib, peer_arg(args.joblib_peer)),
            ("joblib_small", args.joblib_small, peer_arg(args.joblib_small_peer)),
        )
        if sweep
    }
    grid_phases: dict[str, list[dict[str, float]]] = {"mlpx default": [], "mlpx lean": []}
    with tempfile.TemporaryDirectory() as root:
        # mlpx's split-dataset cache in this folder, warmed by each fresh_store run (as after
        # a user's first run); a cold cache is measured once more at the end.
        os.environ["MLPX_DATA_CACHE"] = os.path.join(root, "data-cache")
        for r in range(args.repeats):
            for name, cmd in sides.items():  # the sides take turns within each repeat
                if args.skip_grid:
                    break
                times[name].append(wall(cmd, fresh_store(root)))
                print(f"repeat {r}: {name} {times[name][-1]:.2f} s", flush=True)
            for name in ("mlpx default", "mlpx lean"):  # where the grid's time goes
                if not args.skip_grid:
                    grid_phases[name].append(phases(sides[name][1:], fresh_store(root)))
            for name, (sweep, peer, got, sweep_phases) in pairs.items():
                for k, v in joblib_pair(root, sweep, peer).items():
                    got.setdefault(k, []).append(v)
                    print(f"repeat {r}: {name}: {k} {v:.2f} s", flush=True)
                # where the one-at-a-time sweep's time goes (its launcher's share bounds
                # what two workers can gain: joblib_bound)
                sweep_phases.append(phases(["-m", *sweep.split()], fresh_store(root)))
            if args.skip_single:
                continue
            store = fresh_store(root)
            singles["mlpx --help"].append(wall(["mlpx", "--help"], store))
            singles["mlpx (existing store)"].append(wall(["mlpx"], store))
            in_process = {**os.environ, "MLPX_FIGURE_PROCESS": "0"}  # figures drawn in the run
            singles["mlpx (existing store, MLPX_FIGURE_PROCESS=0)"].append(
                wall(["mlpx"], store, in_process)
            )
            singles["mlpx (existing store)"].append(wall(["mlpx"], store))
            singles["mlpx logger=none"].append(wall(["mlpx", "logger=none"], store))
            singles["mlpx (fresh store)"].append(wall(["mlpx"], tempfile.mkdtemp(dir=root)))
            cold = {**os.environ, "MLPX_DATA_CACHE": tempfile.mkdtemp(dir=root)}
            singles["mlpx (existing store, cold data cache)"].append(wall(["mlpx"], store, cold))
            breakdown["mlpx (existing store)"].append(phases([], store))
            breakdown["mlpx logger=none"].append(phases(["logger=none"], store))
            breakdown["mlpx (fresh store)"].append(phases([], tempfile.mkdtemp(dir=root)))
    sk = statistics.median(times["sklearn loop"]) if times["sklearn loop"] else float("nan")
    result = {
        "grid": " ".join(GRID) + f" {epochs}",
        "repeats": args.repeats,
        "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "sweep_seconds": {k: v for k, v in times.items()},
        "sweep_median_s": {k: round(statistics.median(v), 2) for k, v in times.items() if v},
        "sweep_ratio_to_sklearn": {
            k: round(statistics.median(v) / sk, 2) for k, v in times.items() if v
        },
        "single_seconds": {k: v for k, v in singles.items() if v},
        "single_median_s": {k: round(statistics.median(v), 2) for k, v in singles.items() if v},
        "single_phases_median_s": {k: median_phases(v) for k, v in breakdown.items() if v},
        "sweep_phases_median_s": {k: median_phases(v) for k, v in grid_phases.items() if v},
    }
    for name, (sweep, peer, got, sweep_phases) in pairs.items():
        result[f"{name}_sweep"] = sweep
        result[f"{name}_peer"] = {"widths": peer[0], "epochs": int(peer[1])}
        result[f"{name}_seconds"] = got
        for k, v in joblib_summary(got).items():
            result[f"{name}_{k}"] = v
        result[f"{name}_phases_median_s"] = median_phases(sweep_phases)
        if args.ceiling:
            bound = joblib_bound(result[f"{name}_phases_median_s"], args.ceiling)
            result[f"{name}_bound"] = {"ceiling": args.ceiling, "free_workers": round(bound, 2)}
    if args.skip_grid:
        result.pop("sweep_ratio_to_sklearn")
    if not args.skip_grid:
        print(f"\n12-job digits grid ({result['grid']}), median of {args.repeats}:")
        print("| side | wall s | x sklearn loop |\n|---|---:|---:|")
        for k in times:
            median, ratio = result["sweep_median_s"][k], result["sweep_ratio_to_sklearn"][k]
            print(f"| {k} | {median:.2f} | {ratio} |")
    for k, v in result["sweep_phases_median_s"].items():
        print(f"\nphases of the grid, {k} (s): " + ", ".join(f"{p} {t:.2f}" for p, t in v.items()))
    if result["single_median_s"]:
        print("\nsingle runs, median wall s:")
        for k, v in result["single_median_s"].items():
            print(f"  {k}: {v:.2f}")
        for k, v in result["single_phases_median_s"].items():
            print(f"\nphases of {k} (s): " + ", ".join(f"{p} {t:.2f}" for p, t in v.items()))
    for name, (sweep, _, _, _) in pairs.items():
        print(
            f"\n{name} ({sweep}): {result[f'{name}_median_s']}, speed-up "
            f"{result[f'{name}_speedup']}x; scikit-learn's MLPClassifier on the same 6 "
            f"networks: {result[f'{name}_peer_speedup']}x"
        )
        ph = result[f"{name}_phases_median_s"]
        print("  phases one at a time (s): " + ", ".join(f"{p} {t:.2f}" for p, t in ph.items()))
        if args.ceiling:
            print(
                f"  bound with workers that start for free at ceiling {args.ceiling}: "
                f"{result[f'{name}_bound']['free_workers']}x"
            )
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
