"""One version number: src/tandem/__init__.py, and everything else reads it from there."""

from __future__ import annotations

import importlib.metadata
import json
import re
import tomllib
from pathlib import Path

import tandem

ROOT = Path(__file__).resolve().parent.parent


def test_pyproject_reads_the_version_from_the_package() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"]
    assert "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["hatch"]["version"]["path"] == "src/tandem/__init__.py"


def test_installed_metadata_has_the_package_version() -> None:
    assert importlib.metadata.version("tandem") == tandem.__version__


def test_sdk_has_no_version_of_its_own() -> None:
    assert "version" not in json.loads((ROOT / "sdk" / "package.json").read_text())
    sources = "".join(path.read_text() for path in (ROOT / "sdk" / "src").rglob("*.ts"))
    assert re.search(r"VERSION\s*=\s*__TANDEM_VERSION__", sources)
    assert not re.search(r"""VERSION\s*=\s*["'`]\d""", sources)


def test_built_sdk_reports_the_package_version() -> None:
    bundle = ROOT / "src" / "tandem" / "server" / "static" / "sdk" / "tandem.js"
    assert f'"{tandem.__version__}"' in bundle.read_text()


def test_built_console_reports_the_package_version() -> None:
    bundle = ROOT / "src" / "tandem" / "server" / "static" / "console" / "console.js"
    assert f'"{tandem.__version__}"' in bundle.read_text()
