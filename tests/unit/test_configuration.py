"""Configuration is built once at an edge and passed down; nothing passes it through the
process environment.

Read from the source: which modules build settings from the environment, and whether
anything (package, jobs, tests) writes to ``os.environ`` to hand configuration on."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "platform" / "sluice"

EDGES = (
    "cli/",  # commands
    "bench/",  # benchmarks (each a command)
    "demo/",  # the demo (a command)
    "serve/app.py",  # the decision app's builder
    "generation/llm_app.py",  # the LLM app's builder
    "settings.py",  # where get_settings lives
)
ENV_WRITES = {"setdefault", "update", "pop", "popitem", "clear", "__setitem__", "__delitem__"}


def _sources(*roots: Path) -> list[Path]:
    return sorted(p for root in roots for p in root.rglob("*.py"))


def _calls_get_settings(tree: ast.AST) -> bool:
    return any(
        isinstance(n, ast.Call)
        and (
            (isinstance(n.func, ast.Name) and n.func.id == "get_settings")
            or (isinstance(n.func, ast.Attribute) and n.func.attr == "get_settings")
        )
        for n in ast.walk(tree)
    )


def _is_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ"


def _env_writes(tree: ast.AST) -> list[int]:
    lines = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Assign | ast.AugAssign | ast.Delete):
            targets = n.targets if isinstance(n, ast.Assign | ast.Delete) else [n.target]
            if any(isinstance(t, ast.Subscript) and _is_environ(t.value) for t in targets):
                lines.append(n.lineno)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute):
            f = n.func
            if _is_environ(f.value) and f.attr in ENV_WRITES:
                lines.append(n.lineno)
            if f.attr in ("putenv", "unsetenv") or f.attr in ("setenv", "delenv"):
                lines.append(n.lineno)
    return lines


def test_only_edges_read_settings_from_the_environment() -> None:
    offenders = [
        str(p.relative_to(PACKAGE))
        for p in _sources(PACKAGE)
        if _calls_get_settings(ast.parse(p.read_text()))
        and not str(p.relative_to(PACKAGE)).startswith(EDGES)
    ]
    assert not offenders, f"get_settings() below an edge: {offenders}"


def test_nothing_writes_the_environment_to_pass_configuration() -> None:
    found = {
        str(p.relative_to(REPO)): lines
        for p in _sources(PACKAGE, REPO / "jobs", REPO / "tests")
        if (lines := _env_writes(ast.parse(p.read_text())))
    }
    assert not found, found


def test_the_checks_catch_what_they_look_for() -> None:
    """The scanners above see the forms they forbid (so a pass means something)."""
    bad = ast.parse(
        "import os\n"
        "os.environ['A'] = '1'\n"
        "os.environ.setdefault('B', '2')\n"
        "monkeypatch.setenv('C', '3')\n"
        "del os.environ['A']\n"
    )
    assert sorted(_env_writes(bad)) == [2, 3, 4, 5]
    assert _calls_get_settings(
        ast.parse("from sluice.settings import get_settings\nget_settings()")
    )
    assert not _env_writes(ast.parse("import os\nx = os.environ.get('A')\ny = {**os.environ}"))
