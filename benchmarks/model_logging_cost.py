"""What logging the MLflow model adds to one default run (issue 15).

    python benchmarks/model_logging_cost.py [--repeats 3]

In a fresh temporary folder, one ``mlpx`` run creates the store; then ``mlpx
logger.log_model=true`` and ``mlpx logger.log_model=false`` alternate, ``--repeats`` times
each, each a fresh process. Every process is timed (wall, and CPU of the child from
``resource``), and in the ``true`` runs the call of :func:`mlpx.tracking.model.log_model`
itself is timed by a wrapper the child installs. Prints the medians.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

CHILD = """
import sys, time
import mlpx.tracking.model as m
inner = m.log_model
def timed(*a, **k):
    t, c = time.perf_counter(), time.process_time()
    out = inner(*a, **k)
    print(f"LOG_MODEL {time.perf_counter() - t:.4f} {time.process_time() - c:.4f}", file=sys.stderr)
    return out
m.log_model = timed
sys.argv = ["mlpx", *sys.argv[1:]]
from mlpx.app.cli import entry
entry()
"""


def run(folder: str, *args: str) -> tuple[float, float, tuple[float, float] | None]:
    """(wall s, child CPU s, (log_model wall, CPU) or None) of one ``mlpx`` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, *args],
        cwd=folder,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    inner = None
    for line in proc.stderr.splitlines():
        if line.startswith("LOG_MODEL "):
            inner = tuple(float(x) for x in line.split()[1:3])
    return wall, cpu, inner  # type: ignore[return-value]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlpx-model-cost-") as folder:
        run(folder, "trainer.epochs=1")  # the store and the experiment exist from here on
        rows: dict[str, list] = {"true": [], "false": []}
        for _ in range(args.repeats):
            for flag in ("true", "false"):
                rows[flag].append(run(folder, f"logger.log_model={flag}"))
    for flag, values in rows.items():
        wall = statistics.median(v[0] for v in values)
        cpu = statistics.median(v[1] for v in values)
        n = len(values)
        print(f"logger.log_model={flag}: run wall {wall:.2f} s, CPU {cpu:.2f} s (median of {n})")
    inner = [v[2] for v in rows["true"] if v[2]]
    print(
        f"log_model call: wall {statistics.median(i[0] for i in inner):.3f} s, "
        f"CPU {statistics.median(i[1] for i in inner):.3f} s (median of {len(inner)})"
    )


if __name__ == "__main__":
    main()
