"""The console's layout: every module imports, no webui module imports its importer, every setting is documented."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import webui

PACKAGE = Path(webui.__file__).resolve().parent


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The webui modules *name* imports anywhere in its body (function-level imports count too)."""
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_pkg else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for a in node.names:
                sub = f"{base}.{a.name}"
                found.add(sub if sub in known else base)
    return {m for m in found if m in known and m != name}


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imports(name, path, set(mods)) for name, path in mods.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path (first node repeated at the end), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                return [*stack[stack.index(m):], m]
            if m not in state and (cyc := visit(m)) is not None:
                return cyc
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (cyc := visit(n)) is not None:
            return cyc
    return None


def test_every_webui_module_imports() -> None:
    for name in _modules():
        importlib.import_module(name)


def test_the_import_graph_has_no_cycle() -> None:
    graph = import_graph()
    assert {"webui.app", "webui.deps", "webui.routes.hits", "webui.services.hits"} <= set(graph)
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_cycle_finder_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_routes_and_services_stay_in_their_lane() -> None:
    """Routes never import each other or the app; services never import routes, deps or rendering."""
    graph = import_graph()
    for name, deps in graph.items():
        if name.startswith("webui.routes."):
            assert not {d for d in deps if d.startswith("webui.routes.") or d == "webui.app"}, name
        if name.startswith("webui.services"):
            assert not {d for d in deps if d.startswith("webui.routes") or d in (
                "webui.app", "webui.deps", "webui.rendering", "webui.handlers")}, name
    assert not [n for n, deps in graph.items() if "webui.app" in deps and n != "webui"]


def test_every_console_setting_is_documented() -> None:
    from webui.settings import ConsoleSettings

    doc = (PACKAGE.parent / "docs" / "console.md").read_text(encoding="utf-8")
    missing = [k for k in ConsoleSettings.model_fields if f"`{k}`" not in doc]
    assert not missing, f"document these settings in docs/console.md: {missing}"
