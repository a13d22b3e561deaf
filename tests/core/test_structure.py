"""How the code is laid out, checked without a database: layering, access control, the app factory.

- No two packages of ``backend_app`` import each other (``auth`` uses ``users``, never the reverse).
- Only repositories import ``core.keyset`` (the MongoDB filters of a page).
- ``products.service`` bumps the catalog version without importing Starlette or Redis.
- Every order route naming a ``{user_id}`` declares the ``OwnedUserId`` dependency, and no
  route calls ``ensure_self_or_admin`` by hand.
- Importing ``backend_app.main`` builds no app; the factory does.
- No module of a domain package (or ``config``) passes about 400 lines.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from fastapi.routing import APIRoute

PACKAGE = Path(__file__).resolve().parents[2] / "backend_app"


def _imports(path: Path) -> set[str]:
    """Every ``backend_app...`` module ``path`` imports (``from x import y`` gives ``x`` and ``x.y``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("backend_app"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("backend_app"))
    return found


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package_graph() -> dict[str, set[str]]:
    """``{package: packages it imports}`` over the sub-packages of ``backend_app``."""
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    graph: dict[str, set[str]] = {name: set() for name in packages}
    for path in PACKAGE.rglob("*.py"):
        parts = _module(path).split(".")
        if len(parts) < 2 or parts[1] not in packages:
            continue
        for target in _imports(path):
            other = target.split(".")[1] if target.count(".") else None
            if other in packages and other != parts[1]:
                graph[parts[1]].add(other)
    return graph


def test_no_two_packages_import_each_other():
    graph = _package_graph()
    assert "users" in graph["auth"]  # auth reads users (sanity: the graph sees real imports)
    cycles = sorted({tuple(sorted((a, b))) for a, targets in graph.items() for b in targets if a in graph.get(b, ())})
    assert cycles == []


def test_core_imports_no_domain_package():
    graph = _package_graph()
    assert graph["core"] == set()


def test_only_repositories_build_keyset_filters():
    users = sorted(
        _module(path)
        for path in PACKAGE.rglob("*.py")
        if any(name.startswith("backend_app.core.keyset") for name in _imports(path))
    )
    assert users, "core.keyset is used"
    # core.key_windows cuts keyset stages into windows for the repositories: repository-side too
    assert all(name.endswith("repository") or name == "backend_app.core.key_windows" for name in users), users
    window_users = sorted(
        _module(path)
        for path in PACKAGE.rglob("*.py")
        if any(name.startswith("backend_app.core.key_windows") for name in _imports(path))
    )
    assert window_users and all(name.endswith("repository") for name in window_users), window_users


def test_bumping_the_catalog_version_needs_no_http_or_cache_client():
    script = (
        "import sys, backend_app.products.catalog_version, backend_app.products.service;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'redis', 'cachetools'}))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=PACKAGE.parent)
    assert out.stdout.strip() == "[]"
    own = _imports(PACKAGE / "products" / "service.py")
    assert not any(
        name.startswith(("backend_app.products.responses", "backend_app.products.page_store")) for name in own
    )


def test_every_order_route_with_a_user_id_declares_the_ownership_dependency():
    from backend_app.auth.dependencies import get_owned_user_id
    from backend_app.orders.dependencies import get_order_placement, get_orders_owner_filter
    from backend_app.orders.router import router

    def calls(dependant) -> set:
        found = {dependant.call}
        for sub in dependant.dependencies:
            found |= calls(sub)
        return found

    routes = [r for r in router.routes if isinstance(r, APIRoute)]
    assert len(routes) == 5
    for route in routes:
        declared = calls(route.dependant)
        if "{user_id}" in route.path:
            assert get_owned_user_id in declared, route.path
        elif "POST" in route.methods:
            assert get_order_placement in declared
        else:
            assert get_orders_owner_filter in declared
    for path in PACKAGE.rglob("*router*.py"):
        assert "ensure_self_or_admin" not in path.read_text(encoding="utf-8"), path


def test_importing_main_builds_no_app_and_the_factory_does():
    script = (
        "import backend_app.main as m; assert 'app' not in vars(m), 'built at import';"
        "from fastapi import FastAPI; assert isinstance(m.create_app(), FastAPI);"
        "assert isinstance(m.app, FastAPI) and m.app is m.app; print('ok')"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, cwd=PACKAGE.parent
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


#: Most lines a module of a domain package may have: past about this many, a module usually holds two
#: concerns (a little slack, so a docstring's growth does not force a split on its own).
MAX_MODULE_LINES = 420


def test_no_module_of_a_domain_package_holds_more_than_one_module_s_worth():
    """Every module of ``backend_app``'s packages (and ``config``) stays under :data:`MAX_MODULE_LINES`."""
    modules = [*PACKAGE.rglob("*.py"), *(PACKAGE.parent / "config").glob("*.py")]
    assert len(modules) > 100  # the walk sees the package
    too_long = {
        path.relative_to(PACKAGE.parent).as_posix(): count
        for path in modules
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert too_long == {}
