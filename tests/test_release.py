"""The release artefact as an operator gets it: the wheel, installed outside the repository with the
locked dependencies, serving the demo shop, the customer SDK and the agent console."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import tandem
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
BUNDLES = [
    "tandem/server/static/sdk/tandem.js",
    "tandem/server/static/console/console.js",
    "tandem/server/static/console/rrweb.css",
    "tandem/server/static/console/index.html",
    "tandem/server/static/demo/index.html",
    "tandem/server/static/sbom/sbom.cdx.json",
]

pytestmark = pytest.mark.dist


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built as `make dist` builds it: the sdist first, then the wheel from the unpacked sdist."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (built,) = out.glob("tandem-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv outside the repository with requirements/runtime.txt and the wheel.

    uv rather than pip, for time (uv's cache makes it a second); the hashes are checked the same.
    """
    venv = tmp_path_factory.mktemp("venv") / "tandem"
    uv = [str(BIN / "uv"), "--quiet"]
    subprocess.run([*uv, "venv", "--python", sys.executable, str(venv)], check=True, timeout=60)
    python = ["--python", str(venv / "bin" / "python")]
    runtime = ROOT / "requirements" / "runtime.txt"
    lock = ["--require-hashes", "--only-binary", ":all:", "-r", str(runtime)]
    subprocess.run(
        [*uv, "pip", "install", *python, *lock],
        check=True,
        timeout=180,
    )
    subprocess.run(
        [*uv, "pip", "install", *python, "--no-deps", str(wheel)], check=True, timeout=60
    )
    return venv


FIRST_RUN_SECONDS = 180
"""How long a command of the installed wheel may take: the first ones in the fresh virtualenv
compile every module they import (a few seconds of CPU, over a minute on a 2-core machine
loaded by the other tests; 60 s timed out there)."""


def outside_env() -> dict[str, str]:
    """The environment without anything that could make the installed venv import src/."""
    return {
        key: value
        for key, value in os.environ.items()
        if key not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"} and not key.startswith("TANDEM_")
    }


def test_wheel_carries_the_built_sdk_and_console(wheel: Path) -> None:
    assert wheel.name == f"tandem-{tandem.__version__}-py3-none-any.whl"
    names = set(zipfile.ZipFile(wheel).namelist())
    assert set(BUNDLES) <= names


def test_installed_wheel_imports_from_its_venv_not_the_source_tree(
    installed: Path, tmp_path: Path
) -> None:
    result = subprocess.run(
        [str(installed / "bin" / "python"), "-c", "import tandem; print(tandem.__file__)"],
        cwd=tmp_path,
        env=outside_env(),
        capture_output=True,
        text=True,
        check=True,
        timeout=FIRST_RUN_SECONDS,
    )
    assert Path(result.stdout.strip()).is_relative_to(installed)


def test_installed_wheel_checks_its_own_sbom_against_advisories(
    installed: Path, tmp_path: Path
) -> None:
    fixture = ROOT / "tests" / "fixtures" / "osv-advisories.json"
    result = subprocess.run(
        [str(installed / "bin" / "tandem"), "security", "status", "--advisory-file", str(fixture)],
        cwd=tmp_path,
        env=outside_env(),
        capture_output=True,
        text=True,
        timeout=FIRST_RUN_SECONDS,
    )
    assert result.returncode == 1, result.stderr
    assert "AFFECTED PyPI starlette 1.10.0" in result.stdout
    assert "AFFECTED npm rrweb 2.2.2" in result.stdout


def answers(url: str, process: subprocess.Popen[str], timeout: float = FIRST_RUN_SECONDS) -> bool:
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        try:
            if httpx.get(url).status_code == 200:
                return True
        except httpx.TransportError:
            time.sleep(0.1)
    return False


@pytest.fixture
def served(installed: Path, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    where = ["--host", "127.0.0.1", "--port", str(port), "--data-dir", str(tmp_path / "data")]
    process = subprocess.Popen(
        [str(installed / "bin" / "tandem"), "serve", *where],
        cwd=tmp_path,
        env=outside_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    if not answers(f"{base}/healthz", process):
        process.kill()
        output, _ = process.communicate(timeout=20)
        pytest.fail(f"the installed server did not answer:\n{output}")
    try:
        yield base
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=20)
    assert f"Tandem {tandem.__version__} on {base}" in output


def test_installed_wheel_serves_the_demo_sdk_and_console(served: str) -> None:
    demo = httpx.get(f"{served}/demo/")
    assert demo.status_code == 200 and "/sdk/tandem.js" in demo.text
    sdk = httpx.get(f"{served}/sdk/tandem.js")
    assert sdk.status_code == 200 and f'"{tandem.__version__}"' in sdk.text
    console = httpx.get(f"{served}/console/")
    assert console.status_code == 200
    for script in ("console.js", "rrweb.css"):
        assert httpx.get(f"{served}/console/{script}").status_code == 200
