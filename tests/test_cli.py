"""The `tandem` command as a user runs it: real subprocesses."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import free_port

TANDEM = [sys.executable, "-m", "tandem"]


def run(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TANDEM, *args], input=stdin, capture_output=True, text=True, timeout=60, env=env
    )


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
        stdin="blue-kettle-orbit-42\n",
    )
    assert result.returncode == 0, result.stderr
    assert "Created supervisor 'bob'" in result.stdout


def test_user_add_refuses_a_weak_password_with_a_clear_message(tmp_path: Path) -> None:
    result = run("user", "add", "bob", "--data-dir", str(tmp_path), stdin="secret\n")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("tandem: password too short")
    assert "Traceback" not in result.stderr


def test_user_add_refuses_a_duplicate(tmp_path: Path) -> None:
    run("user", "add", "bob", "--data-dir", str(tmp_path), stdin="blue-kettle-orbit-42\n")
    result = run("user", "add", "bob", "--data-dir", str(tmp_path), stdin="blue-kettle-orbit-42\n")
    assert result.returncode == 2 and "'bob' is not available" in result.stderr


def test_user_add_refuses_the_audit_trails_system_actor_names(tmp_path: Path) -> None:
    for name in ("server", "customer", "cli"):
        result = run(
            "user", "add", name, "--data-dir", str(tmp_path), stdin="blue-kettle-orbit-42\n"
        )
        assert result.returncode == 2 and f"{name!r} is not available" in result.stderr


def test_serve_stops_in_one_line_when_another_organisation_holds_an_allowed_origin(
    tmp_path: Path,
) -> None:
    data = ("--data-dir", str(tmp_path))
    assert run("org", "add", "acme", "--name", "Acme", "--team", "support", *data).returncode == 0
    added = run(
        "site",
        "add",
        "shop",
        "--origin",
        "https://shop.example",
        "--team",
        "support",
        "--org",
        "acme",
        *data,
    )
    assert added.returncode == 0, added.stderr
    result = run("serve", "--allow-origin", "https://shop.example", *data)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "tandem: --allow-origin https://shop.example is already site 'shop' of organisation "
        "'acme': remove the option or that site"
    )


def test_user_add_refuses_an_unknown_role(tmp_path: Path) -> None:
    result = run(
        "user",
        "add",
        "bob",
        "--role",
        "root",
        "--data-dir",
        str(tmp_path),
        stdin="blue-kettle-orbit-42\n",
    )
    assert result.returncode == 2 and "role must be one of" in result.stderr


def test_serve_refuses_a_bad_origin() -> None:
    result = run("serve", "--allow-origin", "not-an-origin")
    assert result.returncode == 2 and "not an http(s) origin" in result.stderr


def test_serve_prints_urls_and_first_run_hint_then_serves(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [*TANDEM, "serve", "--port", str(port), "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60  # a bound on failure: a busy machine starts it slowly
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise AssertionError("server did not answer")
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=20)
    assert f"http://127.0.0.1:{port}/console/" in output
    assert f"http://127.0.0.1:{port}/demo/" in output
    assert "tandem user add alice --role agent" in output


def test_env_variables_configure_serve(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "TANDEM_PORT": "0"}
    result = run("serve", "--data-dir", str(tmp_path), env=env)
    assert result.returncode == 2 and "port must be between" in result.stderr


def test_an_operator_sets_up_a_second_organisation(tmp_path: Path) -> None:
    data = ("--data-dir", str(tmp_path))
    created = run("org", "add", "acme", "--name", "Acme Bank", "--team", "support", *data)
    assert created.returncode == 0, created.stderr
    again = run("org", "add", "acme", "--name", "Acme Bank", *data)
    assert again.returncode == 2 and "already exists" in again.stderr
    assert run("org", "add-team", "acme", "claims", *data).returncode == 0
    site = run(
        "site",
        "add",
        "acme-shop",
        "--org",
        "acme",
        "--origin",
        "https://shop.acme.example/",
        "--team",
        "support",
        *data,
    )
    assert site.returncode == 0, site.stderr
    missing_team = run(
        "site",
        "add",
        "x",
        "--org",
        "acme",
        "--origin",
        "https://x.example",
        "--team",
        "nope",
        *data,
    )
    assert missing_team.returncode == 2 and "no team named 'nope'" in missing_team.stderr
    wrong_org = run("user", "add", "eve", "--org", "nope", *data, stdin="blue-kettle-orbit-42\n")
    assert wrong_org.returncode == 2 and "no organisation named 'nope'" in wrong_org.stderr
    user = run(
        "user",
        "add",
        "carol",
        "--org",
        "acme",
        "--team",
        "claims",
        *data,
        stdin="blue-kettle-orbit-42\n",
    )
    assert user.returncode == 0 and "in organisation 'acme'" in user.stdout
    listing = run("site", "list", *data).stdout.splitlines()
    assert "acme-shop\tacme\thttps://shop.acme.example\tsupport" in listing
    assert "demo\tdefault\tself\tsupport" in listing
    verify = run("audit", "verify", *data)
    assert verify.returncode == 0, verify.stderr
    exported = run("audit", "export", *data).stdout
    for action in ("org_created", "team_created", "site_created", "user_created"):
        assert f'"action": "{action}"' in exported


def test_serve_says_when_redis_cannot_be_reached(tmp_path: Path) -> None:
    import os

    env = {
        **os.environ,
        "TANDEM_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",  # checked after Redis
        "TANDEM_REDIS_URL": "redis://:secret-pw@127.0.0.1:1/0",
    }
    result = run("serve", "--data-dir", str(tmp_path), env=env)
    assert result.returncode == 2
    assert "cannot reach Redis" in result.stderr
    assert "secret-pw" not in result.stderr + result.stdout  # never the password
    assert "Traceback" not in result.stderr


def test_user_passwd_sets_a_password_and_ends_sign_ins(tmp_path: Path) -> None:
    data = ("--data-dir", str(tmp_path))
    add = run("user", "add", "bob", "--no-mfa", *data, stdin="blue-kettle-orbit-42\n")
    assert add.returncode == 0, add.stderr
    weak = run("user", "passwd", "bob", *data, stdin="short\n")
    assert weak.returncode == 2 and weak.stderr.startswith("tandem: password too short")
    done = run("user", "passwd", "bob", "--temporary", *data, stdin="green-lantern-tide-77\n")
    assert done.returncode == 0, done.stderr
    assert "must be changed at the next sign-in" in done.stdout
    missing = run("user", "passwd", "nobody", *data, stdin="green-lantern-tide-77\n")
    assert missing.returncode == 2 and "no user named 'nobody'" in missing.stderr


def test_user_sso_needs_the_organisations_provider_first(tmp_path: Path) -> None:
    data = ("--data-dir", str(tmp_path))
    assert (
        run(
            "user",
            "add",
            "aud",
            "--role",
            "auditor",
            "--no-mfa",
            *data,
            stdin="blue-kettle-orbit-42\n",
        ).returncode
        == 0
    )
    unset = run("user", "sso", "aud", "sub-1", *data)
    assert unset.returncode == 2 and "identity provider first" in unset.stderr
