"""Dependencies point one way: the domain imports no framework."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "coldchain"
FRAMEWORKS = {"flask", "sqlalchemy", "paho", "pandas", "alembic", "werkzeug", "pydantic"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", sorted((PACKAGE / "domain").glob("*.py")), ids=lambda p: p.name)
def test_the_domain_imports_no_framework(path: Path) -> None:
    assert not imported_roots(path) & FRAMEWORKS


def test_the_domain_imports_nothing_else_of_coldchain() -> None:
    for path in (PACKAGE / "domain").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("coldchain.")
            ):
                assert node.module.startswith("coldchain.domain"), (path.name, node.module)


def test_only_reports_imports_pandas() -> None:
    for path in PACKAGE.rglob("*.py"):
        if "pandas" in imported_roots(path):
            assert path.parent.name == "reports", path


def test_importing_coldchain_imports_no_flask() -> None:
    import subprocess
    import sys

    code = "import sys, coldchain; print('flask' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
