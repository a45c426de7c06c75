"""The most two workers can gain on this machine: two fits at once against one after the other.

    python benchmarks/parallel_ceiling.py [--repeats 5] [--epochs 400] [--sk-epochs 150]
        [--loop 30000000] [--out FILE]

Issue 14 asks a joblib sweep with ``n_jobs=2`` to run >= 1.6x faster than the same sweep one
job at a time. A sweep's speed-up is bounded by what its jobs' *training* alone gains, with
every import done and the data loaded before the clock starts. This measures that bound, per
kind of work, in fresh processes:

* ``one after the other``: one process (BLAS with its default threads, as in a sequential
  sweep), two fits back to back;
* ``one after the other, BLAS on 1 thread``: the same with one BLAS thread (what the
  first side gains from BLAS's second thread is what two workers cannot gain again);
* ``two at once``: two processes, BLAS on one thread each (as joblib sets in its workers:
  ``OMP/OPENBLAS/MKL_NUM_THREADS=1`` with 2 workers on 2 CPUs), one fit each, both started
  at the same moment; the time is the later one's end.

The ceiling is the ratio of the two (2.0 on two idle, independent cores). Kinds of work:

* ``python loop``: a pure-Python loop of ``--loop`` additions (no memory traffic, no BLAS):
  what the machine's two CPUs give two processes;
* ``mlpx fit``: ``mlpx.sklearn.MLPClassifier`` on digits' 70% training split, widths [128],
  Adam at lr 0.001, batches of 32, ``--epochs`` epochs (no early stopping), the jobs of
  ``benchmarks/sweep_cost.py``'s ``--joblib-small`` sweep;
* ``scikit-learn fit``: scikit-learn's ``MLPClassifier``, the same network for
  ``--sk-epochs`` epochs (its joblib peer there).

Prints the medians and writes ``benchmarks/results/parallel_ceiling.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "results" / "parallel_ceiling.json"

THREADS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

# The child: prepares one kind of work (imports, data), says "ready", waits for "go" on
# stdin, does the work `fits` times and prints the seconds it took.
CHILD = """
import sys, time, warnings
kind, fits, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if kind not in ("python loop", "mlpx fit", "scikit-learn fit"):
    sys.exit(f"unknown kind of work {kind!r}")
if kind == "python loop":
    def work(seed):
        total = 0
        for i in range(size):
            total += i
        return total
else:
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler
    if kind == "mlpx fit":
        from mlpx.sklearn import MLPClassifier
    else:
        from sklearn.neural_network import MLPClassifier
    X, y = load_digits(return_X_y=True)
    Xtr, _, ytr, _ = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    Xtr = StandardScaler().fit_transform(Xtr)
    def work(seed, epochs=size):
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier(hidden_layer_sizes=(128,), learning_rate_init=0.001,
                            batch_size=32, max_iter=epochs, tol=0.0,
                            n_iter_no_change=epochs + 1, random_state=seed)
        return clf.fit(Xtr, ytr)
    work(0, 1)  # first-call costs (lazy imports, kernels) before the clock
print("ready", flush=True)
sys.stdin.readline()
t0 = time.perf_counter()
for seed in range(fits):
    work(seed)
print(time.perf_counter() - t0, flush=True)
"""


def start(kind: str, fits: int, size: int, threads: int | None) -> subprocess.Popen[str]:
    """A child that prepares ``kind`` and waits for "go"; BLAS on ``threads`` threads (None:
    its default)."""
    env = dict(os.environ)
    for name in THREADS:
        env.pop(name, None)
        if threads is not None:
            env[name] = str(threads)
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, kind, str(fits), str(size)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise SystemExit(f"the {kind!r} child failed before its work")
    return proc


def race(procs: list[subprocess.Popen[str]]) -> float:
    """Release the prepared children at once; wall seconds until the last one is done."""
    t0 = time.perf_counter()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode != 0 or not out.strip():
            raise SystemExit(f"a child failed (exit {proc.returncode})")
    return time.perf_counter() - t0


def pair(kind: str, size: int) -> dict[str, float]:
    """Two fits of ``kind`` one after the other (one process; BLAS with its default threads,
    and on one thread) and two at once (two processes)."""
    serial = race([start(kind, 2, size, None)])
    one_thread = race([start(kind, 2, size, 1)])
    parallel = race([start(kind, 1, size, 1), start(kind, 1, size, 1)])
    return {
        "one after the other": serial,
        "one after the other, BLAS on 1 thread": one_thread,
        "two at once": parallel,
    }


def summary(times: dict[str, list[float]]) -> dict[str, Any]:
    """Medians and the ceiling (one after the other / two at once) of :func:`pair`'s times."""
    med = {k: round(statistics.median(v), 3) for k, v in times.items()}
    return {
        "median_s": med,
        "ceiling": round(med["one after the other"] / med["two at once"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=400, help="mlpx fit's epochs")
    parser.add_argument("--sk-epochs", type=int, default=150, help="scikit-learn's epochs")
    parser.add_argument("--loop", type=int, default=30_000_000, help="python loop's length")
    parser.add_argument("--out", type=Path, default=OUT, help="where the JSON goes")
    args = parser.parse_args()
    kinds = {
        "python loop": args.loop,
        "mlpx fit": args.epochs,
        "scikit-learn fit": args.sk_epochs,
    }
    times: dict[str, dict[str, list[float]]] = {k: {} for k in kinds}
    for r in range(args.repeats):
        for kind, size in kinds.items():  # the kinds take turns within each repeat
            for side, seconds in pair(kind, size).items():
                times[kind].setdefault(side, []).append(seconds)
                print(f"repeat {r}: {kind}: {side} {seconds:.2f} s", flush=True)
    result: dict[str, Any] = {
        "repeats": args.repeats,
        "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "sizes": kinds,
        "seconds": times,
    }
    print(f"\ntwo fits, medians of {args.repeats}:")
    print("| work | one after the other s | two at once s | ceiling |\n|---|---:|---:|---:|")
    for kind in kinds:
        result[kind] = summary(times[kind])
        med = result[kind]["median_s"]
        print(
            f"| {kind} | {med['one after the other']:.2f} | {med['two at once']:.2f} "
            f"| {result[kind]['ceiling']}x |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
