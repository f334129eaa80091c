"""No route module imports another (issue 12): each imports only the shared pieces of
``tandem.server`` (http.py, operations.py, and the like); app.py alone knows every route module and
joins their routes. Checked on the source, every import counted (type-only and inside functions
too), so a cycle cannot come back through a side door."""

from __future__ import annotations

import ast
from pathlib import Path

import tandem.server

SERVER = Path(tandem.server.__file__).parent
SHARED = {
    "http",
    "operations",
    "services",
    "middleware",
    "unavailable",
    "websocket_protocol",
    "http_protocol",
}
"""What any module of the package may import: no routes of its own."""
ASSEMBLY = {"app", "services", "__init__"}
"""app.py joins the route modules; services.py builds what they use (and imports none)."""


def server_imports(path: Path) -> set[str]:
    """The ``tandem.server`` modules ``path`` imports, by short name."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            if node.module == "tandem.server":
                found.update(alias.name for alias in node.names)
            elif node.module.startswith("tandem.server."):
                found.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("tandem.server."):
                    found.add(alias.name.split(".")[2])
    return found


def modules() -> dict[str, Path]:
    return {path.stem: path for path in sorted(SERVER.glob("*.py"))}


def test_route_modules_import_only_shared_pieces() -> None:
    route_modules = set(modules()) - SHARED - ASSEMBLY
    assert {"admin", "api", "compliance_api", "sso", "ws"} <= route_modules  # not vacuous
    for name, path in modules().items():
        if name == "app":
            continue
        wrong = server_imports(path) & route_modules
        assert not wrong, f"server/{name}.py imports route module(s) {sorted(wrong)}"


def test_app_joins_every_route_module() -> None:
    route_modules = set(modules()) - SHARED - ASSEMBLY
    assert route_modules <= server_imports(modules()["app"])


def test_the_check_sees_a_planted_import(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from tandem.server.admin import X\n"
        "def f():\n    from tandem.server import sso\n    import tandem.server.api\n"
    )
    assert server_imports(planted) == {"admin", "sso", "api"}
