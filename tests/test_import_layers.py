"""The package's import layers: every import in src/mtr (lazy and type-checking ones included) points down.

This file is the one place where the order is declared; README.md's layout section describes it.
A stage may import the contracts and any stage of a lower layer, never one of its own layer (sim and data
are peers, so are pareto and tuning) and never a higher one. Serving is held to a short list. The
experiment harnesses, A/B analysis and the command line sit beside the stages: they may import any
stage, and no stage imports them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mtr

PACKAGE = Path(mtr.__file__).parent
CONTRACTS = {"schema", "objectives", "events", "io", "tables", "errors"}
# Layer of each stage, lowest first; the contracts are layer 0.
LAYERS: dict[str, int] = {
    "studies": 1,  # Optuna storage and search space: needs only the contracts
    "sim": 1,
    "data": 1,
    "models": 2,
    "training": 3,
    "scoring": 4,
    "ope": 5,
    "pareto": 6,
    "tuning": 6,
    "rl": 6,  # the long-term track: environment, logged journeys, fitted-Q evaluation and learning
}
# Serving runs in production: it may use only these, whatever their layers.
SERVING_MAY_IMPORT = {"data.preprocess", "data.batch", "models", "scoring"}
BESIDE = {"abtest", "experiments", "cli", "__main__"}


def stage(module: str) -> str:
    """'mtr.scoring.fusion' -> 'scoring'; a contract module -> 'contracts'."""
    parts = module.split(".")
    if len(parts) == 1:
        return "package"
    return "contracts" if parts[1] in CONTRACTS else parts[1]


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every mtr import in a file, at any depth of the syntax tree."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.split(".")[0] == "mtr"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                pytest.fail(f"{path}:{node.lineno}: relative import; mtr imports by absolute module names")
            if node.module == "mtr":  # `from mtr import pareto` imports the stage mtr.pareto
                found += [(node.lineno, f"mtr.{alias.name}") for alias in node.names]
            elif node.module and node.module.split(".")[0] == "mtr":
                found.append((node.lineno, node.module))
    return found


def violation(importer: str, imported: str) -> str | None:
    """Why `importer` may not import `imported`, or None when the arrow points the right way."""
    source, target = stage(importer), stage(imported)
    if target in ("contracts", "package") or source == target or source in BESIDE:
        return None
    if target in BESIDE:
        return f"{target} sits beside the stages; no stage imports it"
    if source == "contracts":
        return "the contracts import no stage"
    if source == "serving":
        allowed = any(imported == f"mtr.{a}" or imported.startswith(f"mtr.{a}.") for a in SERVING_MAY_IMPORT)
        return None if allowed else f"serving may import only {sorted(SERVING_MAY_IMPORT)}"
    if target == "serving":
        return "serving is the top of its branch; only the command line and harnesses import it"
    if source not in LAYERS or target not in LAYERS:
        return f"stage '{source}' or '{target}' has no declared layer"
    if LAYERS[target] >= LAYERS[source]:
        return f"{source} (layer {LAYERS[source]}) may not import {target} (layer {LAYERS[target]})"
    return None


def test_every_import_points_down_the_declared_layers() -> None:
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 100  # the walk found the package, not an empty folder
    wrong = []
    for path in modules:
        importer = "mtr." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        for line, imported in imports_of(path):
            reason = violation(importer, imported)
            if reason:
                wrong.append(f"{path.relative_to(PACKAGE)}:{line} imports {imported}: {reason}")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_every_stage_folder_has_a_declared_place() -> None:
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders <= set(LAYERS) | BESIDE | {"serving"}, sorted(folders - set(LAYERS) - BESIDE - {"serving"})


def test_the_walk_sees_lazy_and_package_level_imports(tmp_path: Path) -> None:
    module = tmp_path / "module.py"
    module.write_text("from mtr import pareto\n\n\ndef later():\n    import mtr.ope.evaluator\n")
    assert imports_of(module) == [(1, "mtr.pareto"), (5, "mtr.ope.evaluator")]


@pytest.mark.parametrize(
    ("importer", "imported", "allowed"),
    [
        ("mtr.sim.engine", "mtr.events", True),
        ("mtr.sim.engine", "mtr.data.labels", False),  # peers
        ("mtr.training.module", "mtr.scoring.fusion", False),  # upward
        ("mtr.ope.evaluator", "mtr.scoring.fusion", True),
        ("mtr.serving.program", "mtr.scoring.fusion", True),
        ("mtr.serving.export", "mtr.ope.estimators", False),  # serving's short list
        ("mtr.serving.scorer", "mtr.data.labels", False),
        ("mtr.pareto.study", "mtr.experiments.results", False),  # harnesses sit beside
        ("mtr.experiments.oracle_gap", "mtr.pareto.study", True),
        ("mtr.schema", "mtr.data.labels", False),
    ],
)
def test_the_rule_rejects_arrows_that_point_the_wrong_way(importer: str, imported: str, allowed: bool) -> None:
    assert (violation(importer, imported) is None) is allowed
