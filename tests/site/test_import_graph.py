"""The house's layout holds: no import cycle among the project's modules, and the apps depend one way.

The graph is read from the source with `ast`, every import statement included, those inside
functions too (a lazy import hides a cycle, it does not remove it). `accounts` <- `certificates`
<- `notices`: an app never imports a higher one, and no app imports `certportal`, the wiring.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("certportal", "accounts", "certificates", "notices", "bench")
APPS = ("accounts", "certificates", "notices")  # lowest first


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def _imported_names(module: str, path: Path) -> set[str]:
    """Every module name this file imports, wherever the statement stands."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module
            names.add(origin)
            # `from package import module` imports that module.
            names.update(f"{origin}.{alias.name}" for alias in node.names)
    return names


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {module: _imported_names(module, path) & modules.keys() for module, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module, or a module importing itself (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_relative_package_and_lazy_imports():
    graph = import_graph()
    assert "notices.reminders" in graph["notices.tasks"]  # from . import reminders
    assert "certificates.client_cert" in graph["certificates.contract_admin"]  # from .client_cert import ...
    assert "notices.dashboard" in graph["notices.operator_admin"]  # inside a method
    assert "notices.metrics" in graph["certportal.urls"]  # from notices import metrics


def test_the_cycle_finder_finds_a_lazy_cycle():
    graph = import_graph()
    graph["notices.reminders"] = graph["notices.reminders"] | {"notices.tasks"}  # what reminders.enqueue once did
    assert ["notices.reminders", "notices.tasks"] in cycles(graph)


def test_there_is_no_import_cycle_among_the_projects_modules():
    assert cycles(import_graph()) == []


def test_no_app_imports_the_project_package():
    offending = sorted(
        (module, target)
        for module, targets in import_graph().items()
        if module.split(".")[0] in APPS
        for target in targets
        if target.split(".")[0] == "certportal"
    )
    assert offending == []


def test_the_apps_depend_one_way_accounts_certificates_notices():
    offending = sorted(
        (module, target)
        for module, targets in import_graph().items()
        if module.split(".")[0] in APPS
        for target in targets
        if target.split(".")[0] in APPS
        and APPS.index(target.split(".")[0]) > APPS.index(module.split(".")[0])
    )
    assert offending == []


def test_the_project_package_holds_only_wiring():
    wiring = {"__init__", "apps", "celery", "run", "settings", "urls", "wsgi", "gunicorn_tls", "formats",
              "postgresql",  # the database engine settings.py names (a cheaper health check)
              "jinja2"}  # the customers' pages' template environment, which settings.py names
    present = {path.stem if path.is_file() else path.name for path in (ROOT / "certportal").iterdir()
               if path.suffix == ".py" or (path.is_dir() and path.name != "__pycache__")}
    assert present <= wiring, present - wiring
