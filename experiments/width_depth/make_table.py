"""Study 4, width against depth: the table (and the decision-boundary figures) from MLflow.

    python experiments/width_depth/make_table.py --tracking-uri sqlite:////tmp/mlpx-studies-b/mlflow.db
    python experiments/width_depth/make_table.py --figures experiments/width_depth  # + PNGs

Reads the FINISHED runs of the experiment ``study_width_depth`` (one per config: the newest)
and prints test accuracy, mean ± std over ``trainer.seed``, for each (dataset, depth, width).
``--figures DIR`` draws, per dataset, the decision boundaries of the seed-0 networks
(depth down, width across) from each run's ``checkpoints/last.npz``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from mlpx.app.report import ReportError, study_runs
from mlpx.app.summary import mean_std

EXPERIMENT = "study_width_depth"
COMMAND = (
    "mlpx -m experiment=study_width dataset=moons,circles model.depth=1,2,3 "
    "model.width=2,4,8,32 trainer.seed=0,1,2"
)


def key(run: Any) -> tuple[str, int, int]:
    p = run.data.params
    return p["dataset.name"], int(p["model.depth"]), int(p["model.width"])


def table(runs: list[Any]) -> str:
    """Rows (dataset, depth), columns widths: test accuracy mean ± std over the seeds."""
    acc: dict[tuple[str, int, int], list[float]] = defaultdict(list)
    seeds: set[str] = set()
    for r in runs:
        acc[key(r)].append(r.data.metrics["test/accuracy"])
        seeds.add(r.data.params["trainer.seed"])
    widths = sorted({w for _, _, w in acc})
    rows = sorted({(d, depth) for d, depth, _ in acc}, key=lambda t: (t[0] != "moons", t))
    head = "| dataset | depth | " + " | ".join(f"width {w}" for w in widths) + " |"
    lines = [
        f"Test accuracy, mean ± std over seeds {', '.join(sorted(seeds))} "
        f"({len(runs)} runs of experiment {EXPERIMENT}).",
        "",
        head,
        "|---|---:|" + "---:|" * len(widths),
    ]
    for d, depth in rows:
        cells = [mean_std(acc.get((d, depth, w), []), ".3f") for w in widths]
        lines.append(f"| {d} | {depth} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def boundary_figures(client: Any, runs: list[Any], folder: Path, seed: str = "0") -> list[Path]:
    """One PNG per dataset: the seed's decision boundaries, depth down, width across."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from mlpx.app.build import build_dataset, build_model, run_settings
    from mlpx.checkpoint import load_checkpoint

    chosen = {key(r): r for r in runs if r.data.params["trainer.seed"] == seed}
    written = []
    for name in sorted({d for d, _, _ in chosen}, key=lambda d: d != "moons"):
        depths = sorted({dp for d, dp, _ in chosen if d == name})
        widths = sorted({w for d, _, w in chosen if d == name})
        fig, axes = plt.subplots(
            len(depths), len(widths), figsize=(2.2 * len(widths), 2.1 * len(depths)), squeeze=False
        )
        data = None
        for i, depth in enumerate(depths):
            for j, width in enumerate(widths):
                ax = axes[i][j]
                ax.set_xticks([])
                ax.set_yticks([])
                run = chosen.get((name, depth, width))
                if run is None:
                    continue
                settings = run_settings(client, run.info.run_id)  # as the run built it
                with tempfile.TemporaryDirectory() as tmp:
                    ckpt = load_checkpoint(
                        client.download_artifacts(run.info.run_id, "checkpoints/last.npz", tmp)
                    )
                if data is None:
                    data = build_dataset(settings)
                    X = data.X_test
                    (x0, y0), (x1, y1) = X.min(axis=0) - 0.5, X.max(axis=0) + 0.5
                    gx, gy = np.meshgrid(np.linspace(x0, x1, 150), np.linspace(y0, y1, 150))
                    grid = np.column_stack([gx.ravel(), gy.ravel()])
                net = build_model(settings, data)
                net.load_state_dict(ckpt.model)
                pred = np.asarray(net.predict(grid)).reshape(gx.shape)
                ax.contourf(gx, gy, pred, levels=[-0.5, 0.5, 1.5], colors=["#9ecae1", "#fdae6b"])
                ax.scatter(*data.X_test.T, c=data.y_test, cmap="coolwarm", s=3, linewidths=0)
                acc = run.data.metrics["test/accuracy"]
                ax.set_title(f"d={depth} w={width}: {acc:.3f}", fontsize=8)
        fig.suptitle(f"{name}: decision boundaries (seed {seed}), test points", fontsize=9)
        fig.tight_layout()
        path = folder / f"boundaries_{name}.png"
        fig.savefig(path, dpi=72)
        plt.close(fig)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tracking-uri", help="default: MLFLOW_TRACKING_URI, else ./mlflow.db")
    p.add_argument("--experiment", default=EXPERIMENT)
    p.add_argument("--figures", type=Path, help="also write boundaries_<dataset>.png here")
    args = p.parse_args(argv)
    try:
        client, runs = study_runs(
            args.tracking_uri, args.experiment, hint=f"run first: {COMMAND}", metric="test/accuracy"
        )
    except ReportError as exc:
        sys.exit(f"make_table: {exc}")
    print(table(runs))
    if args.figures:
        args.figures.mkdir(parents=True, exist_ok=True)
        for path in boundary_figures(client, runs, args.figures):
            print(f"wrote {path} ({path.stat().st_size // 1024} KB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
