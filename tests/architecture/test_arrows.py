"""The rooms stay rooms (DESIGN.md, docs/ARCHITECTURE.md): arrows checked by walking every import.

Function-level imports count as much as module-level ones: a cycle hidden in a function is still a
cycle. Each rule below is a test of its own, so a violation names the rule it breaks.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PKG = SRC / "konsent"

# flows sub-packages, bottom to top; a module may import flows modules of its own layer or below
FLOWS_LAYERS: list[set[str]] = [
    {"context", "audit", "contacts", "contact_data", "texts", "webhooks", "idempotency"},
    {"organisation"},
    {"consent"},
    {"privacy"},
    {"outbound"},
    {"inbox"},
    {"inbound"},
    {"dashboard", "contact_views", "message_desk", "widget", "demo", "contact_directory", "operations"},
]
WEB_MAY_IMPORT = ("konsent.web", "konsent.flows", "konsent.app", "konsent.domain", "konsent.i18n",
                  "konsent.settings", "konsent.logs")  # fmt: skip
WEB_MUST_NOT_IMPORT_LIBS = ("sqlalchemy", "psycopg", "aiohttp")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PKG.rglob("*.py") if "migrations" not in p.parts}


def imports_of(name: str, path: Path) -> Iterator[str]:
    """Every module `name` imports anywhere in its body (absolute names; relative ones resolved)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            yield mod
            yield from (f"{mod}.{a.name}" for a in node.names)  # `from pkg import module`


def konsent_graph() -> dict[str, set[str]]:
    mods = modules()

    def owner(dotted: str) -> str | None:
        while dotted:
            if dotted in mods:
                return dotted
            dotted = dotted.rpartition(".")[0]
        return None

    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        targets = {owner(i) for i in imports_of(name, path) if i.startswith("konsent")}
        graph[name] = {t for t in targets if t and t != name and not name.startswith(t + ".")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_among_konsent_modules_function_level_imports_included() -> None:
    assert cycles(konsent_graph()) == []


def test_domain_imports_only_the_standard_library_and_itself() -> None:
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    bad = [
        f"{name} imports {imp}"
        for name, path in modules().items()
        if name.startswith("konsent.domain")
        for imp in imports_of(name, path)
        if imp.split(".")[0] not in stdlib and not imp.startswith("konsent.domain")
    ]
    assert bad == []


def test_web_imports_only_flows_app_and_domain_types_never_store_channels_or_sql() -> None:
    bad = []
    for name, path in modules().items():
        if not name.startswith("konsent.web"):
            continue
        for imp in imports_of(name, path):
            if imp in ("konsent", "konsent.__version__"):
                continue
            if imp.startswith("konsent") and not imp.startswith(WEB_MAY_IMPORT):
                bad.append(f"{name} imports {imp}")
            if imp.split(".")[0] in WEB_MUST_NOT_IMPORT_LIBS:
                bad.append(f"{name} imports {imp}")
    assert bad == []


def _flows_layer(name: str) -> int | None:
    parts = name.split(".")
    if len(parts) < 3 or parts[1] != "flows":
        return None
    for i, layer in enumerate(FLOWS_LAYERS):
        if parts[2] in layer:
            return i
    raise AssertionError(f"{name}: a flows module outside every layer; add it to FLOWS_LAYERS")


def test_flows_sub_packages_import_only_their_own_layer_or_below() -> None:
    graph = konsent_graph()
    bad = []
    for name, targets in graph.items():
        mine = _flows_layer(name)
        if mine is None:
            continue
        for t in targets:
            theirs = _flows_layer(t)
            if theirs is not None and theirs > mine:
                bad.append(f"{name} (layer {mine}) imports {t} (layer {theirs})")
    assert bad == []


@pytest.mark.parametrize("room", ["domain", "store", "channels", "flows", "delivery", "crypto"])
def test_inner_rooms_never_import_web_cli_or_the_composition_root(room: str) -> None:
    bad = [
        f"{name} imports {t}"
        for name, targets in konsent_graph().items()
        if name.startswith(f"konsent.{room}")
        for t in targets
        if t.startswith(("konsent.web", "konsent.cli", "konsent.app"))
    ]
    assert bad == []


def test_store_never_imports_flows_its_writers_get_the_rules_from_domain() -> None:
    """store/ is below flows/: the raw SQL writers (status_pg, status_sqlite) call domain rules."""
    bad = [
        f"{name} imports {t}"
        for name, targets in konsent_graph().items()
        if name.startswith("konsent.store")
        for t in targets
        if t.startswith("konsent.flows")
    ]
    assert bad == []


def test_the_arrow_check_sees_a_cycle_hidden_in_a_function() -> None:
    """The checker itself: a function-level import that closes a loop is reported."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
