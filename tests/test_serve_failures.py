"""Clean start-up failures (issue 13, fault 10): every bad configuration `tandem serve` can meet
is one line, `tandem: …`, and a non-zero exit; no traceback, no banner, and nothing in the audit
trail of a server that never served. The port in use (the last check before serving) runs the real
`python -m tandem serve`, as an operator does; the others run the same command in this process
(:func:`tests.conftest.tandem_in_process`: a new interpreter costs most of a second of CPU in
imports alone), where a log record is printed as a real process prints it without a configured
handler (the failures come before the server's logging is set up), so it counts as a line too."""

from __future__ import annotations

import logging
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import trustme

from tandem.config import Settings
from tests.conftest import free_port, tandem_in_process

TANDEM = [sys.executable, "-m", "tandem"]


@contextmanager
def log_lines() -> Iterator[list[str]]:
    """What a process with no logging handler would print on stderr for the log records made
    meanwhile (Python's last-resort handler: warnings and worse, their message alone)."""
    lines: list[str] = []

    class Printed(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.extend(self.format(record).splitlines())

    handler = Printed(logging.WARNING)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield lines
    finally:
        root.removeHandler(handler)


def serve(
    data_dir: Path, *options: str, port: int | None = None, real: bool = False
) -> subprocess.CompletedProcess[str]:
    """`tandem serve` on ``data_dir``: the real ``python -m tandem`` with ``real``, else the
    same command in this process, the log records it made added to its stderr."""
    args = ["serve", "--data-dir", str(data_dir), "--port", str(port or free_port()), *options]
    if real:
        return subprocess.run(
            [*TANDEM, *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
    with log_lines() as logged:
        result = tandem_in_process(*args)
    result.stderr += "".join(f"{line}\n" for line in logged)
    return result


def assert_one_line_failure(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("tandem: "), lines[0]
    for word in words:
        assert word in lines[0], lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert "Tandem " not in result.stdout  # no banner


def audit_actions(data_dir: Path) -> list[str]:
    database = data_dir / "tandem.sqlite3"
    if not database.exists():
        return []
    with sqlite3.connect(database) as db:
        return [row[0] for row in db.execute("SELECT action FROM audit")]


def test_a_port_in_use_is_one_line_with_no_banner_and_no_audit_record(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = serve(tmp_path, port=taken.getsockname()[1], real=True)
    assert_one_line_failure(result, "cannot listen on 127.0.0.1:", "in use")
    assert audit_actions(tmp_path) == []


def test_a_tls_certificate_that_does_not_load_is_one_line(tmp_path: Path) -> None:
    authority = trustme.CA()
    other = trustme.CA().issue_cert("localhost")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    authority.issue_cert("localhost").cert_chain_pems[0].write_to_path(str(cert))
    other.private_key_pem.write_to_path(str(key))  # the key of another certificate
    result = serve(tmp_path / "data", "--tls-cert", str(cert), "--tls-key", str(key))
    assert_one_line_failure(result, "cannot use the TLS certificate", str(cert))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n")
    result = serve(tmp_path / "data", "--tls-cert", str(garbage), "--tls-key", str(garbage))
    assert_one_line_failure(result, "cannot use the TLS certificate")
    assert audit_actions(tmp_path / "data") == []


def test_a_malformed_audit_key_is_one_line(tmp_path: Path) -> None:
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "audit.key").write_text("not hex at all\n")
    result = serve(tmp_path)
    assert_one_line_failure(result, "audit key", "not hex")
    assert audit_actions(tmp_path) == []


def test_a_corrupt_database_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "tandem.sqlite3").write_bytes(b"this is not a database file" * 100)
    result = serve(tmp_path)
    assert_one_line_failure(result, "cannot open the database", "not a database")


def test_an_unreachable_database_url_is_one_line_without_its_password(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    result = serve(tmp_path, "--database-url", f"postgresql://tandem:hunter2@127.0.0.1:{port}/x")
    assert_one_line_failure(result, "cannot connect to the database")
    assert "hunter2" not in result.stderr


@pytest.mark.parametrize("where", ["under-a-file", "a-file"])
def test_a_data_directory_that_cannot_be_written_is_one_line(tmp_path: Path, where: str) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a directory")
    data_dir = blocker / "data" if where == "under-a-file" else blocker
    result = serve(data_dir)
    assert_one_line_failure(result, str(blocker))


def test_a_database_url_with_a_port_out_of_range_is_one_line(tmp_path: Path) -> None:
    """The port reached the socket layer, whose OverflowError ended the command in a
    traceback."""
    result = serve(tmp_path, "--database-url", "postgresql://127.0.0.1:99999/tandem")
    assert_one_line_failure(result, "port must be from 1 to 65535")


def test_a_trusted_proxy_that_is_a_host_name_is_one_line(tmp_path: Path) -> None:
    """`--trusted-proxy proxy.internal` served, and uvicorn never matched a peer to it."""
    result = serve(tmp_path, "--trusted-proxy", "proxy.internal")
    assert_one_line_failure(result, "trusted proxy 'proxy.internal'")
    assert not (tmp_path / "tandem.sqlite3").exists()


def test_a_port_in_use_makes_no_new_installation(tmp_path: Path) -> None:
    """The port was taken last: `tandem serve --data-dir /var/lib/tandme` (a typo) on a port in
    use made a new, empty installation there (database, keys) before saying the port was
    taken."""
    fresh = tmp_path / "fresh"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = serve(fresh, port=taken.getsockname()[1])
    assert_one_line_failure(result, "cannot listen on 127.0.0.1:", "in use")
    assert not fresh.exists()


def test_an_audit_backlog_too_large_to_take_up_is_one_line(tmp_path: Path) -> None:
    """Read whole into memory at start, however large; now refused unread, and left in place."""
    tmp_path.mkdir(exist_ok=True)
    backlog = tmp_path / "audit-backlog.jsonl"
    with backlog.open("wb") as file:  # sparse: one byte past the default limit, no disk used
        file.truncate(Settings().audit_backlog_max_bytes + 1)
    result = serve(tmp_path)
    assert_one_line_failure(result, "audit-backlog.jsonl", "audit_backlog_max_bytes")
    assert backlog.stat().st_size == Settings().audit_backlog_max_bytes + 1
