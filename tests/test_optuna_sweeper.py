"""mlpx's optuna sweeper, piece by piece (quick): the search-space syntax, overrides, study
names, storages, samplers and pruners, the checks before a sweep, the training loop's
``on_eval`` hook and a job's trial (report, prune, outcome). The end-to-end sweeps are in
tests/test_sweeps_optuna.py (slow)."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import pytest

optuna = pytest.importorskip("optuna", minversion="4")
pytest.importorskip("hydra_plugins.mlpx_optuna_sweeper")

from optuna.distributions import (  # noqa: E402
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from mlpx.app.optuna_space import (  # noqa: E402
    grid_choices,
    missing_keys,
    space_from_overrides,
    suggest,
    to_override,
)
from mlpx.app.optuna_study import (  # noqa: E402
    SweepConfigError,
    absolute_sqlite,
    default_study_name,
    make_pruner,
    make_sampler,
    mask_url,
    open_storage,
)
from mlpx.app.trial import LOCAL_STUDIES, TrialLink, TrialOutcome  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------------
# Search space
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("choice(relu, tanh)", CategoricalDistribution(["relu", "tanh"])),
        ("choice(1, 2, 3)", CategoricalDistribution([1, 2, 3])),
        ("interval(0.1, 0.5)", FloatDistribution(0.1, 0.5)),
        ("tag(log, interval(0.0001, 0.1))", FloatDistribution(0.0001, 0.1, log=True)),
        # Hydra's interval is always of floats (as with hydra-optuna-sweeper 1.3)
        ("interval(1, 8)", FloatDistribution(1.0, 8.0)),
        ("tag(log, interval(1, 64))", FloatDistribution(1.0, 64.0, log=True)),
        ("range(1, 10, 2)", IntDistribution(1, 9, step=2)),
        ("range(1, 9, 2)", IntDistribution(1, 7, step=2)),
        ("range(0.0, 1.0, 0.25)", FloatDistribution(0.0, 0.75, step=0.25)),
    ],
)
def test_hydra_sweeps_become_optuna_distributions(text: str, expected: object) -> None:
    space, fixed = space_from_overrides([f"a.b={text}"])
    assert space == {"a.b": expected} and fixed == {}


def test_fixed_values_and_later_overrides_win() -> None:
    space, fixed = space_from_overrides(
        ["model.depth=choice(1, 2)", "dataset=iris", "model.depth=3", "x=choice(a, b)"]
    )
    assert space == {"x": CategoricalDistribution(["a", "b"])}
    assert fixed == {"dataset": "iris", "model.depth": "3"}
    space, _ = space_from_overrides(["x=shuffle(range(1, 4))"])
    assert isinstance(space["x"], CategoricalDistribution)
    assert sorted(space["x"].choices) == [1, 2, 3]


def test_suggest_draws_inside_each_distribution() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    dists = {
        "lr": FloatDistribution(1e-4, 1e-1, log=True),
        "depth": IntDistribution(1, 9, step=2),
        "act": CategoricalDistribution(["relu", "tanh"]),
    }
    for _ in range(20):
        trial = study.ask()
        values = {k: suggest(trial, k, d) for k, d in dists.items()}
        assert 1e-4 <= values["lr"] <= 1e-1
        assert values["depth"] in {1, 3, 5, 7, 9}
        assert values["act"] in {"relu", "tanh"}
        assert trial.distributions == dists
        study.tell(trial, 0.0)


def test_grid_choices() -> None:
    assert grid_choices("a", CategoricalDistribution([1, 2])) == [1, 2]
    assert grid_choices("a", IntDistribution(1, 9, step=4)) == [1, 5, 9]
    with pytest.raises(ValueError, match=r"hydra\.sweeper\.params\.a"):
        grid_choices("a", FloatDistribution(0.0, 1.0))


@pytest.mark.parametrize(
    "value", ["relu", "sqlite:////tmp/x.db", "a b", "it's", "1,2", "[1]", 3, 0.5, True, None]
)
def test_to_override_round_trips_through_hydras_parser(value: object) -> None:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    (parsed,) = OverridesParser.create().parse_overrides([to_override("k", value)])
    assert parsed.get_key_element() == "k" and not parsed.is_sweep_override()
    assert parsed.value() == value


def test_missing_keys_of_the_config() -> None:
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"model": {"depth": 2, "widths": None}, "optimizer": {"lr": 0.1}})
    keys = ["model.depth", "model.widths", "optimizer", "model.nope", "+model.new", "nope"]
    assert missing_keys(cfg, keys) == ["model.nope", "nope"]


# --------------------------------------------------------------------------------------------
# Study names, storages, samplers, pruners
# --------------------------------------------------------------------------------------------


def test_default_study_name_is_stable_and_ignores_recording_keys() -> None:
    params = {"optimizer.lr": "tag(log, interval(0.0001, 0.1))"}
    a = default_study_name(["dataset=wine", "trainer.epochs=5"], params)
    assert a.startswith("mlpx_") and len(a) == 17
    assert a == default_study_name(["trainer.epochs=5", "dataset=wine", "logger.x=1"], params)
    assert a != default_study_name(["dataset=iris", "trainer.epochs=5"], params)
    assert a != default_study_name(["dataset=wine", "trainer.epochs=5"], {"x": "choice(1,2)"})


def test_mask_url_hides_the_credentials() -> None:
    masked = mask_url("postgresql+psycopg://bob:s3cret@db.example:5432/optuna")
    assert masked == "postgresql+psycopg://***@db.example:5432/optuna"  # user and password
    assert mask_url(None) == "memory"
    assert mask_url("sqlite:////tmp/o.db") == "sqlite:////tmp/o.db"


def test_absolute_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert absolute_sqlite("sqlite:///optuna.db") == f"sqlite:///{tmp_path / 'optuna.db'}"
    for same in ("sqlite:////abs/o.db", "sqlite:///:memory:", "postgresql://h/d", None):
        assert absolute_sqlite(same) == same


def test_open_storage_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(SweepConfigError, match=r"^hydra\.sweeper\.storage=sqlite:////"):
        open_storage(f"sqlite:///{tmp_path}/no/such/folder/o.db")
    with pytest.raises(SweepConfigError, match=r"hydra\.sweeper\.storage=nonsense"):
        open_storage("nonsense://x")
    storage = open_storage(f"sqlite:///{tmp_path}/o.db", heartbeat=(5, 10))
    assert storage.get_heartbeat_interval() == 5


def test_samplers_get_the_worker_offset_and_pruners_are_checked() -> None:
    tpe = {"_target_": "optuna.samplers.TPESampler", "seed": 10, "n_startup_trials": 3}
    a, b = make_sampler(tpe, 0), make_sampler(tpe, 0)
    c = make_sampler(tpe, 1)
    draw = [s._rng.rng.random() for s in (a, b, c)]
    assert draw[0] == draw[1] != draw[2]
    grid = make_sampler(
        {"_target_": "optuna.samplers.GridSampler", "_partial_": True}, grid={"x": [1, 2]}
    )
    assert isinstance(grid, optuna.samplers.GridSampler)
    assert make_pruner(None) is None
    median = make_pruner({"_target_": "optuna.pruners.MedianPruner", "n_startup_trials": 2})
    assert isinstance(median, optuna.pruners.MedianPruner)
    with pytest.raises(SweepConfigError, match=r"^hydra\.sweeper\.pruner\._target_=optuna\.x"):
        make_pruner({"_target_": "optuna.x.Nope"})
    with pytest.raises(SweepConfigError, match=r"is not an optuna\.pruners class"):
        make_pruner({"_target_": "optuna.samplers.RandomSampler"})
    with pytest.raises(SweepConfigError, match=r"^hydra\.sweeper\.sampler\._target_"):
        make_sampler({"_target_": "optuna.samplers.TPESampler", "nope": 1})
    # a TPE argument of the search file is left out for a sampler that does not take it
    rand = {"_target_": "optuna.samplers.RandomSampler", "seed": 1, "n_startup_trials": 8}
    assert isinstance(make_sampler(rand), optuna.samplers.RandomSampler)


@pytest.mark.parametrize(
    ("choice", "cls"), [("random", "RandomSampler"), ("cmaes", "CmaEsSampler"), (None, "TPE")]
)
def test_sampler_presets_work_with_the_search_file(choice: str | None, cls: str) -> None:
    cfg = composed(*([f"hydra/sweeper/sampler={choice}"] if choice else []))
    sampler = make_sampler(cfg.hydra.sweeper.sampler, 2)
    assert type(sampler).__name__.startswith(cls)
    assert cfg.hydra.sweeper.sampler.seed == 1234


# --------------------------------------------------------------------------------------------
# Checks on a composed config
# --------------------------------------------------------------------------------------------


def composed(*overrides: str):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        return compose(
            config_name="config",
            overrides=["hparams_search=mlp_optuna", *overrides],
            return_hydra_config=True,
        )


def test_the_search_config_with_a_pruner_preset_composes() -> None:
    cfg = composed("+hydra/sweeper/pruner=median", "hydra.sweeper.pruner.n_startup_trials=3")
    sw = cfg.hydra.sweeper
    assert sw._target_ == "hydra_plugins.mlpx_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    assert sw.pruner._target_ == "optuna.pruners.MedianPruner"
    assert sw.pruner.n_startup_trials == 3


def test_hydra_does_not_build_the_sampler_or_pruner_itself() -> None:
    """Hydra instantiates the sweeper recursively unless told not to: the sampler and pruner
    must reach the sweeper as configs (it seeds them per worker and reports their errors)."""
    from hydra.utils import instantiate

    cfg = composed(
        "hydra/sweeper/sampler=random",  # + the search file's n_startup_trials: no such arg
        "+hydra/sweeper/pruner=median",
        "hydra.sweeper.pruner._target_=optuna.pruners.Nope",
    )
    sweeper = instantiate(cfg.hydra.sweeper)
    assert type(sweeper).__name__ == "OptunaSweeper"


def test_check_sweep_finds_bad_settings_before_any_trial(tmp_path: Path) -> None:
    from mlpx.app.optuna_sweep import check_sweep

    url = f"sqlite:///{tmp_path}/o.db"
    plan = check_sweep(composed(f"hydra.sweeper.storage={url}", "hydra.sweeper.study_name=s"))
    assert set(plan["space"]) == {"optimizer.lr", "model.depth", "model.width", "model.activation"}
    assert plan["directions"] == ["maximize"] and plan["study_name"] == "s"
    optuna.create_study(storage=url, study_name="s", direction="maximize")
    check_sweep(composed(f"hydra.sweeper.storage={url}", "hydra.sweeper.study_name=s"))
    bad = {  # message: (overrides, the command line's sweeps)
        "hydra.sweeper.direction=minimize": (
            [
                f"hydra.sweeper.storage={url}",
                "hydra.sweeper.study_name=s",
                "trainer.direction=minimize",
            ],
            [],
        ),
        "model.nope is not a key": ([], ["model.nope=choice(1, 2)"]),
        "hydra.sweeper.sampler._target_=optuna.samplers.Nope": (
            ["hydra.sweeper.sampler._target_=optuna.samplers.Nope"],
            [],
        ),
        "hydra.sweeper.storage=": (["hydra.sweeper.storage=sqlite:////no/such/dir/o.db"], []),
    }
    for message, (overrides, sweeps) in bad.items():
        cfg = composed(*overrides)
        with pytest.raises(SweepConfigError) as info:
            check_sweep(cfg, list(cfg.hydra.overrides.task) + sweeps)
        assert message in str(info.value) and "\n" not in str(info.value)


# --------------------------------------------------------------------------------------------
# The training loop's hook and a job's trial
# --------------------------------------------------------------------------------------------


def test_fit_stops_when_the_on_eval_hook_says_so() -> None:
    from mlpx.data import load_dataset
    from mlpx.nn.model import MLP
    from mlpx.nn.optim import make_optimizer
    from mlpx.train import EarlyStopping, TrainerSettings, fit

    data = load_dataset("iris", seed=0)
    cfg = TrainerSettings(epochs=6, batch_size=16, early_stopping=EarlyStopping(patience=0))
    seen: list[tuple[int, float]] = []

    def hook(epoch: int, metrics: dict[str, float]) -> bool:
        seen.append((epoch, metrics["val/accuracy"]))
        return epoch == 3

    rng = np.random.default_rng(0)
    net = MLP([data.n_features, 8, data.n_classes], "tanh", rng=rng)
    result = fit(net, make_optimizer("adam", lr=0.01), data, cfg, rng=rng, on_eval=hook)
    assert [e for e, _ in seen] == [1, 2, 3]
    assert result.epochs_run == 3 and result.stopped_by_hook == 3
    assert not result.stopped_early and math.isfinite(result.objective)
    rng = np.random.default_rng(0)
    net = MLP([data.n_features, 8, data.n_classes], "tanh", rng=rng)
    full = fit(net, make_optimizer("adam", lr=0.01), data, cfg, rng=rng)
    assert full.epochs_run == 6 and full.stopped_by_hook == 0


def test_a_trial_link_reports_and_is_pruned() -> None:
    study = optuna.create_study(
        study_name="link-test", direction="maximize", pruner=optuna.pruners.MedianPruner(1, 0)
    )
    LOCAL_STUDIES["link-test"] = study
    try:
        good = study.ask()
        for epoch in (1, 2, 3):
            good.report(0.9, epoch)
        study.tell(good, 0.9)
        bad = study.ask()
        pruner = {"_target_": "optuna.pruners.MedianPruner", "n_startup_trials": 1}
        link = TrialLink(bad.number, bad._trial_id, "link-test", None, "val/accuracy", pruner)
        assert link.tags() == {"optuna.trial_number": "1", "optuna.study_name": "link-test"}
        assert link.on_eval(1, {"val/loss": 0.3}) is False  # no objective: nothing reported
        assert link.on_eval(1, {"val/accuracy": 0.5}) is True
        assert link.pruned_epoch == 1 and link.pruned_tags() == {
            "pruned": "true",
            "pruned_epoch": "1",
        }
        assert study.trials[1].intermediate_values == {1: 0.5}
        out = link.outcome(0.5, "run123")
        assert float(out) == 0.5 and out.run_id == "run123" and out.pruned_epoch == 1
        back = pickle.loads(pickle.dumps(out))
        assert isinstance(back, TrialOutcome) and back.pruned_epoch == 1
        assert back.run_id == "run123" and float(back) == 0.5
    finally:
        LOCAL_STUDIES.pop("link-test", None)


def test_a_trial_without_pruner_only_reports() -> None:
    study = optuna.create_study(study_name="report-only", direction="maximize")
    LOCAL_STUDIES["report-only"] = study
    try:
        t = study.ask()
        link = TrialLink(t.number, t._trial_id, "report-only", None, "val/accuracy")
        assert not any(link.on_eval(e, {"val/accuracy": 0.1 * e}) for e in (1, 2, 3))
        assert link.pruned_epoch is None and link.pruned_tags() == {}
        assert study.trials[0].intermediate_values == {1: 0.1, 2: 0.2, 3: 0.1 * 3}
    finally:
        LOCAL_STUDIES.pop("report-only", None)


def test_the_summary_counts_pruned_runs_apart() -> None:
    from mlpx.app.summary import PRUNED, Row, SweepSummary

    rows = [
        Row("a", "a", "FINISHED", {}, 0.9),
        Row("b", "b", PRUNED, {}, None),
        Row("c", "c", "FAILED", {}, None),
    ]
    s = SweepSummary(rows=rows, keys=[])
    assert (s.finished, s.pruned, s.failed) == (1, 1, 1)
    assert "1 pruned" in s.line() and "1 pruned" in s.header()
