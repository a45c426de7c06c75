"""DESIGN.md's layering, checked on the package: the lecture's side imports nothing above it,
Hydra lives in app/ only, no private name crosses a module, no module grows past ~600 lines."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "mlpx"
MODULES = sorted(PKG.rglob("*.py"))
MAX_LINES = 620  # "no module over ~600 lines"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> list[tuple[str, list[str]]]:
    """``(module, names)`` of every import statement, relative imports resolved."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            out.append((mod, [a.name for a in node.names]))
    return out


def test_the_lecture_side_loads_without_fast_numba_hydra_or_mlflow() -> None:
    """Importing MLP and make_optimizer (and training with them) pulls in none of the layers
    above the lecture's code."""
    code = (
        "import sys, numpy as np\n"
        "from mlpx.nn.model import MLP\n"
        "from mlpx.nn.optim import make_optimizer\n"
        "net = MLP([4, 5, 3], seed=0); opt = make_optimizer('adam', jit='true')\n"
        "loss, g = net.loss_and_grads(np.ones((2, 4)), np.array([0, 2]))\n"
        "opt.step(net.parameters(), g.parameters())\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('numba', 'hydra', 'omegaconf', 'mlflow', 'sklearn', 'torch') or m.startswith("
        "('mlpx.fast', 'mlpx.app', 'mlpx.tracking', 'mlpx.train'))]\n"
        "print(sorted(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_hydra_only_in_the_command_line_layer(path: Path) -> None:
    if module_name(path).startswith("mlpx.app"):
        return
    for mod, _ in imported(path):
        assert mod.split(".")[0] not in ("hydra", "omegaconf"), f"{path.name} imports {mod}"


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_no_private_name_crosses_a_module(path: Path) -> None:
    for mod, names in imported(path):
        if mod.startswith("mlpx"):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            assert not private, f"{module_name(path)} imports {private} from {mod}"


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_no_private_attribute_of_another_mlpx_module(path: Path) -> None:
    """``tracking._with_retry`` after ``from mlpx import tracking`` counts too."""
    tree = ast.parse(path.read_text())
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {a.asname or a.name for a in node.names if a.name.startswith("mlpx")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mlpx"):
            for a in node.names:
                if (PKG.parent / (node.module or "").replace(".", "/") / f"{a.name}.py").exists():
                    modules.add(a.asname or a.name)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            raise AssertionError(f"{module_name(path)} uses {node.value.id}.{node.attr}")


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_no_module_over_600_lines(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{module_name(path)} has {lines} lines"


def test_the_layer_list_matches_the_folders() -> None:
    """The layers DESIGN.md names exist as packages."""
    for package in ("nn", "fast", "analysis", "tracking", "app"):
        assert (PKG / package / "__init__.py").is_file(), package


def test_every_subpackage_ships_in_the_wheel() -> None:
    """pyproject.toml lists packages by name: a new folder of mlpx/ must be added there."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((PKG.parent / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    folders = {module_name(p.parent / "__init__.py") for p in PKG.rglob("__init__.py")}
    assert folders <= listed, sorted(folders - listed)
