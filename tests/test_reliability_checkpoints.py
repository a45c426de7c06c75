"""Issue 19, case 7: a bad checkpoint is one CheckpointError naming the file and the field."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from mlpx.checkpoint import CheckpointError, TrainState, load_checkpoint, save_checkpoint
from mlpx.nn.model import MLP
from mlpx.nn.optim import make_optimizer
from mlpx.nn.state import unflatten_state


def net_and_opt(dtype: str = "float64") -> tuple[MLP, object]:
    return MLP([4, 8, 3], "relu", seed=1, dtype=dtype), make_optimizer("adam", lr=1e-3)


@pytest.fixture
def good(tmp_path: Path) -> Path:
    net, opt = net_and_opt()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6, 4))
    _, _, g = net.train_batch(X, np.array([0, 1, 2, 0, 1, 2]), np.arange(6))
    opt.step(net.parameters(), g.parameters())  # optimizer state to save
    state = TrainState(epoch=2, step=10, history={"train/loss": [(5, 0.5), (10, 0.4)]})
    state.pending = [np.array([0, 1]), np.array([2])]
    return save_checkpoint(tmp_path / "good.npz", net, opt, rng, state)


def arrays_of(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def rewrite(path: Path, change: Callable[[dict], None]) -> Path:
    arrays = arrays_of(path)
    change(arrays)
    out = path.with_name("bad.npz")
    with open(out, "wb") as fh:
        np.savez(fh, **arrays)
    return out


def counters(**values: object) -> Callable[[dict], None]:
    def change(a: dict) -> None:
        c = json.loads(str(a["counters"]))
        c.update(values)
        a["counters"] = np.asarray(json.dumps(c))

    return change


def npy_header(shape: tuple, pad: int = 0, descr: str = "<f8") -> bytes:
    text = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}" + " " * pad + "\n"
    return b"\x93NUMPY\x02\x00" + len(text).to_bytes(4, "little") + text.encode()


def with_member(path: Path, name: str, data: bytes) -> Path:
    out = path.with_name("bad.npz")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        dst.writestr(name, data)
    return out


def pending(indices: list, sizes: list) -> Callable[[dict], None]:
    def change(a: dict) -> None:
        a["pending/indices"], a["pending/sizes"] = np.asarray(indices), np.asarray(sizes)

    return change


CASES = {  # name: (make the bad file from the good one, field named in the message)
    "empty": (lambda p: (p.write_bytes(b""), p)[1], "the file is empty"),
    "truncated": (lambda p: (p.write_bytes(p.read_bytes()[:300]), p)[1], "truncated"),
    "no counters": (lambda p: rewrite(p, lambda a: a.pop("counters")), "field counters"),
    "no rng": (lambda p: rewrite(p, lambda a: a.pop("rng")), "field rng"),
    "negative epoch": (lambda p: rewrite(p, counters(epoch=-3)), "field counters.epoch"),
    "negative step": (lambda p: rewrite(p, counters(step=-1)), "field counters.step"),
    "text step": (lambda p: rewrite(p, counters(step="x")), "field counters.step"),
    "bool epoch": (lambda p: rewrite(p, counters(epoch=True)), "field counters.epoch"),
    "best text": (lambda p: rewrite(p, counters(best="high")), "field counters.best"),
    "sums list": (lambda p: rewrite(p, counters(sums=[1])), "field counters.sums"),
    "counters json": (
        lambda p: rewrite(p, lambda a: a.update(counters=np.asarray("{oops"))),
        "field counters",
    ),
    "rng": (
        lambda p: rewrite(p, lambda a: a.update(rng=np.asarray('{"bit_generator": "X"}'))),
        "field rng",
    ),
    "history shape": (
        lambda p: rewrite(p, lambda a: a.update({"history/x": np.ones(3)})),
        "field history/x",
    ),
    "pending sizes": (lambda p: rewrite(p, pending([0, 1], [5])), "field pending/sizes"),
    "pending alone": (lambda p: rewrite(p, lambda a: a.pop("pending/sizes")), "pending/"),
    "object array": (
        lambda p: with_member(p, "history/obj.npy", npy_header((1,), descr="|O")),
        "field history/obj: holds Python objects",
    ),
    "huge header": (
        lambda p: with_member(p, "history/h.npy", npy_header((3,), pad=300_000)),
        "field history/h: bad array header",
    ),
    "huge shape": (
        lambda p: with_member(p, "history/h.npy", npy_header((10**11,)) + b"\0" * 24),
        "field history/h: the header claims shape",
    ),
    "optimizer list": (
        lambda p: rewrite(p, lambda a: a.update({"optimizer/state/#list": np.asarray(10**6)})),
        "field optimizer",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_checkpoint_one_error_naming_file_and_field(good: Path, case: str) -> None:
    make, field = CASES[case]
    bad = make(good)
    with pytest.raises(CheckpointError) as info:
        net, opt = net_and_opt()
        load_checkpoint(bad).restore(net, opt, np.random.default_rng(), n_train=10)
    message = str(info.value)
    assert f"trainer.resume={bad}" in message and field in message, message
    assert "\n" not in message


RESTORE_CASES = {
    "missing model key": (lambda a: a.pop("model/W_1"), "field model/W_1 is missing"),
    "model shape": (lambda a: a.update({"model/W_1": np.zeros((2, 2))}), "field model/W_1"),
    "model dtype": (
        lambda a: a.update({"model/W_1": a["model/W_1"].astype(np.float32)}),
        "field model/W_1 must be a float64",
    ),
    "extra model key": (lambda a: a.update({"model/W_9": np.zeros(2)}), "field model/W_9"),
    "pending out of range": (lambda a: pending([0, 10**9], [1, 1])(a), "field pending/indices"),
    "negative index": (lambda a: pending([-1, 0], [1, 1])(a), "field pending/indices"),
}


@pytest.mark.parametrize("case", list(RESTORE_CASES))
def test_checkpoint_that_does_not_fit_the_run(good: Path, case: str) -> None:
    change, field = RESTORE_CASES[case]
    bad = rewrite(good, change)
    net, opt = net_and_opt()
    with pytest.raises(CheckpointError, match=field):
        load_checkpoint(bad).restore(net, opt, np.random.default_rng(), n_train=10)


def test_another_dtype_names_backend_dtype(good: Path) -> None:
    net, opt = net_and_opt("float32")
    with pytest.raises(CheckpointError, match=r"backend\.dtype is float32.*backend\.dtype=float64"):
        load_checkpoint(good).restore(net, opt, np.random.default_rng())


def test_a_good_checkpoint_round_trips(good: Path) -> None:
    net, opt = net_and_opt()
    state = load_checkpoint(good).restore(net, opt, np.random.default_rng(), n_train=10)
    assert (state.epoch, state.step) == (2, 10)
    assert [b.tolist() for b in state.pending] == [[0, 1], [2]]
    assert state.history["train/loss"] == [(5, 0.5), (10, 0.4)]


def test_unflatten_state_rejects_inconsistent_lists() -> None:
    with pytest.raises(ValueError, match=r"state\['a'\] must hold the list entries 0\.\.2"):
        unflatten_state({"a/#list": np.asarray(3), "a/0": np.asarray(1.0)})
    with pytest.raises(ValueError, match="not an integer"):
        unflatten_state({"a/#list": np.asarray("x")})
    assert unflatten_state({"a/#list": np.asarray(1), "a/0": np.asarray(2)}) == {"a": [2]}
