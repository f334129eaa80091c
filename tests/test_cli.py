"""The `tandem` command as a user runs it. A few tests run the real `python -m tandem` in a
subprocess (its entry point, a password piped to stdin, a server started and stopped); the others
call the same Typer app in this process (:func:`tests.conftest.tandem_in_process`): a new
interpreter costs most of a second of CPU in imports alone, and production-cost password hashing
on top (the test process hashes cheaply, see ``cheap_password_hashing``)."""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tandem import cli as cli_module
from tandem import startup
from tandem.config import Settings
from tandem.directory import Directory, operator
from tandem.exceptions import NotFoundError
from tests.conftest import PROCESS_SECONDS, free_port, seed_directory, tandem_in_process
from tests.grants import of_org

TANDEM = [sys.executable, "-m", "tandem"]
PASSWORD = "blue-kettle-orbit-42\n"


def run(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TANDEM, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=PROCESS_SECONDS,
        env=env,
    )


def cli(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The same command as :func:`run`, in this process."""
    return tandem_in_process(*args, stdin=stdin, env=env)


def succeeds(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> str:
    """:func:`cli` for a command that must exit 0; its standard output."""
    result = cli(*args, stdin=stdin, env=env)
    assert result.returncode == 0, (args, result.stderr)
    return result.stdout


def refused(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> str:
    """:func:`cli` for a command that must exit 2 (the user's mistake, said in one line); its
    standard error."""
    result = cli(*args, stdin=stdin, env=env)
    assert result.returncode == 2, (args, result.stdout)
    return result.stderr


def serve_until_healthy(data_dir: Path) -> tuple[int, str]:
    """Start the real ``tandem serve`` on ``data_dir`` and a free port, wait until /healthz
    answers (60 s at the most: a busy machine starts it slowly), stop it; the port and what it
    printed."""
    port = free_port()
    process = subprocess.Popen(
        [*TANDEM, "serve", "--port", str(port), "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_health(port, "server did not answer")
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=20)
    return port, output


def wait_for_health(port: int, failure: str) -> None:
    """Until a server on ``port`` answers ``/healthz`` (60 s at most, else ``failure``)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return
        time.sleep(0.1)
    raise AssertionError(failure)


def test_help_lists_the_commands() -> None:
    result = run("--help")
    assert result.returncode == 0
    assert "serve" in result.stdout and "user" in result.stdout


def test_user_add_reads_the_password_from_stdin(tmp_path: Path) -> None:
    result = run(
        "user",
        "add",
        "bob",
        "--role",
        "supervisor",
        "--data-dir",
        str(tmp_path),
        "--init",
        stdin=PASSWORD,
    )
    assert result.returncode == 0, result.stderr
    assert "Created supervisor 'bob'" in result.stdout


def test_user_add_refuses_a_weak_password_with_a_clear_message(tmp_path: Path) -> None:
    refusal = refused("user", "add", "bob", "--data-dir", str(tmp_path), "--init", stdin="secret\n")
    assert refusal.strip().startswith("tandem: password too short")
    assert "Traceback" not in refusal


def test_user_add_refuses_a_duplicate(tmp_path: Path) -> None:
    cli("user", "add", "bob", "--data-dir", str(tmp_path), "--init", stdin=PASSWORD)
    assert "'bob' is not available" in refused(
        "user", "add", "bob", "--data-dir", str(tmp_path), stdin=PASSWORD
    )


def test_user_add_refuses_the_audit_trails_system_actor_names(tmp_path: Path) -> None:
    data = ("--data-dir", str(tmp_path), "--init")
    for name in ("server", "customer", "cli"):
        assert f"{name!r} is not available" in refused("user", "add", name, *data, stdin=PASSWORD)


def test_serve_stops_in_one_line_when_another_organisation_holds_an_allowed_origin(
    tmp_path: Path,
) -> None:
    data = ("--data-dir", str(tmp_path))
    succeeds("org", "add", "acme", "--name", "Acme", "--team", "support", *data, "--init")
    origin = ("--origin", "https://shop.example")
    succeeds("site", "add", "shop", *origin, "--team", "support", "--org", "acme", *data)
    assert refused("serve", "--allow-origin", "https://shop.example", *data).strip() == (
        "tandem: --allow-origin https://shop.example is already site 'shop' of organisation "
        "'acme': remove the option or that site"
    )


def test_user_add_refuses_an_unknown_role(tmp_path: Path) -> None:
    data = ("--data-dir", str(tmp_path), "--init")
    assert "role must be one of" in refused(
        "user", "add", "bob", "--role", "root", *data, stdin=PASSWORD
    )


def test_serve_refuses_a_bad_origin() -> None:
    assert "not an http(s) origin" in refused("serve", "--allow-origin", "not-an-origin")


@pytest.fixture(scope="module")
def first_serve(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, str]:
    """The real ``tandem serve`` on a data directory that does not exist yet (a first run), till
    it answers: its data directory, port and output, for the tests of what a first run says."""
    data = tmp_path_factory.mktemp("first-serve") / "fresh"
    port, output = serve_until_healthy(data)
    return data, port, output


def test_serve_prints_urls_and_first_run_hint_then_serves(
    first_serve: tuple[Path, int, str],
) -> None:
    _, port, output = first_serve
    assert f"http://127.0.0.1:{port}/console/" in output
    assert f"http://127.0.0.1:{port}/demo/" in output
    assert "tandem user add alice --role agent" in output


def test_env_variables_configure_serve(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "TANDEM_PORT": "0"}
    assert "port must be between" in refused("serve", "--data-dir", str(tmp_path), env=env)


def test_serve_refuses_a_limit_that_is_nan_in_one_line(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "TANDEM_CODE_TTL_SECONDS": "nan"}
    refusal = refused("serve", "--data-dir", str(tmp_path), env=env)
    assert refusal.strip() == "tandem: code_ttl_seconds must be a finite number, 0 or more, not nan"


def test_an_operator_sets_up_a_second_organisation(tmp_path: Path) -> None:
    data = ("--data-dir", str(tmp_path))
    succeeds("org", "add", "acme", "--name", "Acme Bank", "--team", "support", *data, "--init")
    assert "already exists" in refused("org", "add", "acme", "--name", "Acme Bank", *data)
    succeeds("org", "add-team", "acme", "claims", *data)
    shop = ("--org", "acme", "--origin", "https://shop.acme.example/")
    succeeds("site", "add", "acme-shop", *shop, "--team", "support", *data)
    x = ("--org", "acme", "--origin", "https://x.example")
    assert "no team 'nope' in organisation" in refused(
        "site", "add", "x", *x, "--team", "nope", *data
    )
    wrong_org = refused("user", "add", "eve", "--org", "nope", *data, stdin=PASSWORD)
    assert "no organisation 'nope'" in wrong_org
    claims = ("--org", "acme", "--team", "claims")
    assert "in organisation 'acme'" in succeeds(
        "user", "add", "carol", *claims, *data, stdin=PASSWORD
    )
    listing = cli("site", "list", *data).stdout.splitlines()
    assert "acme-shop\tacme\thttps://shop.acme.example\tsupport" in listing
    assert "demo\tdefault\tself\tsupport" in listing
    succeeds("audit", "verify", *data)
    exported = cli("audit", "export", *data).stdout
    for action in ("org_created", "team_created", "site_created", "user_created"):
        assert f'"action": "{action}"' in exported


def test_serve_says_when_redis_cannot_be_reached(tmp_path: Path) -> None:
    import os

    env = {
        **os.environ,
        "TANDEM_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",  # checked after Redis
        "TANDEM_REDIS_URL": "redis://:secret-pw@127.0.0.1:1/0",
    }
    result = cli("serve", "--data-dir", str(tmp_path), env=env)
    assert result.returncode == 2
    assert "cannot reach Redis" in result.stderr
    assert "secret-pw" not in result.stderr + result.stdout  # never the password
    assert "Traceback" not in result.stderr


def test_user_passwd_sets_a_password_and_ends_sign_ins(tmp_path: Path) -> None:
    data = ("--data-dir", str(tmp_path))
    succeeds("user", "add", "bob", "--no-mfa", *data, "--init", stdin=PASSWORD)
    weak = refused("user", "passwd", "bob", *data, stdin="short\n")
    assert weak.startswith("tandem: password too short")
    done = succeeds("user", "passwd", "bob", "--temporary", *data, stdin="green-lantern-tide-77\n")
    assert "must be changed at the next sign-in" in done
    missing = refused("user", "passwd", "nobody", *data, stdin="green-lantern-tide-77\n")
    assert "no user named 'nobody'" in missing


def test_user_passwd_gives_a_temporary_password_unless_told_lasting(tmp_path: Path) -> None:
    """The operator types someone else's password: by default it is temporary (its owner
    chooses their own at the next sign-in, within temporary_password_seconds), as an admin's
    reset is; ``--lasting`` keeps it (the operator's own account)."""
    data = ("--data-dir", str(tmp_path))
    succeeds("user", "add", "bob", "--no-mfa", *data, "--init", stdin=PASSWORD)
    done = succeeds("user", "passwd", "bob", *data, stdin="green-lantern-tide-77\n")
    assert "temporary" in done and "must be changed at the next sign-in" in done
    shown = succeeds("user", "show", "bob", *data)
    assert re.search(r"password:\s+temporary, chosen by the operator \(cli\) at \d{4}-", shown)
    assert "expires" in shown
    kept = succeeds("user", "passwd", "bob", "--lasting", *data, stdin="green-lantern-tide-78\n")
    assert "stays the account's password" in kept and "must be changed" not in kept
    assert re.search(r"password:\s+set\n", succeeds("user", "show", "bob", *data))
    # --temporary, the old spelling, still says the same.
    again = succeeds("user", "passwd", "bob", "--temporary", *data, stdin="green-lantern-tide-79\n")
    assert "must be changed at the next sign-in" in again


def test_user_sso_needs_the_organisations_provider_first(tmp_path: Path) -> None:
    data = ("--data-dir", str(tmp_path))
    succeeds("user", "add", "aud", "--role", "auditor", "--no-mfa", *data, "--init", stdin=PASSWORD)
    assert "identity provider first" in refused("user", "sso", "aud", "sub-1", *data)


# Issue 15, item 9: the traps an operator met, each tried again.


def accounts(data: Path) -> list[str]:
    """The usernames in the database, read behind the CLI's back."""
    with sqlite3.connect(data / "tandem.sqlite3") as db:
        return sorted(row[0] for row in db.execute("SELECT username FROM users"))


def test_a_user_add_that_fails_creates_nothing_and_a_retry_works(tmp_path: Path) -> None:
    data = ("--data-dir", str(tmp_path))
    succeeds("org", "add", "acme", "--name", "Acme", *data, "--init")
    for options, message in (
        (("--team", "nope"), "no team 'nope' in organisation 'default'"),
        (("--org", "nope"), "no organisation 'nope'"),
        (("--org", "acme", "--team", "support"), "no team 'support' in organisation 'acme'"),
    ):
        failed = cli("user", "add", "bob", *options, *data, stdin=PASSWORD)
        assert failed.returncode == 2, failed.stdout
        assert message in failed.stderr and "secret" not in failed.stdout
        assert accounts(tmp_path) == []
    refused("user", "add", "bob", *data, stdin="short\n")
    assert accounts(tmp_path) == []
    retried = succeeds("user", "add", "bob", "--team", "support", *data, stdin=PASSWORD)
    assert "temporary" in retried  # the account is made, this time
    assert accounts(tmp_path) == ["bob"]
    exported = cli("audit", "export", *data).stdout
    assert exported.count('"action": "user_created"') == 1


def test_the_api_refuses_an_unknown_team_without_creating_the_account(tmp_path: Path) -> None:
    data = ("--data-dir", str(tmp_path))
    succeeds("user", "add", "ada", "--role", "admin", *data, "--init", stdin=PASSWORD)

    refusals: list[str] = []

    async def add(directory: Directory) -> None:
        try:  # what POST /api/users does
            await directory.add_user(
                operator("default"), "eve", PASSWORD.strip(), "agent", None, ("x",)
            )
        except NotFoundError as exc:
            refusals.append(str(exc))

    seed_directory(tmp_path, add)
    assert refusals == ["no team named 'x'"]
    assert accounts(tmp_path) == ["ada"]


def test_org_commands_name_the_missing_organisation(tmp_path: Path) -> None:
    data = ("--data-dir", str(tmp_path))
    succeeds("org", "add", "acme", "--name", "Acme Bank", *data, "--init")
    missing = refused("org", "add-team", "nope", "x", *data)
    assert missing.strip() == "tandem: no organisation 'nope' (tandem org list shows them)"
    succeeds("org", "add-team", "acme", "claims", *data)
    again = refused("org", "add-team", "acme", "claims", *data)
    assert "a team 'claims' already exists" in again
    # A bad team name stops `org add` before the organisation is made.
    assert "team name" in refused(
        "org", "add", "beta", "--name", "Beta", "--team", "Bad Name", *data
    )
    listed = cli("org", "list", *data).stdout.splitlines()
    assert listed[0].split("\t") == ["ORG", "NAME", "ACCOUNTS", "TEAMS", "SITES"]
    assert [line.split("\t")[0] for line in listed[1:]] == ["acme", "default"]
    shown = cli("org", "show", "acme", *data).stdout
    assert "Acme Bank" in shown and "claims" in shown and "30 days" in shown
    refused("org", "show", "nope", *data)
    refused("site", "list", "--org", "nope", *data)
    assert cli("site", "list", "--org", "acme", *data).stdout == ""
    assert "demo\tdefault\tself" in cli("site", "list", "--org", "default", *data).stdout


def test_user_list_show_disable_enable_reset_and_remove(tmp_path: Path) -> None:
    data = ("--data-dir", str(tmp_path))
    own = ("--own-account",)  # the operator's own: its authenticator is on now
    succeeds("user", "add", "ada", "--role", "admin", *own, *data, "--init", stdin=PASSWORD)
    succeeds("user", "add", "bob", "--no-mfa", *data, stdin=PASSWORD)
    assert "must be changed at next sign-in" in cli("user", "show", "bob", *data).stdout
    listed = cli("user", "list", *data).stdout.splitlines()
    assert listed[0].startswith("USERNAME\tROLE")
    assert listed[1].split("\t") == ["ada", "admin", "Ada", "-", "on", "active"]
    assert listed[2].split("\t") == ["bob", "agent", "Bob", "support", "off (--no-mfa)", "active"]
    assert "recovery codes left: 10" in cli("user", "show", "ada", *data).stdout

    assert "Disabled 'bob'" in succeeds("user", "disable", "bob", *data)
    assert "state:" in (shown := cli("user", "show", "bob", *data).stdout) and "disabled" in shown
    assert "at least one admin" in refused("user", "disable", "ada", *data)
    succeeds("user", "enable", "bob", *data)
    assert cli("user", "list", *data).stdout.splitlines()[2].endswith("active")

    assert "next sign-in" in succeeds("user", "reset-mfa", "ada", *data)
    assert "set up at next sign-in" in cli("user", "show", "ada", *data).stdout

    assert "--yes" in refused("user", "remove", "bob", *data)
    assert accounts(tmp_path) == ["ada", "bob"]
    succeeds("user", "remove", "bob", "--yes", *data)
    assert accounts(tmp_path) == ["ada"]
    for command in ("show", "disable", "enable", "reset-mfa"):
        assert "no user named 'bob'" in refused("user", command, "bob", *data), command
    assert "no organisation 'nope'" in refused("user", "list", "--org", "nope", *data)
    # passwd checks the account before it asks for a password
    assert "no user named 'bob'" in cli("user", "passwd", "bob", *data).stderr
    actions = cli("audit", "export", *data).stdout
    for action in ("user_disabled", "user_enabled", "mfa_reset", "user_deleted"):
        assert f'"action": "{action}"' in actions, action


def test_enabling_or_disabling_twice_says_nothing_changed(tmp_path: Path) -> None:
    """`user enable` of an account that was never disabled said "it can sign in again" (and
    `user disable` of a disabled one that its sign-ins had ended)."""
    data = ("--data-dir", str(tmp_path))
    succeeds("user", "add", "bob", "--no-mfa", *data, "--init", stdin=PASSWORD)
    assert succeeds("user", "enable", "bob", *data).strip() == (
        "'bob' was already enabled: nothing changed."
    )
    assert "its sign-ins have ended" in succeeds("user", "disable", "bob", *data)
    assert succeeds("user", "disable", "bob", *data).strip() == (
        "'bob' was already disabled: nothing changed."
    )
    assert "it can sign in again" in succeeds("user", "enable", "bob", *data)
    actions = cli("audit", "export", *data).stdout
    assert actions.count('"action": "user_enabled"') == 1
    assert actions.count('"action": "user_disabled"') == 1


def test_an_empty_hold_list_says_there_are_no_legal_holds(tmp_path: Path) -> None:
    """`hold list` with no hold printed nothing at all: as if the command had failed quietly.
    The words go to standard error; standard output stays the (empty) tab-separated list."""
    data = ("--data-dir", str(tmp_path))
    succeeds("user", "add", "bob", "--no-mfa", *data, "--init", stdin=PASSWORD)
    empty = cli("hold", "list", *data)
    assert (empty.returncode, empty.stdout) == (0, "")
    assert empty.stderr.strip() == "no legal holds in 'default'"
    session = "s" * 22
    succeeds("hold", "place", "subject", session, "--reason", "case 7", *data)
    held = cli("hold", "list", *data)
    assert held.stdout.startswith(f"subject\t{session}\t") and held.stderr == ""


def _on_a_read_only_mount(directory: Path, *args: str, stdin: str = "") -> Any:
    """``python -m tandem ARGS`` with ``directory`` bind-mounted read-only over itself, in a
    mount namespace of the command's own (the test's file system is left as it was)."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1) to mount a read-only file system")
    command = shlex.join([*TANDEM, *args])
    where = shlex.quote(str(directory))
    script = f"mount --bind {where} {where} && mount -o remount,bind,ro {where} && exec {command}"
    result = subprocess.run(
        ["unshare", "-m", "sh", "-c", script],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=PROCESS_SECONDS,
    )
    if "mount:" in result.stderr or "unshare:" in result.stderr:
        pytest.skip(f"cannot mount a read-only file system here: {result.stderr.strip()}")
    return result


def test_a_read_only_data_directory_is_named_as_read_only(tmp_path: Path) -> None:
    """SQLite's own words were all a command said: "unable to open database file"."""
    data = tmp_path / "data"
    succeeds("user", "add", "bob", "--no-mfa", "--data-dir", str(data), "--init", stdin=PASSWORD)
    result = _on_a_read_only_mount(data, "user", "list", "--data-dir", str(data))
    assert result.returncode == 2, result.stdout
    assert result.stderr.strip() == (
        f"tandem: cannot open the database at {data / 'tandem.sqlite3'}: the data directory "
        f"{data} is on a read-only file system: Tandem writes its database and the files SQLite "
        "keeps beside it there; make it writable (or give --data-dir a writable one)"
    )


def test_a_data_directory_read_only_for_the_account_is_named_so(tmp_path: Path) -> None:
    """Run by an account that may not write in it, SQLite said only "attempt to write a
    readonly database"."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv(1) to run the command as another account")
    nobody = pwd.getpwnam("nobody")
    outside = Path(tempfile.mkdtemp())  # tmp_path's parents are root's alone: nobody must reach it
    try:
        outside.chmod(0o755)
        data = outside / "data"
        succeeds(
            "user", "add", "bob", "--no-mfa", "--data-dir", str(data), "--init", stdin=PASSWORD
        )
        for path in (data, *data.iterdir()):
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
        data.chmod(0o500)
        as_nobody = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}"]
        result = subprocess.run(
            [*as_nobody, "--clear-groups", *TANDEM, "user", "list", "--data-dir", str(data)],
            capture_output=True,
            text=True,
            timeout=PROCESS_SECONDS,
            cwd=outside,
        )
        assert result.returncode == 2, result.stdout
        assert result.stderr.strip() == (
            f"tandem: cannot open the database at {data / 'tandem.sqlite3'}: the data directory "
            f"{data} is read-only for this account: Tandem writes its database and the files "
            "SQLite keeps beside it there; make it writable (or give --data-dir a writable one)"
        )
    finally:
        shutil.rmtree(outside)


def test_init_on_a_read_only_file_system_gives_no_chmod_advice(tmp_path: Path) -> None:
    """`user add --init` there warned "cannot be tightened (Read-only file system): run chmod
    700" before its error: chmod cannot help on a read-only file system."""
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)  # looser than 0700: tightened where the file system allows it
    result = _on_a_read_only_mount(
        data, "user", "add", "bob", "--data-dir", str(data), "--init", stdin=PASSWORD
    )
    assert result.returncode == 2, result.stdout
    assert "chmod" not in result.stderr and "cannot be tightened" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"tandem: cannot open the database at {data / 'tandem.sqlite3'}: the data directory "
        f"{data} is on a read-only file system: Tandem writes its database and the files SQLite "
        "keeps beside it there; make it writable (or give --data-dir a writable one)"
    ]
    assert list(data.iterdir()) == []


def test_a_mistyped_data_dir_is_an_error_not_a_new_database(tmp_path: Path) -> None:
    real = tmp_path / "data"
    succeeds("org", "add", "acme", "--name", "Acme", "--data-dir", str(real), "--init")
    typo = tmp_path / "dat"
    for command in (
        ("user", "add", "bob"),
        ("user", "list"),
        ("org", "list"),
        ("site", "list"),
        ("audit", "verify"),
        ("audit", "export"),
        ("db", "upgrade"),
        ("subject", "find", "x"),
    ):
        line = refused(*command, "--data-dir", str(typo), stdin=PASSWORD).strip()
        assert line.startswith(f"tandem: no Tandem database in {typo}"), (command, line)
        assert "--init" in line and "Traceback" not in line
        assert not typo.exists(), command  # nothing written, not even the key files
    created = cli("user", "add", "bob", "--data-dir", str(typo), "--init", stdin=PASSWORD)
    assert created.returncode == 0, created.stderr
    assert f"Created a new Tandem database at {typo / 'tandem.sqlite3'}" in created.stderr


def test_a_data_dir_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    file = tmp_path / "data"
    file.write_text("not a directory")
    for command in (("user", "list"), ("user", "add", "bob", "--init"), ("org", "list")):
        assert refused(*command, "--data-dir", str(file), stdin=PASSWORD).strip() == (
            f"tandem: the data directory {file} is a file, not a directory: check --data-dir "
            "(or TANDEM_DATA_DIR)"
        )
    served = refused("serve", "--data-dir", str(file), "--port", str(free_port()))
    assert "is a file, not a directory" in served
    assert "Errno" not in served
    assert file.read_text() == "not a directory"


def test_serve_on_an_empty_data_dir_says_it_created_the_database(
    first_serve: tuple[Path, int, str],
) -> None:
    data, _, output = first_serve
    assert f"new database   {data / 'tandem.sqlite3'} (there was none: created now)" in output
    assert "(.venv/bin/tandem, or plain tandem in an activated virtualenv)" in output


def _options(command: Any, path: str = "tandem") -> Iterator[tuple[str, Any]]:
    """Every option of every command under ``command`` (Typer's own command classes)."""
    for name, sub in getattr(command, "commands", {}).items():
        yield from _options(sub, f"{path} {name}")
    for param in command.params:
        if param.param_type_name == "option":
            yield path, param


def test_help_shows_every_environment_variable_and_default() -> None:
    """Every option whose help names an environment variable or default keeps it on screen
    (rich markup used to eat each `[env …; default …]`)."""
    import typer.main

    root = typer.main.get_command(cli_module.app)
    checked = 0
    helps: dict[str, str] = {}  # each command's help, rendered once for all its options
    for path, option in _options(root):
        bracket = re.search(r"\[env [^\]]*\]", option.help or "")
        if not bracket:
            continue
        if path not in helps:
            shown = tandem_in_process(*path.split()[1:], "--help")
            assert shown.returncode == 0, path
            helps[path] = " ".join(shown.stdout.split())
        flat = helps[path]
        assert " ".join(bracket.group(0).split()) in flat, (path, option.name, bracket.group(0))
        checked += 1
    assert checked >= 20
    serve = " ".join(tandem_in_process("serve", "--help").stdout.split())
    for variable in ("TANDEM_HOST", "TANDEM_PORT", "TANDEM_DATA_DIR", "TANDEM_DATABASE_URL"):
        assert variable in serve
    assert "[env TANDEM_DATA_DIR; default ./data]" in serve
    assert "default 127.0.0.1" in serve and "default 8000" in serve
    add = " ".join(tandem_in_process("user", "add", "--help").stdout.split())
    assert "[default: agent]" in add and "--init" in add


def test_every_option_with_an_environment_variable_says_which() -> None:
    """Options that Settings also reads from the environment name the variable in their help."""
    import typer.main

    settings_options = {"--data-dir", "--host", "--port", "--audit-key", "--database-url"}
    root = typer.main.get_command(cli_module.app)
    for path, option in _options(root):
        if set(option.opts) & settings_options:
            assert "[env TANDEM_" in (option.help or "") or "env TANDEM_" in (option.help or ""), (
                path,
                option.opts,
            )


def test_the_readme_tours_commands_work_as_written(tmp_path: Path) -> None:
    """Every `.venv/bin/tandem …` of the README's tour (after the server made its database, as
    `make run` does), in order, on a data directory of its own."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    tour = readme[readme.index("2. **Create an agent**") : readme.index("## Putting the SDK")]
    commands = [
        shlex.split(found)
        for found in re.findall(r"\.venv/bin/tandem ([^`\n]+?)(?:`|$)", tour, re.MULTILINE)
        if not found.startswith("(")
    ]
    assert len(commands) >= 7, commands
    data = tmp_path / "data"
    seed_directory(data, _nothing)  # `make run` started the server: the database exists
    env = {"TANDEM_DATA_DIR": str(data)}
    for command in commands:
        args = [
            str(data) if previous == "--data-dir" else arg
            for previous, arg in zip(["", *command[:-1]], command, strict=True)
        ]
        result = tandem_in_process(*args, stdin=PASSWORD, env=env)
        expected = 1 if args[:2] == ["compliance", "check"] else 0  # a demo fails some checks
        assert result.returncode == expected, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
    assert "acme\tAcme Bank" in tandem_in_process("org", "list", "--data-dir", str(data)).stdout
    # Step 4's claim: the agent the tour created is not trained until she has practised.
    standing = tandem_in_process("training", "status", "--data-dir", str(data)).stdout
    assert re.search(r"^alice +agent .*NOT TRAINED$", standing, re.MULTILINE), standing


async def _nothing(directory: Directory) -> None:
    return None


def test_files_that_are_fifos_binary_or_directories_are_refused_in_one_line(
    tmp_path: Path,
) -> None:
    """A FIFO given as a file used to hang the command (its read waits for a writer forever),
    a binary checkpoint file raised UnicodeDecodeError: each is now one line and exit 2."""
    import os

    data = tmp_path / "data"
    succeeds("user", "add", "ann", "--data-dir", str(data), "--init", stdin=PASSWORD)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe\x00\x81" * 100)
    at = ("--data-dir", str(data))
    for args, expected in (
        (("audit", "verify", "--checkpoint", str(fifo), *at), "not a regular file"),
        (("audit", "verify", "--checkpoint", str(binary), *at), "are not text (UTF-8)"),
        (("audit", "verify", "--checkpoint", str(tmp_path), *at), "Is a directory"),
        (("audit", "verify", "--audit-key", str(fifo), *at), "no audit key"),
        (("serve", "--policy", str(fifo), *at), "not a regular file"),
        (
            (
                "site",
                "add",
                "shop",
                "--origin",
                "https://shop.example",
                "--team",
                "t",
                "--policy",
                str(fifo),
                *at,
            ),
            "not a regular file",
        ),
    ):
        refusal = refused(*args)
        assert expected in refusal, (args, refusal)
        assert len(refusal.strip().splitlines()) == 1 and "Traceback" not in refusal, refusal
    status = cli("security", "status", "--advisory-file", str(fifo))
    assert status.returncode == 1 and "not a regular file" in status.stdout + status.stderr
    # The audit key and the secrets key beside it, read when the server starts.
    for variable in ("TANDEM_AUDIT_KEY",):
        env = {**os.environ, variable: str(fifo)}
        refusal = refused("serve", "--port", str(free_port()), *at, env=env)
        assert "not a regular file" in refusal, refusal
        assert len(refusal.strip().splitlines()) == 1 and "Traceback" not in refusal, refusal


def test_user_add_refuses_a_password_with_control_characters_or_not_in_utf8(
    tmp_path: Path,
) -> None:
    """A NUL or an escape in a piped password made an account no sign-in form could open; bytes
    that are not UTF-8 (a Latin-1 terminal) raised UnicodeEncodeError with a traceback."""
    data = str(tmp_path / "data")
    for password in ("pässwort-lang-\x00genug-1\n", "blue-kettle-\x1b[2J-orbit\n"):
        refusal = refused("user", "add", "bob", "--data-dir", data, "--init", stdin=password)
        assert refusal.strip().startswith("tandem: password must not contain control characters")
    latin1 = subprocess.run(
        [*TANDEM, "user", "add", "bob", "--data-dir", data, "--init"],
        input="pässwort-lang-genug-1\n".encode("latin-1"),
        capture_output=True,
        timeout=PROCESS_SECONDS,
    )
    assert latin1.returncode == 2, latin1.stderr
    assert latin1.stderr.decode().strip() == "tandem: password is not UTF-8 text: type it in UTF-8"
    succeeds("user", "add", "bob", "--data-dir", data, "--init", stdin="pässwort-lang-genug-1\n")


def test_db_copy_refuses_a_target_url_that_names_no_database(tmp_path: Path) -> None:
    """``--to postgresql://`` connected to PostgreSQL's default database (named after the
    operating system's user) and copied the installation into it."""
    data = str(tmp_path / "data")
    succeeds("user", "add", "ann", "--data-dir", data, "--init", stdin=PASSWORD)
    for url in ("postgresql://", "postgresql://127.0.0.1:5432"):
        refusal = refused("db", "copy", "--to", url, "--data-dir", data)
        assert refusal.strip() == (
            "tandem: the database URL names no database: postgresql://user@host:port/database"
        )


def test_a_second_serve_on_the_same_sqlite_database_is_refused(tmp_path: Path) -> None:
    """Two ``tandem serve`` on one SQLite file both ran: each held its own sessions and took
    the other's for a stopped server's. The second is now refused in one line, and the data
    directory is free again once the first stops."""
    data = tmp_path / "data"
    port = free_port()
    first = subprocess.Popen(
        [*TANDEM, "serve", "--port", str(port), "--data-dir", str(data)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_health(port, "the first server did not answer")
        refusal = refused("serve", "--port", str(free_port()), "--data-dir", str(data))
        assert refusal.strip().startswith(
            f"tandem: another tandem serve is using the database in {data}: stop it first"
        ), refusal
        succeeds("user", "list", "--data-dir", str(data))  # commands other than serve still work
    finally:
        first.terminate()
        first.wait(timeout=30)
    assert startup.lock_sqlite(Settings(data_dir=data)) is not None  # free again


def test_a_file_larger_than_max_input_file_bytes_is_refused_without_being_read(
    tmp_path: Path,
) -> None:
    """A wrong path naming a huge file (a disk image) given as the policy was read whole into
    memory. A sparse 17 MiB file stands for it (over the 16 MiB default), and the setting
    lowers the limit."""
    import os

    data = tmp_path / "data"
    succeeds("user", "add", "ann", "--data-dir", str(data), "--init", stdin=PASSWORD)
    huge = tmp_path / "huge.json"
    with huge.open("wb") as file:
        file.truncate(17 * 1024 * 1024)
    refusal = refused("serve", "--policy", str(huge), "--data-dir", str(data))
    assert refusal.strip() == (
        f"tandem: cannot read the policy {huge}: larger than {16 * 1024 * 1024} bytes"
    )
    small = tmp_path / "checkpoints"
    small.write_text("x" * 2048)
    env = {**os.environ, "TANDEM_MAX_INPUT_FILE_BYTES": "1024"}
    refusal = refused(
        "audit", "verify", "--checkpoint", str(small), "--data-dir", str(data), env=env
    )
    assert refusal.strip() == f"tandem: cannot read the checkpoints {small}: larger than 1024 bytes"


def test_serve_refuses_a_mistyped_audit_key_path_once_there_is_a_trail(tmp_path: Path) -> None:
    """A TANDEM_AUDIT_KEY naming a file that does not exist (a typo) made the server create a
    new key there, and every record it wrote broke the trail ("no valid MAC")."""
    import os

    data = tmp_path / "data"
    succeeds("user", "add", "ann", "--data-dir", str(data), "--init", stdin=PASSWORD)  # audited
    typo = tmp_path / "etc-tandem" / "audit.key"
    env = {**os.environ, "TANDEM_AUDIT_KEY": str(typo)}
    refusal = refused("serve", "--port", str(free_port()), "--data-dir", str(data), env=env)
    assert refusal.strip() == (
        f"tandem: no audit key at {typo}, but the database holds an audit trail: check "
        "TANDEM_AUDIT_KEY; a new key would break it"
    )
    # Commands that audit (here: a new account) refuse it alike.
    refusal = refused("user", "add", "bob", "--data-dir", str(data), stdin=PASSWORD, env=env)
    assert refusal.strip().startswith(f"tandem: no audit key at {typo}, but the database holds")
    assert not typo.exists()
    assert "audit trail intact" in succeeds("audit", "verify", "--data-dir", str(data))


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (("user", "add", "bob", "--init", "--data-dir", ""), "--data-dir"),
        (("console", "--copy-to", "", "--relay", "https://relay.example"), "--copy-to"),
        (("audit", "verify", "--data-dir", "data", "--audit-key", ""), "--audit-key"),
    ],
)
def test_an_empty_path_is_refused_not_taken_for_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], option: str
) -> None:
    """``--data-dir ""`` reached the command as ``Path("")``, the current directory: `user add
    --init` (and `serve`) made a whole installation wherever it was typed, ``console --copy-to
    ""`` wrote the console's files there."""
    monkeypatch.chdir(tmp_path)
    result = cli(*args, stdin=PASSWORD)
    assert result.returncode == 2, result.stdout
    assert result.stderr.startswith(f"tandem: Invalid value for '{option}': is empty"), (
        result.stderr
    )
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args",
    [
        ("user", "list", "--org", ""),
        ("user", "show", "ann", "--org", ""),
        ("site", "list", "--org", ""),
        ("training", "status", "--org", "Acme Bank"),
        ("compliance", "check", "--profile", "gdpr", "--org", ""),
        ("hold", "list", "--org", ""),
    ],
)
def test_an_empty_or_malformed_org_is_a_clear_error(tmp_path: Path, args: tuple[str, ...]) -> None:
    """``--org ""`` made a grant of no organisation: a ValueError and its traceback."""
    data = tmp_path / "data"
    succeeds("user", "add", "ann", "--data-dir", str(data), "--init", stdin=PASSWORD)
    refusal = refused(*args, "--data-dir", str(data))
    assert "Invalid value for '--org': an organisation id is 1-64 characters" in refusal
    assert "Traceback" not in refusal


def test_subject_and_hold_commands_name_an_organisation_there_is_none_of(tmp_path: Path) -> None:
    """`subject find x --org acmee` (a typo) answered an empty search, exit 0: as if nothing of
    that customer were stored."""
    data = tmp_path / "data"
    succeeds("user", "add", "ann", "--data-dir", str(data), "--init", stdin=PASSWORD)
    at = ("--org", "acmee", "--data-dir", str(data))
    for args in (("subject", "find", "cust-1"), ("hold", "list")):
        refusal = refused(*args, *at)
        assert refusal.strip() == "tandem: no organisation 'acmee' (tandem org list shows them)"
    assert '"sessions": []' in succeeds("subject", "find", "cust-1", "--data-dir", str(data))


def test_a_recording_or_key_that_is_a_directory_is_named_not_its_descriptor(
    tmp_path: Path,
) -> None:
    """A directory given to `recording open` was reported as "cannot read 3" (the descriptor
    Python's open() had been handed)."""
    refusal = refused("recording", "open", str(tmp_path), "--key", str(tmp_path))
    assert refusal.strip() == f"tandem: cannot read {tmp_path}: Is a directory"


def test_arguments_that_are_not_utf8_are_refused_in_one_line(tmp_path: Path) -> None:
    """A byte that is not UTF-8 on the command line reaches Python as a lone surrogate: `subject
    find`, `hold place --reason` ended in a UnicodeEncodeError traceback from the database,
    `training record --reason` stored it in the audit trail (PostgreSQL's JSON refuses it), and
    `serve --host` made a new data directory and database before its bind failed."""
    data = tmp_path / "data"
    succeeds("user", "add", "ann", "--data-dir", str(data), "--init", stdin=PASSWORD)
    bad = b"r\xff".decode("utf-8", "surrogateescape")
    at = ("--data-dir", str(data))
    for args, expected in (
        (("subject", "find", bad, *at), "a subject is"),
        (("hold", "place", "subject", "x", "--reason", bad, *at), "not UTF-8"),
        (("training", "record", "ann", "--reason", bad, *at), "not UTF-8"),
    ):
        refusal = refused(*args)
        assert expected in refusal and len(refusal.strip().splitlines()) == 1, refusal
    fresh = tmp_path / "fresh"
    refusal = refused("serve", "--host", bad, "--port", str(free_port()), "--data-dir", str(fresh))
    assert refusal.strip() == "tandem: host is not UTF-8 text"
    assert not fresh.exists()
    assert "training_completed" not in succeeds("audit", "export", *at)


def test_sdk_src_without_copy_to_or_empty_is_refused(tmp_path: Path) -> None:
    """`tandem sdk --src /js/tandem.js` (no --copy-to) printed the tag of the server's own file,
    ignoring --src without a word; `--src ""` printed `<script src="">`, which loads nothing."""
    refusal = refused("sdk", "--src", "/js/tandem.js")
    assert refusal.strip() == (
        "tandem: --src goes with --copy-to: it is the address of the copy on your site"
    )
    refusal = refused("sdk", "--copy-to", str(tmp_path / "js"), "--src", " ")
    assert refusal.startswith("tandem: --src is empty") and not (tmp_path / "js").exists()
    tag = succeeds("sdk", "--copy-to", str(tmp_path / "js"))
    assert tag.startswith('<script src="/tandem.js" ')


def test_reset_mfa_of_a_no_mfa_account_says_it_still_signs_in_with_a_password_alone(
    tmp_path: Path,
) -> None:
    """`user reset-mfa` of an account made with --no-mfa said "It sets up a new one at its next
    sign-in", and the account went on signing in with its password alone."""
    data = ("--data-dir", str(tmp_path))
    succeeds("user", "add", "ada", "--role", "admin", *data, "--init", stdin=PASSWORD)
    succeeds("user", "add", "bob", "--no-mfa", *data, stdin=PASSWORD)
    said = succeeds("user", "reset-mfa", "bob", *data)
    assert "sets up a new one" not in said and "still signs in with a password alone" in said
    assert "off (--no-mfa)" in succeeds("user", "show", "bob", *data)


def test_a_malformed_team_name_is_named_as_such_not_offered_to_org_add_team(
    tmp_path: Path,
) -> None:
    """`user add bob --team ""` answered "tandem org add-team default  creates it": a command
    that cannot work."""
    data = ("--data-dir", str(tmp_path))
    succeeds("user", "add", "ada", "--role", "admin", *data, "--init", stdin=PASSWORD)
    refusal = refused("user", "add", "bob", "--team", "", *data, stdin=PASSWORD)
    assert refusal.startswith("tandem: a team name is 1-64 characters"), refusal
    assert accounts(tmp_path) == ["ada"]


def test_help_names_each_value_in_words_not_by_its_python_type() -> None:
    """Help showed `--data-dir <Path>` and `--public-origin <list[str]>`: a Python type where a
    reader wants to know what to write. Every command's help names each value in words."""
    import typer.main

    root = typer.main.get_command(cli_module.app)
    paths = sorted({path for path, _ in _options(root)})
    assert len(paths) >= 30
    for path in paths:
        shown = tandem_in_process(*path.split()[1:], "--help")
        assert shown.returncode == 0, path
        assert not re.search(r"<(Path|str|int|float|list\[\w+\])>", shown.stdout), (
            path,
            shown.stdout,
        )
    serve = tandem_in_process("serve", "--help").stdout
    assert "--data-dir DIR " in serve and "--public-origin ORIGIN " in serve
    assert "--to URL " in tandem_in_process("db", "copy", "--help").stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--bogus",), "tandem: No such option: --bogus (tandem --help)"),
        (
            ("user", "lisst"),
            "tandem: No such command 'lisst'. Did you mean 'list'? (tandem user --help)",
        ),
        (
            ("site", "add", "s1", "--origin", "https://s.example"),
            "tandem: Missing option '--team' (tandem site add --help)",
        ),
        (
            ("recording", "open"),
            "tandem: Missing argument 'RECORDING' (tandem recording open --help)",
        ),
    ],
)
def test_a_mistake_in_the_command_line_itself_is_one_line(
    args: tuple[str, ...], expected: str
) -> None:
    """An unknown option, a missing one, a mistyped command: click printed its usage, a hint and
    a blank line around the error, four lines where every other refusal is one."""
    assert refused(*args).splitlines() == [expected]


def test_help_is_still_printed_whole() -> None:
    assert "Commands:" in succeeds("--help") and "--org" in succeeds("user", "list", "--help")
    bare = cli("user")
    assert bare.returncode == 2 and "Commands:" in bare.stderr + bare.stdout


def test_a_change_whose_audit_record_the_database_refuses_says_it_was_made(
    tmp_path: Path,
) -> None:
    """The account is disabled, then the database refuses the record of it (a full disk: a
    trigger here). The command said "the database refused the change", and the operator took
    the account for still enabled, unrecorded; it now says the change was made and what is not
    on the audit trail, and fails (exit 2)."""
    data = ("--data-dir", str(tmp_path))
    succeeds("user", "add", "bob", "--no-mfa", *data, "--init", stdin=PASSWORD)
    with sqlite3.connect(tmp_path / "tandem.sqlite3") as db:
        db.execute(
            "CREATE TRIGGER test_disk_full BEFORE INSERT ON audit"
            " WHEN NEW.action = 'user_disabled'"
            " BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )
    said = refused("user", "disable", "bob", *data)
    assert "the change was made, but its audit record could not be written" in said
    assert "user_disabled of bob by cli at " in said and "is not on the audit trail" in said
    assert "disabled" in cli("user", "show", "bob", *data).stdout


def test_names_with_invisible_characters_are_refused_and_old_ones_printed_visibly(
    tmp_path: Path,
) -> None:
    """An invisible right-to-left mark made "Ann Smith" of another account look like this one's
    in `tandem user list`: the rule refuses it where names are set, and a name an earlier version
    stored is printed with a visible U+FFFD in its place."""
    data = ("--data-dir", str(tmp_path))
    succeeds("user", "add", "ada", "--role", "admin", *data, "--init", stdin=PASSWORD)
    said = refused("user", "add", "ann", "--display-name", "Ann Smith\u200f", *data, stdin=PASSWORD)
    assert "U+200F" in said and "invisible" in said

    async def stored_by_an_earlier_version(directory: Directory) -> None:
        await directory.storage.update_user(
            of_org("default"), "ada", role="admin", display_name="Ann Smith\u200f"
        )

    seed_directory(tmp_path, stored_by_an_earlier_version)
    listed = cli("user", "list", *data).stdout.splitlines()
    assert listed[1].split("\t")[2] == "Ann Smith\ufffd"
    assert "Ann Smith\ufffd" in cli("user", "show", "ada", *data).stdout


def test_user_show_says_an_own_password_set_aside_by_a_binding_was_chosen_by_nobody(
    tmp_path: Path,
) -> None:
    """An admin's first binding to the identity provider made the owner's own password
    temporary (storage keeps SET_ASIDE_BY_BINDING as its chooser): ``user show`` names nobody
    as its chooser, not a user called after the mark."""
    from tandem.storage.base import SET_ASIDE_BY_BINDING

    data = ("--data-dir", str(tmp_path))
    succeeds("user", "add", "bob", "--no-mfa", *data, "--init", stdin=PASSWORD)
    succeeds("user", "passwd", "bob", *data, stdin="green-lantern-tide-77\n")
    with sqlite3.connect(tmp_path / "tandem.sqlite3") as db:
        updated = db.execute(
            "UPDATE users SET password_set_by = ? WHERE username = 'bob'", (SET_ASIDE_BY_BINDING,)
        )
        assert updated.rowcount == 1
    shown = succeeds("user", "show", "bob", *data)
    assert re.search(
        r"password:\s+temporary, chosen by nobody: the owner's own, set aside when bound to"
        r" single sign-on at \d{4}-",
        shown,
    ), shown
