"""Administration of an organisation: users, teams, sites (with their policies) and retention.

The admin HTTP API and the CLI both go through here, so every change is validated, authorised by
:func:`tandem.access.authorize` and written to the audit trail the same way. The CLI acts as an
admin of the organisation it names (it has the database in hand anyway).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

from tandem import auth, crypto, oidc, outbound, site_verification
from tandem.access import Grant, Principal, Resource, authorize
from tandem.audit import AuditLog, check_key_for_trail, load_or_create_key
from tandem.config import Settings, normalize_origin
from tandem.exceptions import (
    ConfigError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    StorageError,
)
from tandem.names import name_refusal
from tandem.policy import MaskingPolicy, policy_json
from tandem.storage.base import (
    DEFAULT_ORG,
    SELF_ORIGIN,
    SET_ASIDE_BY_BINDING,
    OrgRecord,
    SiteRecord,
    Storage,
    UserRecord,
)

Recorder = Callable[..., Awaitable[None]]
"""``record(action, actor=, org=, subject=, **details)``: appends to the audit trail."""

MAX_RETENTION_DAYS = 3650


class Revoker(Protocol):
    """Announces what open sockets to re-check (:func:`tandem.revocation.announce`)."""

    def __call__(self, *, user: str = "", site: str = "", org: str = "") -> None: ...


def _no_announcement(*, user: str = "", site: str = "", org: str = "") -> None:
    """The CLI's: no server process hears it; their periodic re-check does the same later."""


@contextlib.asynccontextmanager
async def offline(settings: Settings) -> AsyncIterator[Directory]:
    """A directory on the embedded database, for the CLI (the server may be running: SQLite's
    WAL mode lets both write). Changes are audited with the server's anchoring key."""
    from tandem.storage import open_storage

    storage = await open_storage(settings)
    try:
        await check_key_for_trail(storage, settings.audit_key_path)
        log = AuditLog(
            storage, load_or_create_key(settings.audit_key_path), settings.audit_anchor_every
        )

        async def record(action: str, **fields: Any) -> None:
            # The change is made by now: a refused record must not read as a change refused
            # (it said "the database refused the change", and the account stayed disabled with
            # no record of it). The operator is told what is not on the trail, to note it.
            at = time.time()
            try:
                await log.record(at, action, **fields)
            except (StorageError, ConflictError) as exc:
                when = datetime.datetime.fromtimestamp(at, datetime.UTC).isoformat(
                    timespec="seconds"
                )
                kind = StorageError if isinstance(exc, StorageError) else ConflictError
                raise kind(
                    f"the change was made, but its audit record could not be written ({exc}): "
                    f"{action} of {fields.get('subject') or '-'} by {fields.get('actor') or '-'} "
                    f"at {when} is not on the audit trail; note it where your auditors will "
                    "find it"
                ) from exc

        yield Directory(
            storage,
            record,
            time.time,
            crypto.SecretBox(settings.secrets_key_path),
            reserved_origins=frozenset(settings.allow_origins),
            allow_private_network=settings.test_private_network,
        )
        # PostgreSQL: what the command erased or purged leaves the tables' pages now, as after
        # a server's own deletions (its vacuum task); nobody else would until autovacuum.
        try:
            await storage.vacuum_deleted()
        except StorageError as exc:  # what was erased stays erased; vacuumed later
            logging.getLogger("tandem.directory").warning(
                "vacuum after the deletions failed (the next server start vacuums those "
                "tables, or autovacuum): %s",
                exc,
            )
    finally:
        await storage.close()


async def check_allowed_origins(storage: Storage, origins: tuple[str, ...]) -> None:
    """Raise ConfigError (one line) if another organisation than the default one holds one of
    the operator's ``--allow-origin`` origins verified: the server must not start over the
    conflict. Unproved registrations elsewhere do not stop it (they can never be verified once
    the default organisation holds the origin)."""
    for origin in origins:
        held = await storage.site_for_origin(origin)
        if held is not None and held.org_id != DEFAULT_ORG:
            raise ConfigError(
                f"--allow-origin {origin} is already site {held.site_id!r} of organisation "
                f"{held.org_id!r}: remove the option or that site"
            )


def operator(org: str) -> Principal:
    """The principal the CLI acts as: an admin of ``org``, with the second factor not required,
    who may also manage auditor accounts."""
    return Principal(
        username="cli", display_name="Operator (CLI)", role="admin", org=org, operator=True
    )


def _guard_auditors(actor: Principal, *roles: str) -> None:
    """Separation of duties: auditors check admins, so an organisation's admin neither makes
    auditors nor takes over, removes or re-binds one (password, second factor, provider
    identity); only the operator does (docs/security.md)."""
    if "auditor" in roles and not actor.operator:
        raise ForbiddenError(
            "only the server's operator manages auditor accounts (tandem user ..., "
            "docs/administration.md)"
        )


def site_json(site: SiteRecord) -> dict[str, object]:
    """A site as the API shows it (never its token key)."""
    return {
        "site_id": site.site_id,
        "origin": site.origin,
        "name": site.name,
        "teams": list(site.teams),
        "policy": json.loads(site.policy) if site.policy else None,
        "require_token": site.require_token,
        "has_token_key": site.token_key is not None,
        "verified": site.verified,
    }


def _sso_json(value: dict[str, Any]) -> dict[str, Any]:
    """The organisation's provider as the API shows it: never its client secret."""
    return {
        "issuer": value["issuer"],
        "client_id": value["client_id"],
        "mfa_acr": list(value.get("mfa_acr", [])),
        "mfa_amr": list(value.get("mfa_amr", [])),
    }


MAX_ASSURANCE_VALUE = 200
"""Characters of one ``acr`` or ``amr`` value an organisation requires (a URN at most)."""


def _provider_of(settings: dict[str, Any]) -> tuple[object, ...]:
    """What a sign-in through the provider relied on: who signed its ID token, for which
    client, showing which second factor (not the client secret, which only Tandem shows)."""
    return (
        settings.get("issuer"),
        settings.get("client_id"),
        list(settings.get("mfa_acr", [])),  # absent from what older versions stored: none
        list(settings.get("mfa_amr", [])),
    )


def _assurance_values(values: Sequence[str] | None, name: str) -> list[str] | None:
    """``acr``/``amr`` values as set: each 1-200 visible ASCII characters without spaces (they
    are sent space-separated in ``acr_values``), duplicates dropped."""
    if values is None:
        return None
    checked: list[str] = []
    for value in values:
        if not (
            isinstance(value, str)
            and 1 <= len(value) <= MAX_ASSURANCE_VALUE
            and all("!" <= ch <= "~" for ch in value)
        ):
            raise ConfigError(
                f"each {name} value is 1-{MAX_ASSURANCE_VALUE} visible ASCII characters "
                "without spaces"
            )
        if value not in checked:
            checked.append(value)
    return checked


def user_json(user: UserRecord, now: float, temporary_ttl: float) -> dict[str, object]:
    """An account as the Users page shows it; ``temporary_password_expired`` as of ``now``
    for a server whose temporary passwords last ``temporary_ttl`` seconds."""
    return {
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role,
        "teams": list(user.teams),
        "second_factor": bool(user.totp_secret),
        "mfa_exempt": user.mfa_exempt,
        "sso_bound": user.oidc_identity is not None,
        "password_change_required": user.password_change_required,
        "temporary_password_expired": auth.temporary_password_expired(user, now, temporary_ttl),
        "disabled": user.disabled,
    }


class Directory:
    def __init__(
        self,
        storage: Storage,
        record: Recorder,
        clock: Callable[[], float],
        box: crypto.SecretBox,
        entropy: crypto.Entropy = crypto.system_entropy,
        reserved_origins: frozenset[str] = frozenset(),
        allow_private_network: bool = False,
        *,
        revoked: Revoker = _no_announcement,
        hashing: crypto.PasswordHashing | None = None,
    ) -> None:
        """``reserved_origins``: the operator's ``--allow-origin`` list, which only the default
        organisation's sites (made at start-up) may hold. ``hashing``: the server's bounded
        password hashing, off its event loop (the CLI hashes in place)."""
        self.storage = storage
        self.reserved_origins = reserved_origins
        self.allow_private_network = allow_private_network
        """Test only (``test_private_network``): http and loopback identity providers."""
        self.record = record
        self.clock = clock
        self.box = box
        self.entropy = entropy
        self.revoked = revoked
        self.hashing = hashing
        """Told (by keyword) the account whose sign-ins ended or that changed, the site whose
        teams changed or that went, or the organisation one of whose teams went, so that the
        open sockets concerned are checked again at once (tandem.revocation)."""

    # Organisation

    async def add_org(self, org_id: str, name: str) -> OrgRecord:
        """Operators only (CLI): there is no HTTP route that creates organisations."""
        auth.validate_name(org_id, "organisation id")
        org = OrgRecord(org_id, _label(name, "organisation name"), self.clock())
        await self.storage.add_org(org)
        await self.record("org_created", actor="cli", org=org_id, subject=org_id)
        return org

    async def get_org(self, actor: Principal) -> OrgRecord:
        grant = authorize(actor, "org.manage", Resource(actor.org))
        org = await self.storage.get_org(grant)
        if org is None:
            raise NotFoundError("not found")
        return org

    async def update_org(
        self, actor: Principal, name: str | None, retention_days: int | None
    ) -> OrgRecord:
        grant = authorize(actor, "org.manage", Resource(actor.org))
        org = await self.get_org(actor)
        if retention_days is not None and not 1 <= retention_days <= MAX_RETENTION_DAYS:
            raise _invalid(f"retention_days must be between 1 and {MAX_RETENTION_DAYS}")
        updated = dataclasses.replace(
            org,
            name=_label(name, "organisation name") if name is not None else org.name,
            retention_days=retention_days if retention_days is not None else org.retention_days,
        )
        await self.storage.update_org(grant, updated)
        await self.record(
            "retention_changed" if updated.retention_days != org.retention_days else "org_changed",
            actor=actor.username,
            org=org.org_id,
            subject=org.org_id,
            retention_days=updated.retention_days,
        )
        return updated

    async def set_recording_key(self, actor: Principal, public_key: str | None) -> OrgRecord:
        """Set (or, with None, remove) the organisation's recording public key. Sessions
        record only while there is one; recordings made under an earlier key stay readable
        with that key's file."""
        grant = authorize(actor, "org.manage", Resource(actor.org))
        org = await self.get_org(actor)
        changed = public_key if public_key is not None else org.recording_key
        key_id = crypto.recording_key_id(changed) if changed else ""
        updated = dataclasses.replace(org, recording_key=public_key)
        await self.storage.update_org(grant, updated)
        await self.record(
            "recording_key_set" if public_key else "recording_key_removed",
            actor=actor.username,
            org=org.org_id,
            subject=org.org_id,
            key_id=key_id,
        )
        return updated

    async def get_sso(self, actor: Principal) -> dict[str, Any] | None:
        grant = authorize(actor, "org.manage", Resource(actor.org))
        sealed = await self.storage.get_oidc(grant)
        if not sealed:
            return None
        return _sso_json(json.loads(self.box.open(sealed)))  # never the secret

    async def set_sso(
        self,
        actor: Principal,
        issuer: str,
        client_id: str,
        client_secret: str,
        mfa_acr: Sequence[str] | None = None,
        mfa_amr: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """The organisation's OpenID Connect provider (docs/administration.md). ``mfa_acr`` and
        ``mfa_amr``: the ``acr`` values, or ``amr`` values, of which the ID token must assert one
        (the provider's second factor; both empty: none required, and the compliance check's
        "mfa" item fails for accounts bound to the provider); None keeps what was set, so a
        provider saved again without them (a new client secret) is not weakened."""
        grant = authorize(actor, "org.manage", Resource(actor.org))
        acr = _assurance_values(mfa_acr, "mfa_acr")
        amr = _assurance_values(mfa_amr, "mfa_amr")
        current = await self.storage.get_oidc(grant)
        kept = self._stored_provider(current, keeping=acr is None or amr is None)
        acr = list(kept.get("mfa_acr", [])) if acr is None else acr
        amr = list(kept.get("mfa_amr", [])) if amr is None else amr
        outbound.check_url(issuer, "issuer", allow_private=self.allow_private_network)
        parts = urlsplit(issuer)
        if parts.query or parts.fragment or not parts.hostname:
            raise ConfigError("the issuer is a plain URL without query or fragment")
        if not client_id.strip() or not client_secret:
            raise ConfigError("client_id and client_secret are required")
        value = {
            "issuer": issuer.rstrip("/"),
            "client_id": client_id,
            "client_secret": client_secret,
            "mfa_acr": acr,
            "mfa_amr": amr,
        }
        # Another provider, client or second factor required: what vouched for the sign-ins
        # made through the old one is gone (an admin who finds its provider taken over changes
        # it). A new client secret alone keeps them. Ended before the write too: should ending
        # them after it fail, the admin's second save finds the settings already stored, and
        # nothing changed.
        changed = bool(current) and _provider_of(kept) != _provider_of(value)
        if changed:
            await self._end_provider_sign_ins(grant, actor.org)
        await self.storage.set_oidc(grant, self.box.seal(json.dumps(value)))
        if changed:  # those finishing meanwhile: stored before the write, seen only now
            await self._end_provider_sign_ins(grant, actor.org)
        await self.record(
            "sso_configured",
            actor=actor.username,
            org=actor.org,
            subject=actor.org,
            issuer=issuer,
            mfa_acr=acr,
            mfa_amr=amr,
        )
        return _sso_json(value)

    def _stored_provider(self, current: str | None, *, keeping: bool) -> dict[str, Any]:
        """The provider's settings as stored, to compare the new ones with (and keep the lists
        not given): ``{}`` for none, and for settings sealed under a secrets key this server no
        longer has (lost, or restored from elsewhere), which differ from any (their sign-ins
        end). Raises ConfigError for those when ``keeping`` a list only they hold."""
        if not current:
            return {}
        try:
            return dict(json.loads(self.box.open(current)))
        except ConfigError:
            if keeping:
                raise ConfigError(
                    "the stored single sign-on settings cannot be decrypted (the secrets key was"
                    " replaced?): save them again with mfa_amr and mfa_acr given, or remove"
                    " single sign-on first"
                ) from None
            return {}

    async def clear_sso(self, actor: Principal) -> None:
        """Turn the organisation's provider off: every sign-in made through it ends (on every
        server: its sockets close), so a provider taken over and then removed keeps no one
        signed in for the rest of the sign-in's lifetime."""
        grant = authorize(actor, "org.manage", Resource(actor.org))
        # Ended first too: a removal whose ending failed (the database away) would otherwise
        # look done, the provider off, with its sign-ins still on.
        await self._end_provider_sign_ins(grant, actor.org)
        await self.storage.set_oidc(grant, None)
        await self._end_provider_sign_ins(grant, actor.org)
        await self.record("sso_removed", actor=actor.username, org=actor.org, subject=actor.org)

    async def _end_provider_sign_ins(self, grant: Grant, org: str) -> None:
        """After the provider's settings changed (written first: a sign-in finishing meanwhile
        reads them again once stored, :func:`tandem.server.sso.callback`)."""
        if await self.storage.delete_logins_by_method(grant, auth.OIDC):
            self.revoked(org=org)

    # Teams

    async def list_teams(self, actor: Principal) -> list[str]:
        grant = authorize(actor, "teams.manage", Resource(actor.org))
        return await self.storage.list_teams(grant)

    async def add_team(self, actor: Principal, team: str) -> None:
        grant = authorize(actor, "teams.manage", Resource(actor.org))
        auth.validate_name(team, "team name")
        await self.storage.add_team(grant, team)
        await self.record("team_created", actor=actor.username, org=actor.org, subject=team)

    async def get_team(self, actor: Principal, team: str) -> dict[str, object]:
        """A team and its own policy (None when it has none)."""
        grant = authorize(actor, "teams.manage", Resource(actor.org))
        if team not in await self.storage.list_teams(grant):
            raise NotFoundError(f"no team named {team!r}")
        text = (await self.storage.team_policies(grant, (team,))).get(team)
        return {"team": team, "policy": json.loads(text) if text else None}

    async def set_team_policy(
        self, actor: Principal, team: str, policy: MaskingPolicy | None
    ) -> dict[str, object] | None:
        """A team's own policy: its page rules and masks apply to every session its agents
        join, on top of the site's and the organisation's (they can only add restrictions)."""
        grant = authorize(actor, "teams.manage", Resource(actor.org))
        text = _policy_text(policy)
        if not await self.storage.set_team_policy(grant, team, text):
            raise NotFoundError(f"no team named {team!r}")
        await self.record(
            "policy_changed", actor=actor.username, org=actor.org, subject=f"team:{team}"
        )
        return json.loads(text) if text else None

    async def delete_team(self, actor: Principal, team: str) -> None:
        grant = authorize(actor, "teams.manage", Resource(actor.org))
        if not await self.storage.delete_team(grant, team):
            raise NotFoundError(f"no team named {team!r}")
        # Its members no longer serve its sites: their sockets in those sessions are checked.
        self.revoked(org=actor.org)
        await self.record("team_deleted", actor=actor.username, org=actor.org, subject=team)

    # Users

    async def _user(self, actor: Principal, username: str) -> UserRecord:
        user = await self.storage.get_user(username)
        # Another organisation's user is answered exactly like a missing one.
        if user is None or user.org_id != actor.org:
            raise NotFoundError(f"no user named {username!r}")
        authorize(actor, "users.manage", Resource(user.org_id))
        return user

    async def get_user(self, actor: Principal, username: str) -> UserRecord:
        """One account of the actor's organisation (NotFoundError for any other)."""
        return await self._user(actor, username)

    async def list_users(self, actor: Principal) -> list[UserRecord]:
        grant = authorize(actor, "users.manage", Resource(actor.org))
        return await self.storage.list_users(grant)

    async def add_user(
        self,
        actor: Principal,
        username: str,
        password: str,
        role: str,
        display_name: str | None,
        teams: tuple[str, ...] | None,
        *,
        enrol_now: bool = False,
        mfa_exempt: bool = False,
        change_required: bool = True,
    ) -> tuple[UserRecord, auth.Enrolment | None]:
        """A new account of the actor's organisation, the owner's and not its creator's:
        ``password`` is temporary (``change_required``), so the account's first password
        sign-in may do nothing but choose its own (not the same one), and its second factor is
        set up by the owner at that sign-in, after the new password, in the console: its
        creator never sees the seed nor the recovery codes. Only the operator may make an
        account of its own (the server's first admin, ``tandem user add --own-account``): the
        password it typed stays (``change_required`` False) and the second factor is made now
        and returned to be shown once (``enrol_now``). An admin's new account is always so
        (ForbiddenError otherwise). Audited (``user_created``: what the creator was left
        with, never a secret)."""
        grant = authorize(actor, "users.manage", Resource(actor.org))
        _guard_auditors(actor, role)
        if (enrol_now or not change_required) and not actor.operator:
            raise ForbiddenError(
                "an account an admin creates has a temporary password and sets up its own "
                "second factor at first sign-in"
            )
        if display_name is not None:  # checked as a change of it is (it was stored as given)
            display_name = _label(display_name, "display name")
        user, enrolment = await auth.create_user(
            self.storage,
            username,
            password,
            role,
            display_name,
            self.clock(),
            box=self.box if enrol_now and not mfa_exempt else None,
            entropy=self.entropy,
            grant=grant,
            teams=teams,
            mfa_exempt=mfa_exempt,
            hashing=self.hashing,
            client=f"user:{actor.username}",
            password_change_required=change_required,
            chosen_by=actor.username,
        )
        if mfa_exempt:
            second_factor = "none"
        elif enrolment is not None:
            second_factor = "shown_to_creator"
        else:
            second_factor = "owner_at_first_sign_in"
        await self.record(
            "user_created",
            actor=actor.username,
            org=actor.org,
            subject=username,
            role=user.role,
            teams=list(user.teams),
            mfa_exempt=mfa_exempt,
            password="temporary" if change_required else "kept_by_creator",
            second_factor=second_factor,
        )
        return user, enrolment

    async def update_user(
        self,
        actor: Principal,
        username: str,
        role: str | None = None,
        display_name: str | None = None,
        teams: tuple[str, ...] | None = None,
    ) -> UserRecord:
        user = await self._user(actor, username)
        new_role = auth.validate_role(role) if role is not None else user.role
        if new_role != user.role:
            _guard_auditors(actor, user.role, new_role)
        if username == actor.username and new_role != user.role:
            raise ConflictError("you cannot change your own role; ask another admin")
        if user.role == "admin" and new_role != "admin":
            await self._keep_an_admin(actor, user)
        name = _label(display_name, "display name") if display_name is not None else None
        # Every write names the organisation: the name checked above may be another
        # organisation's account by now (deleted here, made there meanwhile).
        grant = authorize(actor, "users.manage", Resource(user.org_id))
        if teams is not None:
            for team in teams:
                auth.validate_name(team, "team name")
        if not await self.storage.update_user(
            grant, username, role=new_role, display_name=name or user.display_name
        ):
            raise NotFoundError(f"no user named {username!r}")
        if teams is not None:
            await self.storage.set_user_teams(grant, username, teams)
        updated = await self._user(actor, username)
        if updated.role != user.role or updated.teams != user.teams:
            self.revoked(user=username)
        if updated.role != user.role:
            await self.record(
                "role_changed",
                actor=actor.username,
                org=user.org_id,
                subject=username,
                before=user.role,
                after=updated.role,
            )
        if updated.teams != user.teams:
            await self.record(
                "teams_changed",
                actor=actor.username,
                org=user.org_id,
                subject=username,
                before=list(user.teams),
                after=list(updated.teams),
            )
        return updated

    async def _keep_an_admin(self, actor: Principal, leaving: UserRecord) -> None:
        grant = authorize(actor, "users.manage", Resource(leaving.org_id))
        admins = [
            u for u in await self.storage.list_users(grant) if u.role == "admin" and not u.disabled
        ]
        if [u.username for u in admins] == [leaving.username]:
            raise ConflictError("an organisation keeps at least one admin")

    async def delete_user(self, actor: Principal, username: str) -> None:
        user = await self._user(actor, username)
        _guard_auditors(actor, user.role)
        if username == actor.username:
            raise ConflictError("you cannot delete your own account; ask another admin")
        if user.role == "admin":
            await self._keep_an_admin(actor, user)
        grant = authorize(actor, "users.manage", Resource(user.org_id))
        if not await self.storage.delete_user(grant, username):  # its sign-ins go with it
            raise NotFoundError(f"no user named {username!r}")
        self.revoked(user=username)
        await self.record("user_deleted", actor=actor.username, org=user.org_id, subject=username)

    async def set_disabled(self, actor: Principal, username: str, disabled: bool) -> UserRecord:
        """Disable an account (it keeps its data; its sign-ins end now and no new one opens, its
        sockets close) or enable it again. An admin cannot disable itself nor the last enabled
        admin, and only the operator disables or enables auditors. Audited."""
        user = await self._user(actor, username)
        _guard_auditors(actor, user.role)
        if disabled and username == actor.username:
            raise ConflictError("you cannot disable your own account; ask another admin")
        if disabled and user.role == "admin" and not user.disabled:
            await self._keep_an_admin(actor, user)
        if user.disabled == disabled:
            return user
        grant = authorize(actor, "users.manage", Resource(user.org_id))
        if not await self.storage.set_user_disabled(grant, username, disabled):
            raise NotFoundError(f"no user named {username!r}")
        if disabled:
            await self.storage.delete_logins_of(grant, username)
            self.revoked(user=username)
        await self.record(
            "user_disabled" if disabled else "user_enabled",
            actor=actor.username,
            org=user.org_id,
            subject=username,
        )
        return dataclasses.replace(user, disabled=disabled)

    async def reset_second_factor(self, actor: Principal, username: str) -> UserRecord:
        """Remove a user's authenticator (lost phone): they set a new one up at next sign-in,
        and every sign-in of theirs ends now. Not one's own (another admin, or the operator,
        does it): it asks for no re-authentication, so whoever held an admin's sign-in for a
        while and knew the password would swap in an authenticator of its own. Returns the
        account as it was: one with ``mfa_exempt`` (``--no-mfa``) had none and sets none up."""
        user = await self._user(actor, username)
        _guard_auditors(actor, user.role)
        if username == actor.username:
            raise ConflictError("you cannot reset your own second factor; ask another admin")
        grant = authorize(actor, "users.manage", Resource(user.org_id))
        if not await self.storage.set_second_factor(grant, username, None, ()):
            raise NotFoundError(f"no user named {username!r}")
        await self.storage.delete_logins_of(grant, username)
        self.revoked(user=username)
        await self.record("mfa_reset", actor=actor.username, org=user.org_id, subject=username)
        return user

    async def bind_sso_identity(
        self, actor: Principal, username: str, subject: str | None
    ) -> UserRecord:
        """Bind ``username`` to the account ``subject`` (the ``sub`` claim) at the
        organisation's identity provider, as configured now; None unbinds. Sign-in through the
        provider reaches only accounts bound this way. Ends the user's sign-ins when it changes
        a binding."""
        user = await self._user(actor, username)
        _guard_auditors(actor, user.role)
        identity = None
        if subject is not None:
            if not 1 <= len(subject) <= 255 or any(ord(c) < 32 for c in subject):
                raise _invalid("a subject is 1-255 printable characters")
            provider = await self.get_sso(actor)
            if provider is None:
                raise ConflictError("set up the organisation's identity provider first")
            identity = oidc.identity_key(user.org_id, provider["issuer"], subject)
            holder = await self.storage.user_for_oidc_identity(identity)
            if holder is not None and holder.username != username:
                raise ConflictError("that provider account is bound to another user")
        grant = authorize(actor, "users.manage", Resource(user.org_id))
        if (
            identity is not None
            and user.oidc_identity is None
            and not user.password_change_required
            and not actor.operator
        ):
            # Bound by an admin, the account signs in through the provider: its password
            # becomes temporary, which signs in no account bound to the provider
            # (tandem.auth.sign_in), and its sign-ins end. Else an admin who chose a new
            # account's password and set up its authenticator before its owner (who signs in
            # through the provider, never locked out) kept that sign-in once it bound it.
            await self.storage.set_password(
                grant,
                username,
                user.password_hash,
                True,
                at=self.clock(),
                chosen_by=SET_ASIDE_BY_BINDING,  # the owner's own, made temporary
                replacing=user.password_hash,
            )
            self.revoked(user=username)
        if not await self.storage.set_oidc_identity(grant, username, identity):
            raise NotFoundError(f"no user named {username!r}")
        if user.oidc_identity is not None and user.oidc_identity != identity:
            await self.storage.delete_logins_of(grant, username)
            self.revoked(user=username)
        await self.record(
            "sso_identity_bound" if identity else "sso_identity_removed",
            actor=actor.username,
            org=user.org_id,
            subject=username,
        )
        return dataclasses.replace(user, oidc_identity=identity)

    async def reset_password(
        self, actor: Principal, username: str, password: str, *, change_required: bool = True
    ) -> None:
        """Give ``username`` a new password (told to them out of band): their sign-ins end now,
        and (``change_required``, always for an admin's reset) their next sign-in must choose a
        new password before anything else."""
        user = await self._user(actor, username)
        _guard_auditors(actor, user.role)
        if username == actor.username:
            raise ConflictError("change your own password instead (console: Security)")
        auth.check_password_strength(password, username)
        if not change_required and not actor.operator:
            raise ForbiddenError("an admin's password reset is always temporary")
        # The new password and the end of every sign-in in one transaction: a socket's sign-in
        # check in between would see a live sign-in of an account that must change its password.
        hashed = await auth.hash_password(self.hashing, f"user:{actor.username}", password)
        # The organisation's account only: while the password hashed (a tenth of a second, or
        # as long as the hashing queue is), the name may have been deleted here and made
        # another organisation's account (NotFoundError, nothing written).
        grant = authorize(actor, "users.manage", Resource(user.org_id))
        await self.storage.set_password(
            grant,
            username,
            hashed,
            change_required,
            at=self.clock(),
            chosen_by=actor.username if change_required else None,
        )
        self.revoked(user=username)
        await self.record(
            "password_reset",
            actor=actor.username,
            org=user.org_id,
            subject=username,
            password="temporary" if change_required else "lasting",
        )

    # Sites

    async def _site(self, actor: Principal, site_id: str) -> SiteRecord:
        site, _ = await self._site_granted(actor, site_id)
        return site

    async def _site_granted(self, actor: Principal, site_id: str) -> tuple[SiteRecord, Grant]:
        """The actor's site and the grant to change it."""
        site = await self.storage.get_site(site_id)
        # Another organisation's site is answered exactly like a missing one.
        if site is None or site.org_id != actor.org:
            raise NotFoundError(f"no site named {site_id!r}")
        return site, authorize(actor, "sites.manage", Resource(site.org_id))

    async def list_sites(self, actor: Principal) -> list[SiteRecord]:
        grant = authorize(actor, "sites.manage", Resource(actor.org))
        return await self.storage.list_sites(grant)

    async def get_site(self, actor: Principal, site_id: str) -> SiteRecord:
        return await self._site(actor, site_id)

    async def add_site(
        self,
        actor: Principal,
        site_id: str,
        origin: str,
        name: str | None,
        teams: tuple[str, ...],
        policy: MaskingPolicy | None = None,
        require_token: bool = False,
    ) -> SiteRecord:
        grant = authorize(actor, "sites.manage", Resource(actor.org))
        auth.validate_name(site_id, "site id")
        for team in teams:
            auth.validate_name(team, "team name")
        normalized = origin if origin == SELF_ORIGIN else normalize_origin(origin)
        site = SiteRecord(
            site_id=site_id,
            org_id=actor.org,
            origin=normalized,
            name=_label(name or site_id, "site name"),
            teams=tuple(sorted(set(teams))),
            policy=_policy_text(policy),
            require_token=require_token,
            # An organisation's admin proves the origin first; the operator vouches for it.
            verified=actor.operator or normalized == SELF_ORIGIN,
        )
        if site.origin in self.reserved_origins and actor.org != DEFAULT_ORG:
            raise site_unavailable(site_id)
        if site.origin == SELF_ORIGIN and actor.org != DEFAULT_ORG:
            raise site_unavailable(site_id)  # the server's own pages are the operator's
        # Only a verified site holds its origin: another organisation's unproved registration
        # of it blocks no one, and is not revealed (this answer is the same whether it exists).
        held = await self.storage.site_for_origin(site.origin)
        if held is not None and held.org_id != actor.org:
            raise site_unavailable(site_id)
        try:
            await self.storage.add_site(grant, site)
        except ConflictError:
            raise site_unavailable(site_id) from None
        await self.record(
            "site_created",
            actor=actor.username,
            org=actor.org,
            subject=site_id,
            origin=site.origin,
            teams=list(site.teams),
        )
        return site

    async def update_site(
        self,
        actor: Principal,
        site_id: str,
        *,
        name: str | None = None,
        teams: tuple[str, ...] | None = None,
        policy: MaskingPolicy | None = None,
        clear_policy: bool = False,
        require_token: bool | None = None,
    ) -> SiteRecord:
        site, grant = await self._site_granted(actor, site_id)
        for team in teams or ():
            auth.validate_name(team, "team name")
        if require_token and site.token_key is None:
            raise ConflictError("issue a token key for this site first")
        updated = dataclasses.replace(
            site,
            name=_label(name, "site name") if name is not None else site.name,
            teams=tuple(sorted(set(teams))) if teams is not None else site.teams,
            policy=None if clear_policy else (_policy_text(policy) or site.policy),
            require_token=site.require_token if require_token is None else require_token,
        )
        await self.storage.update_site(grant, updated)
        if updated.policy != site.policy:
            await self.record(
                "policy_changed", actor=actor.username, org=site.org_id, subject=site_id
            )
        if updated.teams != site.teams:
            # Agents and supervisors in its sessions whose teams no longer serve it: out now.
            self.revoked(site=site_id)
            await self.record(
                "site_teams_changed",
                actor=actor.username,
                org=site.org_id,
                subject=site_id,
                before=list(site.teams),
                after=list(updated.teams),
            )
        if updated.require_token != site.require_token:
            await self.record(
                "customer_tokens_required" if updated.require_token else "customer_tokens_optional",
                actor=actor.username,
                org=site.org_id,
                subject=site_id,
            )
        return updated

    async def site_verification(self, actor: Principal, site_id: str) -> dict[str, object]:
        """What the site must serve, and where, to prove its origin."""
        site = await self._site(actor, site_id)
        return {
            "verified": site.verified,
            "url": site_verification.url(site),
            "token": site_verification.token(self.box, site),
            "dns_name": site_verification.dns_name(site),
        }

    async def verify_site(
        self,
        actor: Principal,
        site_id: str,
        timeout: float,
        *,
        dns: bool = False,
        nameservers: tuple[str, ...] = (),
    ) -> SiteRecord:
        """Fetch the site's verification page (or, with ``dns``, look up its TXT record); if it
        holds the token, the site is verified and its pages may start sessions. Raises
        ConfigError or ConflictError saying why not."""
        site = await self._site(actor, site_id)
        if site.verified:
            return site
        try:
            await self._not_held_elsewhere(site)  # before any request to the origin
            if dns:
                await site_verification.check_dns(self.box, site, timeout, nameservers)
            else:
                await site_verification.check(
                    self.box, site, timeout, allow_private=self.allow_private_network
                )
        except (ConfigError, ConflictError) as exc:
            await self.record(
                "site_verification_failed",
                actor=actor.username,
                org=site.org_id,
                subject=site_id,
                reason=str(exc),
            )
            raise
        return await self._mark_verified(actor, site, "dns" if dns else "token")

    async def approve_site(self, actor: Principal, site_id: str) -> SiteRecord:
        """The operator vouches for the site's origin (``tandem site approve``)."""
        site = await self._site(actor, site_id)
        if not actor.operator:
            raise ForbiddenError("only the server's operator approves a site without its proof")
        await self._not_held_elsewhere(site)
        return await self._mark_verified(actor, site, "operator")

    async def _not_held_elsewhere(self, site: SiteRecord) -> None:
        """Raise ConflictError (:func:`origin_held`) if another organisation's site holds the
        site's origin verified, or the operator reserved it (``--allow-origin``) for the
        default organisation."""
        if site.origin in self.reserved_origins and site.org_id != DEFAULT_ORG:
            raise origin_held(site)
        held = await self.storage.site_for_origin(site.origin)
        if held is not None and held.site_id != site.site_id:
            raise origin_held(site)

    async def _mark_verified(self, actor: Principal, site: SiteRecord, how: str) -> SiteRecord:
        grant = authorize(actor, "sites.manage", Resource(site.org_id))
        try:
            # Only the flag, not the site as read before the proof (which takes seconds): teams
            # taken off it or a token key replaced meanwhile would come back.
            updated = await self.storage.mark_site_verified(grant, site.site_id, site.origin)
        except ConflictError:
            # Proved at the same moment as another organisation's site: the database lets
            # one of them hold the origin (sites_verified_origin), and it was the other.
            raise origin_held(site) from None
        await self.record(
            "site_verified", actor=actor.username, org=site.org_id, subject=site.site_id, by=how
        )
        return updated

    async def delete_site(self, actor: Principal, site_id: str) -> None:
        site, grant = await self._site_granted(actor, site_id)
        if not await self.storage.delete_site(grant, site_id):  # gone (and its id free) meanwhile
            raise NotFoundError(f"no site named {site_id!r}")
        self.revoked(site=site_id)  # no team serves a site that is gone
        await self.record("site_deleted", actor=actor.username, org=site.org_id, subject=site_id)

    async def issue_token_key(self, actor: Principal, site_id: str) -> str:
        """A new HMAC key for the site's customer tokens (the old one stops working). Shown once;
        stored encrypted."""
        site, grant = await self._site_granted(actor, site_id)
        key = crypto.new_token(self.entropy, 32)
        await self.storage.update_site(
            grant, dataclasses.replace(site, token_key=self.box.seal(key))
        )
        await self.record(
            "site_token_key_issued", actor=actor.username, org=site.org_id, subject=site_id
        )
        return key


def origin_held(site: SiteRecord) -> ConflictError:
    """The answer to proving (or approving) a site whose origin another organisation holds
    verified. It names neither that organisation nor its site; that some site holds the origin
    verified is no secret (its pages start sessions, /sdk/tandem.js answers it with CORS)."""
    return ConflictError(
        f"{site.origin} is already verified by another organisation on this server: "
        f"site {site.site_id!r} cannot be verified while it is (ask the server's operator)"
    )


def site_unavailable(site_id: str) -> ConflictError:
    """The one answer for a site that cannot be created: its id is taken, its origin is this
    organisation's already, or held verified by another one, or reserved by the operator (which
    must not be told apart). Another organisation's unproved registration of the origin is no
    reason: it neither blocks nor shows."""
    return ConflictError(f"the site id {site_id!r} or its origin is not available")


def _label(value: str | None, what: str) -> str:
    """A name people read (organisation, site, display name), trimmed: refused with
    :func:`tandem.names.name_refusal`'s words unless it passes that rule."""
    text = (value or "").strip()
    refusal = name_refusal(text, what)
    if refusal is not None:
        raise _invalid(refusal)
    return text


def _policy_text(policy: MaskingPolicy | None) -> str | None:
    value = policy_json(policy)
    return json.dumps(value, sort_keys=True) if value is not None else None


def _invalid(message: str) -> Exception:
    return ConfigError(message)
