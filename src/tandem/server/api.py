"""HTTP API for the console: sign in, sign out, who am I. Errors are problem JSON."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import msgspec
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tandem import auth, revocation
from tandem.access import authorize
from tandem.exceptions import (
    AuthenticationError,
    BusyError,
    SecondFactorError,
    TemporaryPasswordError,
)
from tandem.hub import address_group
from tandem.protocol.codec import json_carries_nul
from tandem.server.http import (
    agent_json,
    busy,
    current_agent,
    delete_sign_in_cookie,
    end_earlier_sign_in,
    json_body,
    not_signed_in,
    problem,
    services_of,
    set_sign_in_cookie,
    sign_in_token,
    too_many_attempts,
)
from tandem.server.operations import NUL_REFUSED
from tandem.server.services import Services
from tandem.storage.base import NO_ORG

log = logging.getLogger("tandem.server")


class LoginRequest(msgspec.Struct, forbid_unknown_fields=True):
    username: Annotated[str, msgspec.Meta(max_length=64)]
    password: Annotated[str, msgspec.Meta(max_length=auth.MAX_PASSWORD_LENGTH)]
    code: Annotated[str, msgspec.Meta(max_length=32)] | None = None
    """A 6-digit authenticator code or a recovery code, for accounts with a second factor."""


_login_decoder = msgspec.json.Decoder(LoginRequest)


async def login(request: Request) -> Response:
    body = await json_body(request)
    if isinstance(body, Response):
        return body
    try:
        creds = _login_decoder.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return problem(400, "Bad request", f"Expected {{username, password}}: {exc}")
    if json_carries_nul(body):  # before the name reaches storage (PostgreSQL: a 503)
        return problem(400, "Bad request", NUL_REFUSED)
    services = services_of(request)
    client = request.client.host if request.client else ""
    # An IPv6 address counts with its /64: rotating through it does not start afresh.
    group = address_group(client)
    keys = (f"user:{creds.username.lower()}", f"ip:{group}")
    wait = await services.sign_in_backoff.wait(services.clock(), *keys)
    if wait > 0:
        # Counted, not a record each: refused unchecked (no password hashed), it costs the client
        # nothing. Counted for the account's organisation, whose name and address it shows; a
        # name no account has under none (docs/audit.md).
        org = await auth.organisation_of(services.storage, creds.username)
        services.hub.count_anonymous(
            "sign_in_throttled", org or "", f"{creds.username[:64]!r} from {client}"
        )
        return too_many_attempts(wait, "failed sign-ins")
    try:
        browser_signed_in_as = await _signed_in_as(request, services)
        agent, token, factor = await auth.sign_in(
            services.storage,
            creds.username,
            creds.password,
            services.clock(),
            services.settings.login_ttl_seconds,
            services.entropy,
            code=creds.code,
            box=services.box,
            hashing=services.hashing,
            client=group,
            setup_ttl=services.settings.setup_sign_in_seconds,
            temporary_ttl=services.settings.temporary_password_seconds,
            browser_signed_in_as=browser_signed_in_as,
        )
    except BusyError as exc:  # nothing was checked: no failure counted
        return busy(1.0, str(exc))  # a check takes a tenth of a second
    except TemporaryPasswordError as exc:
        # The right password, refused: its message says so already, so a record each (no
        # spray to hide), bounded by the account's back-off as wrong passwords are.
        await services.sign_in_backoff.failed(services.clock(), *keys)
        expired = exc.reason == "expired"
        fields: dict[str, object] = {"ip": client, "chosen_by": exc.chosen_by}
        if not expired:
            fields["reason"] = exc.reason
        await services.hub.record(
            "temporary_password_expired" if expired else "temporary_password_refused",
            actor=creds.username,
            org=await auth.organisation_of(services.storage, creds.username) or NO_ORG,
            **fields,
        )
        return problem(401 if expired else 403, "Sign-in refused", str(exc))
    except AuthenticationError as exc:
        now = services.clock()
        # A waiting address still gets one try per account it has not tried (a colleague
        # behind it signs in): a spray of new names. Its failures are counted, not a record
        # each, or one client grows the append-only trail without end (whether the names
        # exist is not looked at: it would tell them apart by the time of the answer).
        sprayed = await services.sign_in_backoff.retry_after(now, keys[1]) > 0
        await services.sign_in_backoff.failed(now, *keys)
        # The account's organisation's evidence, never another organisation's to read (it
        # names the account and its address). A name no account has is, with several
        # organisations, no organisation's: in the default organisation's trail, its auditors
        # told another organisation's names from nobody's by the failures missing there (a
        # record either way, so that the trail's numbering, whose gaps they see, does not
        # tell them apart either).
        org = await auth.organisation_of(services.storage, creds.username)
        if isinstance(exc, SecondFactorError) and org is not None:
            # The right password with a wrong, missing or used code: someone has the
            # password (phished, reused). A record each, whatever the address (the account's
            # own back-off bounds them), and apart from a wrong password: an alert.
            # A code left out is also how an owner who forgot to type it fails: said apart.
            given = "wrong" if creds.code and creds.code.strip() else "missing"
            if exc.unreadable:  # no code can be right: the operator's to mend, not a guess
                given = "unreadable"
                log.error(
                    "the secrets key does not open the second factor of account %r (was "
                    "secrets.key replaced?): restore the key, or run `tandem user reset-mfa "
                    "%s --org %s` so that its owner enrols again",
                    creds.username,
                    creds.username,
                    org,
                )
            fields = {"actor": creds.username, "ip": client, "code": given, "org": org}
            if sprayed:
                # A wrong password from this waiting address is counted, not written: the
                # record written before answering made the right password answer a statement
                # later, one account each, as the spray goes. Written once answered.
                response = problem(401, "Sign-in failed", str(exc))
                response.background = BackgroundTask(_record_after_answer, services, fields)
                return response
            await services.hub.record("second_factor_failed", **fields)
        elif sprayed:
            services.hub.count_anonymous(
                "sign_in_sprayed", org or "", f"{creds.username[:64]!r} from {client}"
            )
        else:
            await services.hub.record(
                "sign_in_failed", actor=creds.username[:64], ip=client, org=org or NO_ORG
            )
        return problem(401, "Sign-in failed", str(exc))
    # Where it came from: a phished or copied sign-in is told from the owner's by its address.
    details: dict[str, object] = {"ip": client}
    if factor:
        details["second_factor"] = factor
    if agent.must_change_password and browser_signed_in_as not in (None, agent.username):
        # A temporary password typed in a browser signed in as someone else (not its chooser:
        # refused above): an admin colleague claiming the owner's account, worth an auditor's
        # look. Auditors see it; the owner's activity shows the sign-in's address alone.
        details["browser_signed_in_as"] = browser_signed_in_as
    if factor == auth.RECOVERY_CODE:
        # One of the codes the owner keeps on paper: a sign-in with it is worth a look (an
        # old copy found, with the password), and how many are left tells when to renew them.
        left = await services.storage.get_user(agent.username)
        details["recovery_codes_left"] = len(left.recovery_codes) if left else 0
    await services.hub.record("sign_in", actor=agent.username, org=agent.org, **details)
    await end_earlier_sign_in(request)
    response = JSONResponse(agent_json(agent))
    set_sign_in_cookie(response, request, token, services.settings.login_ttl_seconds)
    return response


async def _signed_in_as(request: Request, services: Services) -> str | None:
    """The account of the live sign-in the signing-in browser carries already, if any (read for
    every sign-in that brings a cookie, whatever its password: the same statements either way)."""
    token = sign_in_token(request)
    if not token or len(token) > 128:
        return None
    login = await services.storage.get_login(auth.login_digest(token))
    if login is None or login.expires_at <= services.clock():
        return None
    return login.username


async def _record_after_answer(services: Services, fields: dict[str, Any]) -> None:
    """``second_factor_failed`` with ``fields``, after the answer went: if storage fails, it
    is kept and written once storage answers (:meth:`tandem.hub.SessionHub.record_done`)."""
    try:
        await services.hub.record_done("second_factor_failed", **fields)
    except Exception:  # kept, written later; there is no request left to answer 503
        log.warning("the record of a failed second factor waits for the database")


async def logout(request: Request) -> Response:
    services = services_of(request)
    token = sign_in_token(request)
    agent = await current_agent(request)
    await auth.sign_out(services.storage, token)
    if agent is not None and token:
        await services.hub.record("sign_out", actor=agent.username, org=agent.org)
        # Sockets this sign-in opened close now, in every process.
        revocation.announce(services.fanout, login=auth.login_digest(token))
    response = Response(status_code=204)
    # Nothing of the agent's work may stay in this browser after signing out.
    response.headers["clear-site-data"] = '"cache", "storage"'
    delete_sign_in_cookie(response, request)
    return response


async def logout_everywhere(request: Request) -> Response:
    """End every sign-in of this agent, on every device."""
    services = services_of(request)
    agent = await current_agent(request)
    if agent is None:
        return not_signed_in(request)
    grant = authorize(agent, "self")
    ended = await services.storage.delete_logins_of(grant, agent.username)
    await services.hub.record(
        "sign_out_everywhere", actor=agent.username, sign_ins=ended, org=agent.org
    )
    revocation.announce(services.fanout, user=agent.username)
    response = Response(status_code=204)
    response.headers["clear-site-data"] = '"cache", "storage"'
    delete_sign_in_cookie(response, request)
    return response


async def me(request: Request) -> Response:
    agent = await current_agent(request)
    if agent is None:
        return not_signed_in(request)
    return JSONResponse(agent_json(agent))


# The signed-in routes here need only a sign-in (tandem.access "self"); the matrix test reads this.
me.tandem_action = "self"  # type: ignore[attr-defined]
logout_everywhere.tandem_action = "self"  # type: ignore[attr-defined]
