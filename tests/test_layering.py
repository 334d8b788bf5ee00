"""The house's layers: derivations (NumPy) at the bottom, the checker on them (NumPy, JAX when
present), the application on top. Imports point one way only, lazy ones included, and nothing
below the application needs JAX."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("manual_backprop", "autodiff_check", "benchmarks")
STDLIB = set(sys.stdlib_module_names)
#: what each layer may import besides the standard library and the layers below it
THIRD_PARTY = {
    "derivation": {"numpy", "scipy", "threadpoolctl"},  # SciPy/threadpoolctl: fast.sgd_step's rank-1 BLAS
    "checker": {"numpy", "jax", "matplotlib", "hypothesis"},
    "application": {"numpy", "scipy", "jax", "matplotlib", "threadpoolctl", "tqdm", "torch"},
}
BELOW = {"derivation": {"derivation"}, "checker": {"derivation", "checker"},
         "application": {"derivation", "checker", "application"}}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> str:
    """The layer a project module belongs to, read from where it lives."""
    parts = module.split(".")
    if parts[0] == "benchmarks" or parts[-1] == "__main__" or parts[:2] == ["manual_backprop", "app"]:
        return "application"
    return "checker" if parts[0] == "autodiff_check" else "derivation"


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")}


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """Every module ``module`` imports anywhere in its source (top level or inside a function):
    project modules by full name, others by their top-level name."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            submodules = {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known}
            found |= submodules  # "from pkg import module" runs pkg/__init__ first, but that is
            if len(submodules) < len(node.names):  # an edge only for the names pkg itself defines
                found.add(base)
    return {m if m in known else m.split(".")[0] for m in found}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: _imports(m, p, set(modules)) for m, p in modules.items()}


def test_every_import_points_down_or_sideways():
    graph, bad = _graph(), []
    for module, imported in graph.items():
        own = layer(module)
        for m in imported:
            if m in graph:
                if layer(m) not in BELOW[own]:
                    bad.append(f"{module} ({own}) imports {m} ({layer(m)})")
            elif m not in STDLIB and m not in THIRD_PARTY[own] and m not in PACKAGES:
                bad.append(f"{module} ({own}) imports {m}, not allowed in that layer")
    assert not bad, "\n".join(bad)


def test_no_import_circle_lazy_ones_included():
    graph = _graph()
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph.get(m, ())):
            if n not in graph:
                continue
            assert state.get(n) != 1, "import circle: " + " -> ".join(path + [m, n])
            if n not in state:
                visit(n, path + [m])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])


def test_the_layering_test_can_fail():
    """The classifier and the import reader see what a violation would look like."""
    assert layer("manual_backprop.network") == "derivation"
    assert layer("manual_backprop.app.training") == "application"
    assert layer("autodiff_check.check") == "checker" and layer("autodiff_check.__main__") == "application"
    graph = _graph()
    assert "manual_backprop.network" in graph["autodiff_check.check"] or \
        "manual_backprop" in graph["autodiff_check.check"]
    assert "autodiff_check" in graph["manual_backprop.app.cli"]  # the CLI wires JAX in


def test_everything_below_the_application_works_without_jax(tmp_path):
    """With JAX made unimportable: the derivations, the checker's NumPy oracles and a short
    training run work, JAX is never imported, and --backend jax says in one line what is
    missing."""
    code = (
        "import sys; sys.modules['jax'] = None\n"
        "import numpy as np, manual_backprop as mb, autodiff_check as ac\n"
        "from manual_backprop.app import training, cli\n"
        "p = mb.init_params([3, 4, 2]); x = np.ones((2, 3)); y = mb.one_hot([0, 1], 2)\n"
        "J, g = mb.loss_and_grad(p, x, y); J, g = mb.fast.loss_and_grad(p, x, y)\n"
        "J, p = mb.sgd_step(p, x[:1], y[:1], 0.1); J, p = mb.sgd_step(p, x, y, 0.1)\n"
        "assert ac.check_gradients(lambda P: mb.loss(P, x, y), lambda P: mb.loss_and_grad(P, x, y)[1], p).passed\n"
        "r = training.train(training.Config(hidden_sizes=(4,), epochs=1, train_subset=50), progress=False,"
        " log=lambda s: None)\n"
        "assert r.params[0].shape == (785, 4)\n"
        "assert not [m for m in sys.modules if m.split('.')[0] == 'jax' and sys.modules[m] is not None]\n"
        "sys.exit(cli.main(['train', '--backend', 'jax', '--train-subset', '10', '--no-progress']))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert run.returncode == 1, run.stderr
    assert "needs JAX" in run.stderr and run.stderr.count("\n") == 1
