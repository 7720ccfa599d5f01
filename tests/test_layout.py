"""The layout: every module in the package of its part, imports pointing one way, no cycles.

Read from the source with `ast` (nothing is imported), so a cycle or an arrow the wrong way fails
here before it fails in production. The parts, lowest first, and what each may import are the
README's Layout section.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Lowest first: a part may import the parts of lower layers, never of its own layer or above.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("database",),
    ("settings",),
    ("observability",),
    ("models",),
    ("db", "schemas"),
    ("web",),
    ("auth",),
    ("tasks",),
    ("live",),
    ("mcp_server",),
    ("chat",),
    ("routes",),
    ("main", "deploy"),
)
ROOT_MODULES = frozenset({"main", "db", "models", "schemas", "settings"})
# Third-party packages a part must not use: task rules and database plumbing know nothing of HTTP.
FORBIDDEN_LIBRARIES = {
    "tasks": ("fastapi", "starlette", "mcp"),
    "live": ("fastapi", "starlette", "mcp"),
    "database": ("fastapi", "starlette", "mcp"),
    # The container's start runs before the app exists and only execs the server.
    "deploy": ("fastapi", "starlette", "mcp"),
    # The MCP endpoint is not a FastAPI router: it reaches the task rules through the SDK only.
    "mcp_server": ("fastapi",),
    # The chat turn knows nothing of HTTP: routes/chat.py and routes/chatkit.py speak it.
    "chat": ("fastapi", "starlette"),
}
NOT_APPLICATION_CODE = frozenset({"tests", "alembic", "benchmarks", "fuzz", "clients", ".venv"})


def part_of(module: str) -> str:
    return module.split(".", 1)[0]


def layer_of() -> dict[str, int]:
    return {part: rank for rank, parts in enumerate(LAYERS) for part in parts}


def application_modules(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the application, by dotted name (packages by their `__init__`)."""
    modules: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if relative.parts[0] in NOT_APPLICATION_CODE or relative.parts[0].startswith("."):
            continue
        if "node_modules" in relative.parts:  # an npm package may ship Python files
            continue
        names = list(relative.with_suffix("").parts)
        if names[-1] == "__init__":
            names.pop()
        modules[".".join(names)] = path
    return modules


def imported_names(source: str, module: str, is_package: bool) -> set[str]:
    """The dotted names `source` imports, wherever the import statement stands."""
    names: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph(modules: Mapping[str, Path]) -> dict[str, set[str]]:
    """Module -> the application modules it imports."""
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        targets = imported_names(path.read_text(encoding="utf-8"), module, is_package)
        graph[module] = {name for name in targets if name in modules and name != module}
    return graph


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A cycle of the graph as a path that returns to its start, or None."""
    visiting: list[str] = []
    state: dict[str, str] = {}

    def visit(node: str) -> list[str] | None:
        state[node] = "active"
        visiting.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "active":
                return [*visiting[visiting.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        visiting.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def wrong_arrows(graph: Mapping[str, Iterable[str]], layers: Mapping[str, int]) -> list[str]:
    """Imports from a part to a part that is not in a lower layer (or to an unknown part)."""
    problems = []
    for module, targets in sorted(graph.items()):
        source = part_of(module)
        for target in sorted(targets):
            destination = part_of(target)
            if destination == source:
                continue
            if source not in layers or destination not in layers:
                problems.append(f"{module} -> {target}: a part missing from LAYERS")
            elif layers[destination] >= layers[source]:
                problems.append(f"{module} -> {target}: {source} may not import {destination}")
    return problems


class TestTheApplication:
    def test_no_import_cycles(self) -> None:
        cycle = find_cycle(import_graph(application_modules()))
        assert cycle is None, " -> ".join(cycle or [])

    def test_imports_point_down_the_layers(self) -> None:
        assert wrong_arrows(import_graph(application_modules()), layer_of()) == []

    def test_the_root_holds_only_the_cards_modules(self) -> None:
        at_root = {module for module in application_modules() if "." not in module}
        packages = {module for module in at_root if (ROOT / module).is_dir()}
        assert at_root - packages == ROOT_MODULES

    def test_every_part_has_a_layer(self) -> None:
        parts = {part_of(module) for module in application_modules()}
        assert parts == set(layer_of())

    @pytest.mark.parametrize("part", sorted(FORBIDDEN_LIBRARIES))
    def test_parts_free_of_http(self, part: str) -> None:
        modules = {
            name: path for name, path in application_modules().items() if part_of(name) == part
        }
        offending = {
            module
            for module, path in modules.items()
            for name in imported_names(path.read_text(encoding="utf-8"), module, False)
            if part_of(name) in FORBIDDEN_LIBRARIES[part]
        }
        assert offending == set()


class TestTheChecks:
    """The checks above can fail: each finds what it is for in a small made-up graph."""

    def test_a_cycle_is_found(self) -> None:
        graph = {"db": {"models"}, "models": {"database.types", "db"}, "database.types": set()}
        assert find_cycle(graph) == ["db", "models", "db"]

    def test_an_acyclic_graph_has_none(self) -> None:
        assert find_cycle({"routes.tasks": {"tasks.listing"}, "tasks.listing": {"models"}}) is None

    def test_an_upward_arrow_is_reported(self) -> None:
        graph = {"tasks.listing": {"routes.paging"}, "routes.paging": {"tasks.listing"}}
        assert wrong_arrows(graph, layer_of()) == [
            "tasks.listing -> routes.paging: tasks may not import routes"
        ]

    def test_an_arrow_within_a_layer_is_reported(self) -> None:
        assert wrong_arrows({"db": {"schemas"}}, layer_of()) == [
            "db -> schemas: db may not import schemas"
        ]

    def test_only_application_code_is_read(self, tmp_path: Path) -> None:
        for name in ("main.py", "web/docs.py", "web/node_modules/x/setup.py", "clients/a.py"):
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_text("")
        (tmp_path / "tests").mkdir()
        (tmp_path / "tests/test_x.py").write_text("")
        assert set(application_modules(tmp_path)) == {"main", "web.docs"}

    def test_relative_imports_are_resolved(self) -> None:
        source = "from . import listing\nfrom ..models import Task\n"
        assert imported_names(source, "tasks.completion", False) >= {"tasks.listing", "models.Task"}
