"""The tests' fork server of `python -m tandem` processes (tests/forkserver.py): a child is a
process of its own with the caller's streams, environment and working directory, and exits
with its own status; what it could not honour is refused loudly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests import forkserver
from tests.conftest import DataTemplates
from tests.forkserver import (
    VARYING,
    ForkServerError,
    _environment_unread,
    fork_server,
    tandem_process,
    tandem_run,
)

TANDEM = [sys.executable, "-m", "tandem"]


def test_a_forked_tandem_has_its_own_pid_streams_and_exit_status() -> None:
    version = tandem_run([*TANDEM, "--version"], timeout=60, text=True)
    assert version.returncode == 0 and version.stdout.startswith("tandem "), version
    wrong = tandem_run([*TANDEM, "no-such-command"], timeout=60, text=True)
    assert wrong.returncode == 2 and "No such command" in wrong.stderr, wrong
    assert wrong.stdout == ""
    with tandem_process([*TANDEM, "--version"], stdout=subprocess.DEVNULL) as process:
        assert process.pid not in (os.getpid(), fork_server().process.pid)
    assert process.returncode == 0


def test_a_forked_tandem_runs_in_the_callers_directory_with_its_environment(
    tmp_path: Path, data_templates: DataTemplates
) -> None:
    data_templates.copy_to(tmp_path / "data")
    found = tandem_run(
        [*TANDEM, "audit", "verify", "--data-dir", "data"], timeout=60, text=True, cwd=tmp_path
    )
    # ./data is the caller's tmp_path/data: its database found (a template has no audit key)
    assert found.stderr == "tandem: no audit key at data/audit.key\n", found
    refused = tandem_run(
        [*TANDEM, "serve", "--data-dir", "data", "--port", "1"],
        timeout=60,
        text=True,
        env={**os.environ, "TANDEM_LOG_FORMAT": "yaml"},
        cwd=tmp_path,
    )
    assert refused.returncode == 2, refused
    assert "log format must be console or json" in refused.stderr, refused.stderr


def test_an_environment_a_library_may_have_read_at_import_is_refused() -> None:
    with pytest.raises(ForkServerError, match="PYTHONWARNINGS"):
        tandem_process([*TANDEM, "--version"], env={**os.environ, "PYTHONWARNINGS": "error"})
    without_path = {name: value for name, value in os.environ.items() if name != "PATH"}
    with pytest.raises(ForkServerError, match="PATH"):
        tandem_process([*TANDEM, "--version"], env=without_path)


def test_only_python_dash_m_tandem_is_forked() -> None:
    with pytest.raises(ForkServerError, match="only"):
        tandem_process([sys.executable, "-c", "pass"])


def test_a_module_that_reads_a_varying_variable_at_import_is_not_preloaded() -> None:
    with pytest.raises(AssertionError, match="TANDEM_PORT"), _environment_unread(VARYING):
        os.environ.get("TANDEM_PORT")
    with pytest.raises(AssertionError, match="every variable"), _environment_unread(VARYING):
        dict(os.environ.items())
    with _environment_unread(VARYING):
        os.environ.get("HOME")  # read the same by the fork server and every child


def test_a_dead_fork_server_fails_loudly_not_quietly(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, data_templates: DataTemplates
) -> None:
    """A fork server that died (killed here) refuses the next request with its exit status, and
    a child it was serving gets an error instead of a made-up exit status."""
    own = forkserver.ForkServer()  # this test's own: the process's shared one goes on serving
    monkeypatch.setattr(forkserver, "_server", own)
    data_templates.copy_to(tmp_path / "data")
    serve = [*TANDEM, "serve", "--port", "0", "--data-dir", str(tmp_path / "data")]
    try:
        child = tandem_process(serve, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            own.process.kill()
            own.process.wait()
            with pytest.raises(ForkServerError, match="without an exit status"):
                child.wait(timeout=30)
        finally:
            os.kill(child.pid, signal.SIGKILL)  # an orphan now: nobody else would stop it
        with pytest.raises(ForkServerError, match="gone: exit -9"):
            tandem_process([*TANDEM, "--version"])
    finally:
        own.close()
