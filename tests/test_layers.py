"""The package's folders are its floors: a module imports only from its own floor or lower ones."""
from __future__ import annotations

import ast
from pathlib import Path

from dario_utils.core import paths

FLOORS = ("core", "data", "models", "training", "evaluation", "studies", "figures", "runner")
"""The stages of ``dario_utils``, lowest first (docs/architecture.md)."""


def _floor(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "dario_utils" and parts[1] in FLOORS else None


def upward_imports(package: Path) -> list[str]:
    """``file: floor -> higher floor`` for every import of ``package``'s modules that runs up a floor."""
    found = []
    for file in sorted(package.rglob("*.py")):
        relative = file.relative_to(package.parent).with_suffix("")
        own = _floor(".".join(relative.parts))
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                raise AssertionError(f"{file}: relative import; the layer check reads absolute ones")
            names = ([node.module] if isinstance(node, ast.ImportFrom) and node.module else []) + (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            if isinstance(node, ast.ImportFrom) and node.module == "dario_utils":
                names += [f"dario_utils.{a.name}" for a in node.names]
            for name in names:
                target = _floor(name)
                if own and target and FLOORS.index(target) > FLOORS.index(own):
                    found.append(f"{relative.as_posix()}: {own} -> {target} ({name})")
    return found


def test_every_module_lives_on_a_floor():
    package = paths.PROJECT_ROOT / "dario_utils"
    loose = [p.name for p in package.glob("*.py") if p.name != "__init__.py"]
    assert not loose, f"modules outside the floors: {loose}"
    assert sorted(p.name for p in package.iterdir() if p.is_dir() and p.name != "__pycache__") == sorted(FLOORS)


def test_no_module_imports_from_a_higher_floor():
    assert upward_imports(paths.PROJECT_ROOT / "dario_utils") == []


def test_an_upward_import_is_found(tmp_path):
    package = tmp_path / "dario_utils"
    (package / "data").mkdir(parents=True)
    (package / "data" / "split.py").write_text("from dario_utils.figures.style import COLORS\n")
    (package / "figures").mkdir()
    (package / "figures" / "style.py").write_text("from dario_utils.data import split\n")
    assert upward_imports(package) == ["dario_utils/data/split: data -> figures (dario_utils.figures.style)"]
