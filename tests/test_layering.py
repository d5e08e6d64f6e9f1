"""The layers hold: pure modules (values in, values out) import no I/O module or I/O
library, and nothing but the entry point imports the CLI. Read from the source, every
import counted (module level, in functions, under TYPE_CHECKING)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "monitor"

# The steps that decide: they may import each other and the standard library only.
PURE = {
    "monitor.alerts",
    "monitor.cluster",
    "monitor.cluster_index",
    "monitor.decide",
    "monitor.derive",
    "monitor.errors",
    "monitor.feedback",
    "monitor.jsoncodec",
    "monitor.match",
    "monitor.normalize",
    "monitor.opml",
    "monitor.parse",
    "monitor.parse.fast",
    "monitor.parse.generic",
    "monitor.parse.types",
    "monitor.prepare",
    "monitor.profile",
    "monitor.routing",
    "monitor.rows",
    "monitor.schedule",
    "monitor.stats",
    "monitor.text",
    "monitor.values",
    "monitor.websub",
}
# Libraries that talk to the network, a database or the process's metrics endpoint.
IO_LIBRARIES = {
    "sqlalchemy",
    "alembic",
    "psycopg",
    "httpx",
    "httpcore",
    "aiosmtplib",
    "apprise",
    "prometheus_client",
    "click",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(source: str) -> set[str]:
    """Every module an import statement names, `from monitor import x` as monitor.x."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module)
            if node.module == "monitor":
                out.update(f"monitor.{a.name}" for a in node.names)
    return out


def violations(sources: dict[str, str]) -> list[str]:
    found = []
    for name, source in sorted(sources.items()):
        for dep in sorted(imports(source)):
            root = dep.split(".")[0]
            if (
                name in PURE
                and root == "monitor"
                and dep not in PURE
                and dep not in {"monitor", "monitor.__version__"}
            ):
                found.append(f"{name} (pure) imports {dep}")
            if name in PURE and root in IO_LIBRARIES:
                found.append(f"{name} (pure) imports {dep}")
            if (
                (dep == "monitor.cli" or dep.startswith("monitor.cli."))
                and not name.startswith("monitor.cli")
                and name != "monitor.__main__"
            ):
                found.append(f"{name} imports the CLI ({dep})")
    return found


def sources() -> dict[str, str]:
    return {module_name(p): p.read_text(encoding="utf-8") for p in PACKAGE.rglob("*.py")}


def test_every_pure_module_is_listed_and_exists() -> None:
    assert set(sources()) >= PURE


def test_pure_modules_import_no_io_and_nothing_imports_the_cli() -> None:
    assert violations(sources()) == []


def test_the_check_sees_a_violation() -> None:
    bad = {
        "monitor.decide": "def f():\n    from monitor import store\n",
        "monitor.text": "from sqlalchemy import select\n",
        "monitor.outbox": "import monitor.cli.app\n",
    }
    assert violations(bad) == [
        "monitor.decide (pure) imports monitor.store",
        "monitor.outbox imports the CLI (monitor.cli.app)",
        "monitor.text (pure) imports sqlalchemy",
    ]


def test_every_package_is_in_the_distribution() -> None:
    """A subpackage missing from pyproject's explicit list works from a checkout (editable
    install) and is absent from a wheel or the Docker image."""
    import tomllib

    pyproject = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(pyproject["tool"]["setuptools"]["packages"])
    found = {module_name(p.parent / "__init__.py") for p in PACKAGE.rglob("__init__.py")}
    assert found - listed == set()
