"""Optimizers, schedules and clipping against torch.optim, plus checkpoints and checks."""

from __future__ import annotations

import copy
import inspect
import math
import pickle

import numpy as np
import pytest

from mlpx.nn.optim import (
    OPTIMIZERS,
    SCHEDULES,
    Adam,
    ConstantSchedule,
    CosineSchedule,
    ExponentialSchedule,
    Schedule,
    StepSchedule,
    WarmupCosineSchedule,
    check_hyperparameters,
    check_schedule,
    clip_grad_norm,
    flatten_state,
    global_norm,
    make_optimizer,
    make_schedule,
    unflatten_state,
)

SHAPES = [(3, 4), (4,), (2, 2, 3), ()]
STEPS = 50

# (our name, our hyper-parameters, torch class, extra torch hyper-parameters)
CASES = [
    ("sgd", {"lr": 0.1}, "SGD", {}),
    ("sgd", {"lr": 0.05, "weight_decay": 0.1}, "SGD", {}),
    ("sgd", {"lr": 0.05, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.1}, "SGD", {}),
    ("sgd", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.05}, "SGD", {}),
    ("momentum", {"lr": 0.05}, "SGD", {"momentum": 0.9}),
    ("momentum", {"lr": 0.05, "dampening": 0.5}, "SGD", {"momentum": 0.9}),
    ("nesterov", {"lr": 0.05}, "SGD", {"momentum": 0.9, "nesterov": True}),
    ("nesterov", {"lr": 0.02, "momentum": 0.5, "weight_decay": 0.2}, "SGD", {"nesterov": True}),
    ("adam", {}, "Adam", {}),
    ("adam", {"lr": 0.05, "weight_decay": 0.1}, "Adam", {}),
    ("adam", {"lr": 0.05, "amsgrad": True, "betas": (0.8, 0.99)}, "Adam", {}),
    ("adam", {"lr": 0.05, "betas": (0.3, 0.9), "eps": 1e-3, "weight_decay": 0.1}, "Adam", {}),
    ("adam", {"lr": 0.05, "betas": (0.0, 0.0)}, "Adam", {}),
    ("adamw", {"lr": 0.05}, "AdamW", {}),
    ("adamw", {"lr": 0.05, "weight_decay": 0.3, "amsgrad": True}, "AdamW", {}),
    ("adamw", {"lr": 0.05, "weight_decay": 0.0, "betas": (0.5, 0.9)}, "AdamW", {}),
    ("rmsprop", {}, "RMSprop", {}),
    ("rmsprop", {"lr": 0.01, "weight_decay": 0.1, "alpha": 0.9}, "RMSprop", {}),
    ("rmsprop", {"lr": 0.01, "centered": True}, "RMSprop", {}),
    ("rmsprop", {"lr": 0.005, "momentum": 0.7}, "RMSprop", {}),
    ("rmsprop", {"lr": 0.005, "momentum": 0.5, "centered": True, "eps": 1e-4}, "RMSprop", {}),
    ("adagrad", {}, "Adagrad", {}),
    ("adagrad", {"lr": 0.1, "lr_decay": 0.05, "weight_decay": 0.1}, "Adagrad", {}),
    ("adagrad", {"lr": 0.1, "initial_accumulator_value": 0.5, "eps": 1e-6}, "Adagrad", {}),
]
CASE_IDS = [f"{n}-{i}" for i, (n, *_) in enumerate(CASES)]

# one case per optimizer creating every kind of state
FULL_STATE = {
    "sgd": {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.1},
    "momentum": {"lr": 0.05, "dampening": 0.2},
    "nesterov": {"lr": 0.05},
    "adam": {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1},
    "adamw": {"lr": 0.01, "amsgrad": True},
    "rmsprop": {"lr": 0.01, "centered": True, "momentum": 0.5},
    "adagrad": {"lr": 0.1, "lr_decay": 0.01},
}


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def problem(seed: int = 0):
    """Initial parameters and a quadratic's curvature/centre for each parameter array."""
    rng = np.random.default_rng(seed)
    p0 = [rng.standard_normal(s) for s in SHAPES]
    curv = [rng.uniform(0.2, 3.0, s) for s in SHAPES]
    centre = [rng.standard_normal(s) for s in SHAPES]
    return p0, curv, centre


def quadratic_grads(params, curv, centre, t: int):
    """Gradient of sum(curv * (p - centre)**2 / 2) plus a deterministic drift, at ``params``.

    Written with operators only, so it works for NumPy, torch and array_api_strict arrays
    (``curv``/``centre`` must be of the same kind as ``params``).
    """
    drift = 0.3 * math.sin(0.7 * t + 1.0)
    return [a * (p - c) + drift * c for p, a, c in zip(params, curv, centre, strict=True)]


def run_ours(name, hparams, params, curv, centre, steps, start=0, opt=None):
    opt = opt or make_optimizer(name, **hparams)
    for t in range(start, start + steps):
        opt.step(params, quadratic_grads(params, curv, centre, t))
    return opt


def run_torch(torch, cls_name, hparams, p0, curv, centre, steps, scheduler=None):
    params = [torch.tensor(p) for p in p0]
    tc, tz = [torch.tensor(a) for a in curv], [torch.tensor(c) for c in centre]
    opt = getattr(torch.optim, cls_name)(params, foreach=False, **hparams)
    sched = scheduler(opt) if scheduler else None
    trajectory = []
    for t in range(steps):
        for p, g in zip(params, quadratic_grads(params, tc, tz, t), strict=True):
            p.grad = g
        opt.step()
        if sched is not None:
            sched.step()
        trajectory.append([p.detach().numpy().copy() for p in params])
    return trajectory


def max_diff(a, b) -> float:
    return max(
        float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in zip(a, b, strict=True)
    )


# --------------------------------------------------------------------------- vs torch.optim


@pytest.mark.torch
@pytest.mark.parametrize(("name", "hparams", "cls_name", "extra"), CASES, ids=CASE_IDS)
def test_trajectory_matches_torch_optim(torch, name, hparams, cls_name, extra):
    p0, curv, centre = problem()
    expected = run_torch(torch, cls_name, {**hparams, **extra}, p0, curv, centre, STEPS)
    params = [p.copy() for p in p0]
    opt = make_optimizer(name, **hparams)
    worst = 0.0
    for t in range(STEPS):
        grads = quadratic_grads(params, curv, centre, t)
        kept = [g.copy() for g in grads]
        opt.step(params, grads)
        for g, k in zip(grads, kept, strict=True):
            np.testing.assert_array_equal(g, k)  # grads are not modified
        worst = max(worst, max_diff(params, expected[t]))
    assert worst < 1e-10
    assert max_diff(params, p0) > 1e-3  # the trajectory really moved
    assert opt.t == STEPS


@pytest.mark.torch
@pytest.mark.parametrize(
    ("name", "hparams", "cls_name"),
    [
        ("adam", {"amsgrad": True, "weight_decay": 0.1, "lr": 0.02}, "Adam"),
        ("adamw", {"lr": 0.02}, "AdamW"),
        ("sgd", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1}, "SGD"),
        ("sgd", {"lr": 0.05, "momentum": 0.9, "dampening": 0.1}, "SGD"),
        ("rmsprop", {"centered": True, "momentum": 0.5, "weight_decay": 0.1}, "RMSprop"),
        ("adagrad", {"lr_decay": 0.1, "initial_accumulator_value": 0.2}, "Adagrad"),
    ],
)
def test_generic_path_on_torch_tensors_matches_torch_optim(torch, name, hparams, cls_name):
    p0, curv, centre = problem(1)
    expected = run_torch(torch, cls_name, hparams, p0, curv, centre, STEPS)
    params = [torch.tensor(p) for p in p0]
    tc, tz = [torch.tensor(a) for a in curv], [torch.tensor(c) for c in centre]
    run_ours(name, hparams, params, tc, tz, STEPS)
    assert max_diff([p.numpy() for p in params], expected[-1]) < 1e-10


@pytest.mark.torch
@pytest.mark.parametrize(
    ("name", "hparams", "cls_name", "schedule", "scheduler"),
    [
        (
            "adam",
            {"lr": 0.05},
            "Adam",
            {"name": "step", "step_size": 7, "gamma": 0.5},
            lambda o, lr: lr.StepLR(o, step_size=7, gamma=0.5),
        ),
        (
            "sgd",
            {"lr": 0.05, "momentum": 0.9},
            "SGD",
            {"name": "cosine", "T_max": 20, "eta_min": 1e-3},
            lambda o, lr: lr.CosineAnnealingLR(o, T_max=20, eta_min=1e-3),
        ),
        (
            "adagrad",
            {"lr": 0.2, "lr_decay": 0.01},
            "Adagrad",
            {"name": "exponential", "gamma": 0.95},
            lambda o, lr: lr.ExponentialLR(o, gamma=0.95),
        ),
        (
            "adamw",
            {"lr": 0.05, "weight_decay": 0.5},
            "AdamW",
            {"name": "exponential", "gamma": 0.9},
            lambda o, lr: lr.ExponentialLR(o, gamma=0.9),
        ),
    ],
)
def test_scheduled_trajectory_matches_torch(torch, name, hparams, cls_name, schedule, scheduler):
    p0, curv, centre = problem(2)
    expected = run_torch(
        torch,
        cls_name,
        hparams,
        p0,
        curv,
        centre,
        STEPS,
        scheduler=lambda o: scheduler(o, torch.optim.lr_scheduler),
    )
    params = [p.copy() for p in p0]
    run_ours(name, {**hparams, "schedule": schedule}, params, curv, centre, STEPS)
    assert max_diff(params, expected[-1]) < 1e-10


@pytest.mark.torch
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_defaults_are_torch_defaults(torch, name):
    opt = make_optimizer(name)
    cls_name = {
        "sgd": "SGD",
        "momentum": "SGD",
        "nesterov": "SGD",
        "adam": "Adam",
        "adamw": "AdamW",
        "rmsprop": "RMSprop",
        "adagrad": "Adagrad",
    }[name]
    signature = inspect.signature(getattr(torch.optim, cls_name).__init__).parameters
    assert opt.base_lr == signature["lr"].default
    overridden = {"momentum": {"momentum": 0.9}, "nesterov": {"momentum": 0.9, "nesterov": True}}
    for key, value in opt.hparams.items():
        expected = overridden.get(name, {}).get(key, signature[key].default)
        assert value == (tuple(expected) if isinstance(expected, tuple) else expected), key


# --------------------------------------------------------------------------- namespaces


def test_numpy_and_array_api_strict_take_the_same_steps():
    xps = pytest.importorskip("array_api_strict")
    p0, curv, centre = problem(3)
    for name, hparams, *_ in CASES:
        ours = [p.copy() for p in p0]
        run_ours(name, hparams, ours, curv, centre, 20)
        generic = [xps.asarray(p, copy=True) for p in p0]
        xc, xz = [xps.asarray(a) for a in curv], [xps.asarray(c) for c in centre]
        run_ours(name, hparams, generic, xc, xz, 20)
        for f, g in zip(ours, generic, strict=True):
            np.testing.assert_array_equal(f, np.asarray(g), err_msg=f"{name} {hparams}")


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_float32_parameters_keep_float32_state(name):
    p0, curv, centre = problem(5)
    params = [p.astype(np.float32) for p in p0]
    c32, z32 = [a.astype(np.float32) for a in curv], [c.astype(np.float32) for c in centre]
    opt = run_ours(name, FULL_STATE[name], params, c32, z32, 5)
    assert all(p.dtype == np.float32 for p in params)
    for entry in opt.state_dict()["state"]:
        assert entry and all(a.dtype == np.float32 for a in entry.values())


# --------------------------------------------------------------------------- schedules


def torch_lrs(torch, make, steps, lr=0.1):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    sched = make(opt)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


@pytest.mark.torch
@pytest.mark.parametrize(
    ("schedule", "make"),
    [
        (StepSchedule(step_size=3, gamma=0.5), lambda o, s: s.StepLR(o, 3, gamma=0.5)),
        (StepSchedule(step_size=1), lambda o, s: s.StepLR(o, 1)),
        (ExponentialSchedule(gamma=0.9), lambda o, s: s.ExponentialLR(o, 0.9)),
        (CosineSchedule(T_max=10), lambda o, s: s.CosineAnnealingLR(o, 10)),
        (CosineSchedule(T_max=7, eta_min=0.01), lambda o, s: s.CosineAnnealingLR(o, 7, 0.01)),
    ],
)
def test_schedules_match_torch_lr_scheduler(torch, schedule, make):
    expected = torch_lrs(torch, lambda o: make(o, torch.optim.lr_scheduler), 30)
    ours = [schedule(t, 0.1) for t in range(30)]
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.torch
def test_warmup_is_torch_linear_lr(torch):
    w = 5
    sched = WarmupCosineSchedule(warmup_steps=w, total_steps=50, min_lr=0.0)
    expected = torch_lrs(
        torch, lambda o: torch.optim.lr_scheduler.LinearLR(o, 1 / w, 1.0, total_iters=w - 1), w
    )
    np.testing.assert_allclose([sched(t, 0.1) for t in range(w)], expected, rtol=1e-12)


def test_warmup_cosine_shape():
    lr, w, total, floor = 0.1, 10, 60, 1e-3
    sched = make_schedule("warmup_cosine", warmup_steps=w, total_steps=total, min_lr=floor)
    lrs = np.array([sched(t, lr) for t in range(total + 20)])
    assert lrs[0] == pytest.approx(lr / w)
    assert np.all(np.diff(lrs[:w]) > 0)  # strictly up during warm-up
    assert lrs[w - 1] == pytest.approx(lr) and lrs.max() == pytest.approx(lr)
    assert np.all(np.diff(lrs[w - 1 :]) <= 1e-15)  # then never up again
    assert lrs[total - 1] == pytest.approx(floor, abs=1e-15)
    assert np.all(lrs[total - 1 :] == pytest.approx(floor, abs=1e-15))
    no_warmup = WarmupCosineSchedule(warmup_steps=0, total_steps=11)
    np.testing.assert_allclose(
        [no_warmup(t, lr) for t in range(11)], [CosineSchedule(10)(t, lr) for t in range(11)]
    )


def test_constant_schedule_and_registry():
    assert ConstantSchedule()(123, 0.5) == 0.5
    assert sorted(SCHEDULES) == ["constant", "cosine", "exponential", "step", "warmup_cosine"]
    for name, cls in SCHEDULES.items():
        assert issubclass(cls, Schedule) and cls.name == name


def test_optimizer_lr_follows_schedule_and_resumes():
    sched = {"name": "step", "step_size": 2, "gamma": 0.1}
    opt = make_optimizer("sgd", lr=1.0, schedule=sched)
    params, grads = [np.zeros(2)], [np.ones(2)]
    seen = []
    for _ in range(5):
        seen.append(opt.lr)
        opt.step(params, grads)
    np.testing.assert_allclose(seen, [1, 1, 0.1, 0.1, 0.01])
    np.testing.assert_allclose(params[0], -sum(seen))  # each step used the lr shown
    resumed = make_optimizer("sgd", lr=1.0, schedule=StepSchedule(2, 0.1))
    resumed.load_state_dict(opt.state_dict())
    assert resumed.lr == opt.lr == pytest.approx(0.01)  # t = 5: gamma ** (5 // 2)


# --------------------------------------------------------------------------- clipping


@pytest.mark.torch
@pytest.mark.parametrize("max_norm", [0.5, 3.0, 1e3])
def test_clip_grad_norm_matches_torch(torch, max_norm):
    rng = np.random.default_rng(6)
    grads = [rng.standard_normal(s) for s in SHAPES]
    tparams = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in SHAPES]
    for p, g in zip(tparams, grads, strict=True):
        p.grad = torch.tensor(g)
    expected_norm = float(torch.nn.utils.clip_grad_norm_(tparams, max_norm, foreach=False))
    before = [g.copy() for g in grads]
    norm = clip_grad_norm(grads, max_norm)
    assert norm == pytest.approx(expected_norm, rel=1e-13)
    assert max_diff(grads, [p.grad.numpy() for p in tparams]) < 1e-14
    if max_norm < norm:
        assert global_norm(grads) == pytest.approx(max_norm, rel=1e-5)
    else:
        assert all(np.array_equal(g, b) for g, b in zip(grads, before, strict=True))


def test_global_norm_and_non_finite():
    rng = np.random.default_rng(7)
    grads = [rng.standard_normal(s) for s in SHAPES]
    flat = np.concatenate([g.ravel() for g in grads])
    assert global_norm(grads) == pytest.approx(float(np.linalg.norm(flat)), rel=1e-14)
    assert global_norm([]) == 0.0 and clip_grad_norm([], 1.0) == 0.0
    grads[1][0] = np.inf
    before = [g.copy() for g in grads]
    assert clip_grad_norm(grads, 1.0) == np.inf
    for g, b in zip(grads, before, strict=True):
        np.testing.assert_array_equal(g, b)  # left for the caller to skip


def test_clip_grad_norm_array_api_strict():
    xps = pytest.importorskip("array_api_strict")
    grads = [xps.asarray([3.0, 0.0]), xps.asarray([[4.0]])]
    assert clip_grad_norm(grads, 1.0) == pytest.approx(5.0)
    np.testing.assert_allclose(np.asarray(grads[0]), [3 / (5 + 1e-6), 0.0])


# --------------------------------------------------------------------------- checkpoints


def leaves(tree):
    if isinstance(tree, dict):
        for v in tree.values():
            yield from leaves(v)
    elif isinstance(tree, list):
        for v in tree:
            yield from leaves(v)
    else:
        yield tree


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_state_dict_round_trip_through_npz_is_exact(name, tmp_path):
    hparams = {**FULL_STATE[name], "schedule": {"name": "cosine", "T_max": 15}}
    p0, curv, centre = problem(8)
    params = [p.copy() for p in p0]
    opt = run_ours(name, hparams, params, curv, centre, 10)
    state = opt.state_dict()
    assert state["name"] == name and state["t"] == 10
    assert all(isinstance(x, (np.ndarray, bool, int, float, str)) for x in leaves(state))
    assert all(entry for entry in state["state"])  # every kind of state is present
    np.savez(tmp_path / "opt.npz", **flatten_state(state))
    with np.load(tmp_path / "opt.npz", allow_pickle=False) as npz:
        loaded = unflatten_state(npz)
    assert loaded.keys() == state.keys() and loaded["hparams"].keys() == state["hparams"].keys()
    for a, b in zip(leaves(loaded), leaves(state), strict=True):
        np.testing.assert_array_equal(a, b)

    resumed_params = [p.copy() for p in params]
    run_ours(name, hparams, params, curv, centre, 10, start=10, opt=opt)
    fresh = make_optimizer(name, **hparams)
    fresh.load_state_dict(loaded)
    assert fresh.lr == make_optimizer(name, **hparams).schedule(10, fresh.base_lr)
    run_ours(name, hparams, resumed_params, curv, centre, 10, start=10, opt=fresh)
    for a, b in zip(params, resumed_params, strict=True):
        np.testing.assert_array_equal(a, b)
    assert fresh.t == opt.t == 20


def test_state_dict_is_a_copy_and_loads_into_another_namespace():
    xps = pytest.importorskip("array_api_strict")
    p0, curv, centre = problem(9)
    params = [p.copy() for p in p0]
    opt = run_ours("adam", {"lr": 0.01}, params, curv, centre, 5)
    state = opt.state_dict()
    state["state"][0]["exp_avg"][...] = 1e9  # must not reach the optimizer
    assert not np.any(opt.state_dict()["state"][0]["exp_avg"] == 1e9)

    other = make_optimizer("adam", lr=0.01)
    other.load_state_dict(opt.state_dict())
    xparams = [xps.asarray(p, copy=True) for p in params]
    run_ours("adam", {}, params, curv, centre, 5, start=5, opt=opt)
    xc, xz = [xps.asarray(a) for a in curv], [xps.asarray(c) for c in centre]
    run_ours("adam", {}, xparams, xc, xz, 5, start=5, opt=other)
    for a, b in zip(params, xparams, strict=True):
        np.testing.assert_array_equal(a, np.asarray(b))


def test_state_dict_before_first_step_round_trips():
    opt = make_optimizer("adam")
    state = opt.state_dict()
    assert state["t"] == 0 and state["state"] == [] and state["shapes"] == []
    again = unflatten_state(flatten_state(state))
    assert again == {**state, "hparams": {**state["hparams"], "betas": [0.9, 0.999]}}
    make_optimizer("adam").load_state_dict(again)


def stepped(name="adam", shapes=((2, 3), (3,)), **hparams):
    opt = make_optimizer(name, **hparams)
    params = [np.ones(s) for s in shapes]
    opt.step(params, [np.ones(s) for s in shapes])
    return opt


def test_load_state_dict_rejects_mismatches():
    state = stepped().state_dict()
    with pytest.raises(ValueError, match=r"state_dict\['name'\] is 'adam'.*'adamw'"):
        make_optimizer("adamw").load_state_dict(state)
    with pytest.raises(ValueError, match=r"state_dict\['shapes'\].*does not match"):
        stepped(shapes=((2, 3),)).load_state_dict(state)
    with pytest.raises(ValueError, match=r"state_dict\['shapes'\].*does not match"):
        stepped(shapes=((3, 2), (3,))).load_state_dict(state)
    with pytest.raises(ValueError, match=r"state_dict\['state'\]\[0\] must have the keys"):
        make_optimizer("adam", amsgrad=True).load_state_dict(state)
    with pytest.raises(ValueError, match=r"state_dict\['t'\] must be"):
        make_optimizer("adam").load_state_dict({**state, "t": -1})
    with pytest.raises(ValueError, match=r"state_dict is missing shapes"):
        make_optimizer("adam").load_state_dict({k: v for k, v in state.items() if k != "shapes"})
    bad = {**state, "state": [{**state["state"][0], "exp_avg": np.zeros(4)}, state["state"][1]]}
    with pytest.raises(ValueError, match=r"state_dict\['state'\]\[0\]\['exp_avg'\] must have"):
        make_optimizer("adam").load_state_dict(bad)
    with pytest.raises(ValueError, match=r"state_dict\['state'\] must have one entry"):
        make_optimizer("adam").load_state_dict({**state, "state": state["state"][:1]})
    fresh = make_optimizer("adam")  # a fresh optimizer checks the params at the next step
    fresh.load_state_dict(state)
    with pytest.raises(ValueError, match=r"params must keep the shapes"):
        fresh.step([np.ones(3), np.ones(3)], [np.ones(3), np.ones(3)])


def test_numpy_scalars_cannot_be_updated_in_place():
    with pytest.raises(ValueError, match=r"params\[1\] is a NumPy scalar"):
        make_optimizer("sgd").step([np.ones(2), np.float64(1.0)], [np.ones(2), np.float64(1.0)])
    with pytest.raises(ValueError, match=r"grads\[0\] is a NumPy scalar"):
        clip_grad_norm([np.float64(3.0), np.ones(2)], 1.0)


def test_step_rejects_mismatched_grads_and_params():
    opt = stepped("sgd")
    with pytest.raises(ValueError, match=r"grads must have one array per parameter"):
        opt.step([np.ones((2, 3))], [])
    with pytest.raises(ValueError, match=r"grads\[1\] must have the shape of params\[1\]"):
        opt.step([np.ones((2, 3)), np.ones(3)], [np.ones((2, 3)), np.ones(4)])
    with pytest.raises(ValueError, match=r"params must keep the shapes"):
        opt.step([np.ones((2, 3))], [np.ones((2, 3))])


# --------------------------------------------------------------------------- checks


def test_optimizer_registry_and_repr():
    assert sorted(OPTIMIZERS) == [
        "adagrad",
        "adam",
        "adamw",
        "momentum",
        "nesterov",
        "rmsprop",
        "sgd",
    ]
    assert repr(make_optimizer("adam")) == (
        "Adam(lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.0, amsgrad=False)"
    )
    assert repr(make_optimizer("nesterov", lr=0.1, schedule={"name": "cosine", "T_max": 9})) == (
        "Nesterov(lr=0.1, momentum=0.9, dampening=0.0, nesterov=True, weight_decay=0.0, "
        "schedule=CosineSchedule(T_max=9, eta_min=0.0))"
    )
    assert repr(Adam(0.5)) == repr(make_optimizer("adam", lr=0.5))
    for name in OPTIMIZERS:
        text = repr(make_optimizer(name))
        assert all(f"{k}=" in text for k in make_optimizer(name).hparams)
    assert repr(make_schedule("warmup_cosine", warmup_steps=2, total_steps=9)) == (
        "WarmupCosineSchedule(warmup_steps=2, total_steps=9, min_lr=0.0)"
    )


BAD_OPTIMIZERS = [
    (
        "adamm",
        {},
        r"^optimizer must be one of adagrad, adam, adamw, momentum, nesterov, "
        r"rmsprop, sgd, got 'adamm'$",
    ),
    ("adam", {"lr": -0.1}, r"^lr must be a positive finite number, got -0\.1$"),
    ("sgd", {"lr": 0.0}, r"^lr must be a positive finite number, got 0\.0$"),
    ("sgd", {"lr": float("inf")}, r"^lr must be"),
    ("sgd", {"lr": float("nan")}, r"^lr must be"),
    ("sgd", {"lr": "0.1"}, r"^lr must be"),
    ("sgd", {"lr": True}, r"^lr must be"),
    ("adam", {"bet": 0.9}, r"unknown hyper-parameter 'bet' for 'adam'; accepted: lr, betas"),
    ("sgd", {"betas": (0.9, 0.9)}, r"'betas' for 'sgd'; accepted: lr, momentum, dampening"),
    ("adam", {"betas": (1.0, 0.999)}, r"^betas\[0\] must be a number in \[0, 1\), got 1\.0$"),
    ("adamw", {"betas": (0.9, -0.1)}, r"^betas\[1\] must be"),
    ("adam", {"betas": 0.9}, r"^betas must be a pair"),
    ("adam", {"betas": (0.9, 0.99, 0.9)}, r"^betas must be a pair"),
    ("adam", {"eps": -1e-8}, r"^eps must be a non-negative finite number, got -1e-08$"),
    ("adam", {"weight_decay": -0.1}, r"^weight_decay must be a non-negative"),
    ("adam", {"amsgrad": "yes"}, r"^amsgrad must be a bool"),
    ("sgd", {"momentum": -0.5}, r"^momentum must be a non-negative"),
    ("sgd", {"dampening": -0.5}, r"^dampening must be a non-negative"),
    ("sgd", {"nesterov": True}, r"^nesterov=True requires momentum > 0 and dampening = 0"),
    ("nesterov", {"momentum": 0.0}, r"^nesterov=True requires momentum > 0"),
    ("nesterov", {"dampening": 0.1}, r"^nesterov=True requires .*dampening=0\.1"),
    ("sgd", {"nesterov": 1, "momentum": 0.9}, r"^nesterov must be a bool"),
    ("rmsprop", {"alpha": 1.5}, r"^alpha must be a number in \[0, 1\]"),
    ("rmsprop", {"momentum": -0.1}, r"^momentum must be"),
    ("rmsprop", {"centered": 1}, r"^centered must be a bool"),
    ("rmsprop", {"eps": float("nan")}, r"^eps must be"),
    ("adagrad", {"lr_decay": -1}, r"^lr_decay must be"),
    ("adagrad", {"initial_accumulator_value": -1}, r"^initial_accumulator_value must be"),
    ("adagrad", {"schedule": "cos"}, r"^schedule must be one of constant, cosine, exponential"),
    ("adagrad", {"schedule": "cosine"}, r"schedule 'cosine' needs T_max"),
    ("adam", {"schedule": {"name": "step", "step_size": 0}}, r"^step_size must be a positive"),
    ("adam", {"schedule": 3}, r"^schedule must be None, a schedule name"),
]


@pytest.mark.parametrize(("name", "kwargs", "match"), BAD_OPTIMIZERS)
def test_bad_optimizer_arguments(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_optimizer(name, **kwargs)


BAD_SCHEDULES = [
    (
        "cos",
        {},
        r"^schedule must be one of constant, cosine, exponential, step, "
        r"warmup_cosine, got 'cos'$",
    ),
    ("step", {"step_size": 0}, r"^step_size must be a positive integer, got 0$"),
    ("step", {"step_size": 2.5}, r"^step_size must be a positive integer"),
    ("step", {"step_size": 2, "gamma": 0}, r"^gamma must be a positive"),
    ("step", {"step_size": 2, "gama": 0.5}, r"unknown schedule argument 'gama' for 'step'"),
    ("step", {}, r"schedule 'step' needs step_size"),
    ("exponential", {"gamma": -1}, r"^gamma must be"),
    ("cosine", {"T_max": -3}, r"^T_max must be a positive integer, got -3$"),
    ("cosine", {"T_max": 3, "eta_min": -1}, r"^eta_min must be a non-negative"),
    (
        "warmup_cosine",
        {"warmup_steps": -1, "total_steps": 5},
        r"^warmup_steps must be an integer >= 0",
    ),
    (
        "warmup_cosine",
        {"warmup_steps": 9, "total_steps": 5},
        r"^total_steps must be >= warmup_steps \(9\)",
    ),
    ("warmup_cosine", {"warmup_steps": 1, "total_steps": 0}, r"^total_steps must be a positive"),
    ("warmup_cosine", {"warmup_steps": 1, "total_steps": 5, "min_lr": -1}, r"^min_lr must be"),
]


@pytest.mark.parametrize(("name", "kwargs", "match"), BAD_SCHEDULES)
def test_bad_schedule_arguments(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_schedule(name, **kwargs)


def test_bad_clip_and_flatten_arguments():
    with pytest.raises(ValueError, match=r"^max_norm must be a positive finite number, got 0$"):
        clip_grad_norm([np.ones(2)], 0)
    with pytest.raises(ValueError, match=r"state\['a'\] must be an array"):
        flatten_state({"a": None})


# --------------------------------------------------------------------------- declarations


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_hyperparameters_are_declared_once_with_their_defaults(name):
    cls = OPTIMIZERS[name]
    assert next(iter(cls.HYPERPARAMETERS)) == "lr"
    opt = make_optimizer(name)
    assert opt.base_lr == cls.HYPERPARAMETERS["lr"].default
    assert opt.hparams == {k: p.default for k, p in cls.HYPERPARAMETERS.items() if k != "lr"}
    assert all(p.doc for p in cls.HYPERPARAMETERS.values())
    checked = check_hyperparameters(name, {})
    assert checked == {"lr": opt.base_lr, **opt.hparams}


def test_check_hyperparameters_checks_a_config_section_without_building():
    given = {
        "lr": 0.1,
        "momentum": 0.9,
        "schedule": {"name": "step", "step_size": 3, "gamma": None, "T_max": None},
        "clip_norm": 1,
        "jit": False,
    }
    assert check_hyperparameters("sgd", given, prefix="optimizer.") == {
        "lr": 0.1,
        "momentum": 0.9,
        "dampening": 0.0,
        "nesterov": False,
        "weight_decay": 0.0,
        "schedule": StepSchedule(3, 0.1),
        "clip_norm": 1.0,
        "jit": "false",
    }
    assert check_hyperparameters("adam", {"schedule": None, "clip_norm": None}) == {
        **check_hyperparameters("adam", {}),
        "schedule": None,
        "clip_norm": None,
    }


BAD_SECTIONS = [
    ("adamm", {}, r"^optimizer\.name must be one of adagrad, adam, .*, sgd, got 'adamm'$"),
    (None, {}, r"^optimizer\.name must be one of .*, got None$"),
    ("adam", {"lr": 0}, r"^optimizer\.lr must be a positive finite number, got 0$"),
    ("adam", {"betas": (0.9, 1)}, r"^optimizer\.betas\[1\] must be a number in \[0, 1\), got 1$"),
    (
        "adam",
        {"bet": 0.9},
        r"^unknown hyper-parameter 'optimizer\.bet' for 'adam'; accepted: lr, betas, eps, "
        r"weight_decay, amsgrad, schedule, clip_norm, jit$",
    ),
    ("sgd", {"nesterov": True}, r"^optimizer\.nesterov=True requires momentum > 0"),
    ("adam", {"clip_norm": -1}, r"^optimizer\.clip_norm must be a positive finite number"),
    ("adam", {"jit": "yes"}, r"^optimizer\.jit must be one of auto, true, false, got 'yes'$"),
    ("adam", {"schedule": "cosinus"}, r"^optimizer\.schedule must be one of constant, cosine"),
    ("adam", {"schedule": {"gamma": 0.5}}, r"^optimizer\.schedule must be one of .*got None$"),
    (
        "adam",
        {"schedule": {"name": "step", "step_size": 0}},
        r"^optimizer\.schedule\.step_size must be a positive integer, got 0$",
    ),
    (
        "adam",
        {"schedule": {"name": "cosine", "T_max": None}},
        r"^optimizer\.schedule\.T_max is missing: schedule 'cosine' needs T_max; got \[\]$",
    ),
    (
        "adam",
        {"schedule": {"name": "step", "step_size": 2, "gama": 0.5}},
        r"^unknown schedule argument 'optimizer\.schedule\.gama' for 'step'; "
        r"accepted: step_size, gamma$",
    ),
    (
        "adam",
        {"schedule": {"name": "warmup_cosine", "warmup_steps": 9, "total_steps": 5}},
        r"^optimizer\.schedule\.total_steps must be >= optimizer\.schedule\.warmup_steps \(9\)",
    ),
]


@pytest.mark.parametrize(("name", "given", "match"), BAD_SECTIONS)
def test_bad_config_sections_name_the_key(name, given, match):
    with pytest.raises(ValueError, match=match):
        check_hyperparameters(name, given, prefix="optimizer.")


def test_check_schedule_accepts_every_spelling():
    cosine = CosineSchedule(T_max=9)
    assert check_schedule(None) is None
    assert check_schedule(cosine) is cosine
    assert check_schedule("constant") == ConstantSchedule()
    assert check_schedule({"name": "cosine", "T_max": 9, "eta_min": None}) == cosine
    assert check_schedule({"name": "cosine", "T_max": 9}, key="s", prefix="") == cosine
    with pytest.raises(ValueError, match=r"^s\.T_max must be a positive integer, got 0$"):
        check_schedule({"name": "cosine", "T_max": 0}, key="s")
    assert CosineSchedule(9) == cosine and hash(CosineSchedule(9)) == hash(cosine)
    assert StepSchedule(2, 0.5) != ExponentialSchedule(0.5)
    with pytest.raises(AttributeError, match=r"CosineSchedule is immutable"):
        cosine.T_max = 3


# --------------------------------------------------------------------------- pickling


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_an_unpickled_optimizer_continues_with_the_same_updates(name, how):
    hparams = {
        **FULL_STATE[name],
        "schedule": {"name": "warmup_cosine", "warmup_steps": 3, "total_steps": 20},
    }
    p0, curv, centre = problem(10)
    params = [p.copy() for p in p0]
    opt = run_ours(name, hparams, params, curv, centre, 6)
    clone = pickle.loads(pickle.dumps(opt)) if how == "pickle" else copy.deepcopy(opt)
    assert repr(clone) == repr(opt) and clone.t == opt.t == 6
    copied = [p.copy() for p in params]
    run_ours(name, hparams, params, curv, centre, 6, start=6, opt=opt)
    run_ours(name, hparams, copied, curv, centre, 6, start=6, opt=clone)
    for a, b in zip(params, copied, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(leaves(opt.state_dict()), leaves(clone.state_dict()), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_loaded_but_not_yet_stepped_optimizer_pickles():
    state = stepped("adam").state_dict()
    fresh = make_optimizer("adam")
    fresh.load_state_dict(state)
    again = pickle.loads(pickle.dumps(fresh))
    for a, b in zip(leaves(again.state_dict()), leaves(state), strict=True):
        np.testing.assert_array_equal(a, b)
    for schedule in SCHEDULES.values():
        args = {k: 2 for k, p in schedule.PARAMS.items() if p.required}
        instance = schedule(**args)
        assert pickle.loads(pickle.dumps(instance)) == instance == copy.deepcopy(instance)
