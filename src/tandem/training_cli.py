"""`tandem training`: where an organisation's accounts stand (tandem.training), and, for the
operator, recording training done elsewhere (audited, with a reason).

Added to the main command by :mod:`tandem.cli` (``app.add_typer(training_cli.app, ...)``).
"""

from __future__ import annotations

import asyncio
import datetime
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated

import typer

from tandem.access import Grant
from tandem.config import Settings
from tandem.directory import Directory, offline
from tandem.exceptions import ConfigError, TandemError
from tandem.storage.base import DEFAULT_ORG
from tandem.training import Standing, Training

app = typer.Typer(
    help="Training before live sessions: policy acknowledgements and practice (docs/training.md).",
    no_args_is_help=True,
)

Org = Annotated[str, typer.Option("--org", help="The organisation (default: 'default').")]
DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Directory holding the database [env TANDEM_DATA_DIR; default ./data]."
    ),
]


def _run(data_dir: Path | None, work: Callable[[Directory, Training], Awaitable[None]]) -> None:
    async def run() -> None:
        async with offline(settings) as directory:
            training = Training(
                directory.storage,
                settings,
                directory.clock,
                directory.entropy,
                directory.box,
                directory.record,
            )
            await work(directory, training)

    try:
        settings = Settings.load(data_dir=data_dir)
        asyncio.run(run())
    except TandemError as exc:
        typer.echo(f"tandem: {exc}", err=True)
        raise typer.Exit(2) from None


def _day(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%d")


def _line(s: Standing) -> str:
    live = s.role in ("agent", "supervisor")
    policy = "n/a" if s.role == "admin" else f"v{s.acknowledged}" if s.acknowledged else "never"
    trained = "n/a"
    if live:
        trained = "never"
        if s.training:
            trained = (
                f"{_day(s.training.completed_at)} v{s.training.policy_version} {s.training.method}"
            )
    due = _day(s.due_at) if live else "n/a"
    state = "trained" if s.trained else "NOT TRAINED"
    return f"{s.username:<20} {s.role:<10} {policy:<7} {trained:<26} {due:<10} {state}"


@app.command("status")
def status(
    org: Org = DEFAULT_ORG,
    output: Annotated[str, typer.Option("--format", help="text or json.")] = "text",
    data_dir: DataDir = None,
) -> None:
    """Who is trained, when, on which policy version, and when practice is due again."""
    if output not in ("text", "json"):
        typer.echo(f"tandem: --format is text or json, not {output!r}", err=True)
        raise typer.Exit(2)
    lines: list[str] = []

    async def work(directory: Directory, training: Training) -> None:
        grant = Grant.operator(org)
        if await directory.storage.get_org(grant) is None:
            raise ConfigError(f"no organisation {org!r}")
        policy = await training.policy(grant)
        interval = await training.interval(grant)
        standings = await training.roster(grant, await directory.storage.list_users(grant))
        untrained = [s.username for s in standings if not s.trained]
        if output == "json":
            document = {
                "org_id": org,
                "policy_version": policy.version,
                "interval_days": interval,
                "untrained": untrained,
                "users": [s.to_json() for s in standings],
            }
            lines.append(json.dumps(document, indent=2))
            return
        lines.append(
            f"Organisation {org}: policy version {policy.version}, re-training every "
            f"{interval} days; {len(untrained)} of {len(standings)} accounts not trained."
        )
        lines.append(f"{'user':<20} {'role':<10} {'policy':<7} {'trained':<26} {'due':<10} status")
        lines.extend(_line(s) for s in standings)

    _run(data_dir, work)
    typer.echo("\n".join(lines))


@app.command("record")
def record(
    username: Annotated[str, typer.Argument(help="The account that was trained.")],
    reason: Annotated[
        str,
        typer.Option(
            "--reason", help="Where and how the training was done (kept in the audit trail)."
        ),
    ],
    org: Org = DEFAULT_ORG,
    data_dir: DataDir = None,
) -> None:
    """Record training done elsewhere (a classroom course, a test installation's set-up): the
    account acknowledges the current policy and counts as trained from now. Audited with the
    reason; the admin's list shows it as `operator`, not as a practice session."""
    done: list[str] = []

    async def work(directory: Directory, training: Training) -> None:
        user = await directory.storage.get_user(username)
        if user is None or user.org_id != org:
            raise ConfigError(f"no user {username!r} in organisation {org!r}")
        record = await training.record_by_operator(Grant.operator(org), user, reason)
        done.append(f"Recorded training of {username} (policy version {record.policy_version}).")

    _run(data_dir, work)
    typer.echo(done[0])
