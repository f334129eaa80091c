"""The runtime the relay needs (issue 17): uvloop and httptools are required and really used, and
an open-file limit that caps sessions below `max_sessions` is raised where it can be and warned
about where it cannot. Real `tandem serve` subprocesses, as an operator runs them, on copies of the
template data directory (already migrated: what is tested here is the runtime, not the first
start); the two tests that only look at a running server share one."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import DataTemplates, free_port
from tests.forkserver import ForkedProcess, tandem_process
from tests.test_serve_failures import assert_one_line_failure

TANDEM = [sys.executable, "-m", "tandem"]


@contextmanager
def serving(
    data_dir: Path,
    file_limit: int | None = None,
    env: dict[str, str] | None = None,
    *,
    forked: bool = False,
) -> Iterator[tuple[subprocess.Popen[str] | ForkedProcess, str]]:
    """A `tandem serve` that has printed its banner (it serves); yields it and its stderr so far.
    A real interpreter here (the runtime is this module's subject), or ``forked`` from the fork
    server (tests/forkserver.py) for tests of something else."""
    args = [*TANDEM, "serve", "--data-dir", str(data_dir), "--port", str(free_port())]
    if forked:
        assert file_limit is None
        with tandem_process(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        ) as forked_process:
            yield from _until_served(forked_process)
        return

    def limit_files() -> None:
        if file_limit is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (file_limit, file_limit))

    with subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=limit_files,
        env={**os.environ, **(env or {})},
    ) as process:
        yield from _until_served(process)


def _until_served(
    process: subprocess.Popen[str] | ForkedProcess,
) -> Iterator[tuple[subprocess.Popen[str] | ForkedProcess, str]]:
    try:
        assert process.stdout is not None and process.stderr is not None
        os.set_blocking(process.stderr.fileno(), False)
        deadline = time.monotonic() + 60
        banner = ""
        while not banner.startswith("Tandem "):
            assert time.monotonic() < deadline, "the server did not start"
            assert process.poll() is None, process.stderr.read()
            banner = process.stdout.readline()
        yield process, process.stderr.read() or ""
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


@pytest.fixture
def data_dir(tmp_path: Path, data_templates: DataTemplates) -> Path:
    data_templates.copy_to(tmp_path / "data")
    return tmp_path / "data"


@pytest.fixture(scope="module")
def enough_files(
    tmp_path_factory: pytest.TempPathFactory, data_templates: DataTemplates
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A running `tandem serve` whose open-file limit suffices for its `max_sessions`."""
    data_dir = tmp_path_factory.mktemp("enough-files") / "data"
    data_templates.copy_to(data_dir)
    with serving(data_dir, file_limit=4096, env={"TANDEM_MAX_SESSIONS": "1000"}) as served:
        yield served


def mapped_libraries(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def test_the_server_runs_on_uvloop_and_httptools(
    enough_files: tuple[subprocess.Popen[str], str],
) -> None:
    process, _ = enough_files
    assert process.poll() is None  # serving
    maps = mapped_libraries(process.pid)
    assert "uvloop" in maps and "httptools" in maps


def test_a_missing_uvloop_stops_the_start_in_one_line(data_dir: Path) -> None:
    hide = "import sys; sys.modules['uvloop'] = None; from tandem.cli import main; main()"
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            hide,
            "serve",
            "--data-dir",
            str(data_dir),
            "--port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert_one_line_failure(result, "uvloop is missing", "uvicorn[standard]")


def test_a_file_limit_below_max_sessions_is_warned_about_and_the_server_still_serves(
    data_dir: Path,
) -> None:
    with serving(data_dir, file_limit=256, env={"TANDEM_MAX_SESSIONS": "1000"}) as (_, err):
        pass
    assert "open-file limit (256) caps this process near 96 live sessions" in err, err
    assert "warning" in err.lower()
    assert "LimitNOFILE=2064" in err and "ulimit -n 2064" in err


def test_no_warning_when_the_limit_suffices(
    enough_files: tuple[subprocess.Popen[str], str],
) -> None:
    _, err = enough_files
    assert "open-file limit" not in err, err


def test_the_soft_limit_is_raised_up_to_the_hard_limit() -> None:
    script = textwrap.dedent(
        """
        import resource
        from tandem.config import Settings
        from tandem.startup import raise_file_limit
        resource.setrlimit(resource.RLIMIT_NOFILE, (100, 3000))
        print(raise_file_limit(Settings(max_sessions=1000)))
        print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        print(raise_file_limit(Settings(max_sessions=5000)))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    ).stdout.splitlines()
    assert out[0] == "None" and out[1] == "2064"
    assert out[2].startswith("the open-file limit (3000) caps this process near 1468 live")
