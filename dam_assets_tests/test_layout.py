"""The architecture a reader sees in the folder names holds: Dagster's own tooling loads the
defs/ folder, the pure layers import no Dagster, and nothing imports upward."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "dam_assets"
DG = Path(sys.executable).with_name("dg")


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(absolute module name, whether inside a function) of every import in one file."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    package = parts if path.name == "__init__.py" else parts[:-1]
    package = package[:-1] if package[-1] == "__init__" else package
    found = []

    def visit(node: ast.AST, nested: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = nested or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                found.extend((alias.name, inner) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = list(package[: len(package) - child.level + 1]) if child.level else []
                module = ".".join([*base, *(child.module.split(".") if child.module else [])])
                found.append((module, inner))
            visit(child, inner)

    visit(ast.parse(path.read_text()), False)
    return found


def _modules(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


def test_dg_loads_the_defs_folder(tmp_path):
    # a fresh instance and none of the settings another test may have left in the environment
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "DAM_"))}
    env.update(DAGSTER_HOME=str(tmp_path), VIRTUAL_ENV=sys.prefix)
    checked = subprocess.run(
        [str(DG), "check", "defs"], cwd=PACKAGE.parent, env=env, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    listed = subprocess.run(
        [str(DG), "list", "defs", "--json"],
        cwd=PACKAGE.parent,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assets = {a["asset_key"] for a in json.loads(listed.stdout)["assets"]}
    assert {"probe", "thumbnails", "scenes", "transcripts", "clip_embeddings", "faces"} <= assets
    assert {"face_clusters", "capture_segments", "capture_sessions"} <= assets


def test_pure_layers_import_no_dagster():
    for folder in ("media", "storage", "models", "library"):
        for path in _modules(folder):
            dagster = [m for m, _ in _imports(path) if m.split(".")[0] == "dagster"]
            assert not dagster, f"{path.relative_to(PACKAGE)} imports {dagster}"


def test_nothing_imports_upward():
    """defs/ never reaches for the loader or the CLI (the import circle that was), the pure
    layers never reach for defs/, and no function imports the definitions lazily."""
    upward = {
        "defs": ("dam_assets.definitions", "dam_assets.cli", "dam_assets.demo"),
        "media": ("dam_assets.defs", "dam_assets.cli", "dam_assets.library"),
        "storage": ("dam_assets.defs", "dam_assets.cli", "dam_assets.library"),
        "models": ("dam_assets.defs", "dam_assets.cli", "dam_assets.library"),
        "library": ("dam_assets.defs", "dam_assets.cli"),
    }
    for folder, forbidden in upward.items():
        for path in _modules(folder):
            bad = [m for m, _ in _imports(path) if m.startswith(forbidden)]
            assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}"
    for path in PACKAGE.rglob("*.py"):
        lazy = [m for m, nested in _imports(path) if nested and m == "dam_assets.definitions"]
        assert not lazy, f"{path.relative_to(PACKAGE)} imports the definitions inside a function"


def test_few_loose_modules():
    loose = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert len(loose) <= 6, loose
