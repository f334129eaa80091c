"""Sign-in through an organisation's own identity provider (OpenID Connect, code flow + PKCE).

``GET /api/sso/start?org=ID`` sends the browser to the organisation's provider (only from the
console's own pages, or typed in: never from another site's link, ``Sec-Fetch-Site``);
``GET /api/sso/callback`` comes back with a code, which :mod:`tandem.oidc` exchanges and checks.
The pending sign-in is kept server-side (encrypted, single use, 10 minutes) and bound to the
browser that started it by a cookie, so a callback link cannot sign someone else in (login CSRF).

Accounts are provisioned by the organisation's admin, who binds each user to one provider account
(the issuer and the ``sub`` claim: ``PUT /api/users/{name}/sso``); a sign-in reaches only the user
bound to exactly that pair. The provider's ``preferred_username`` decides nothing (the provider's
admin sets it to anything). Auditor accounts are bound only by the server's operator, so an admin
and the provider it runs cannot sign in as the people who check it. The provider runs its own
second factor, so Tandem's is not asked for; with the organisation's ``mfa_acr``/``mfa_amr``
set, an ID token that does not assert one (its ``acr`` or ``amr``) is refused, and without them
the compliance check's "mfa" item fails for the accounts bound to the provider.

The provider's URLs must be https on public hosts (:mod:`tandem.outbound`), checked before the
browser is sent anywhere: ``/api/sso/start`` redirects only to the authorization endpoint of a
validated issuer, on the issuer's own origin.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from tandem import auth, crypto, oidc
from tandem.access import Grant
from tandem.exceptions import AuthenticationError, ConfigError
from tandem.hub import address_group
from tandem.server.http import (
    end_earlier_sign_in,
    over_tls,
    own_origin,
    services_of,
    set_sign_in_cookie,
    sign_in_token,
)

if TYPE_CHECKING:
    from tandem.server.services import Services

COOKIE = "tandem_sso"
"""The cookie binding a pending sign-in to the browser that started it, over plain HTTP; over
TLS ``__Host-tandem_sso`` (path /), which no sibling subdomain nor plain-HTTP answer can plant:
one planted with the planter's own pending sign-in would sign the browser into the planter's
account (login CSRF) with the callback link the planter sends it."""


def _cookie_name(request: Request) -> str:
    return f"__Host-{COOKIE}" if over_tls(request) else COOKIE


def _cookie_path(request: Request) -> str:
    return "/" if over_tls(request) else "/api/sso"


async def provider_for(services: Services, org_id: str) -> oidc.ProviderConfig | None:
    sealed = await services.storage.get_oidc(Grant.server(org_id, "sso sign-in"))
    if not sealed:
        return None
    value = json.loads(services.box.open(sealed))
    return oidc.ProviderConfig(
        issuer=value["issuer"],
        client_id=value["client_id"],
        client_secret=value["client_secret"],
        allow_private_network=services.settings.test_private_network,
        max_keys=services.settings.sso_max_signing_keys,
        timeout_seconds=services.settings.sso_timeout_seconds,
        max_response_bytes=services.settings.sso_max_response_bytes,
        leeway_seconds=services.settings.sso_clock_leeway_seconds,
        max_token_age_seconds=services.settings.sso_max_token_age_seconds,
        mfa_acr=tuple(value.get("mfa_acr", ())),
        mfa_amr=tuple(value.get("mfa_amr", ())),
    )


def _same_provider(config: oidc.ProviderConfig, now: oidc.ProviderConfig | None) -> bool:
    """Whether the provider a sign-in went through is still the organisation's, as far as
    its sign-ins rely on it (:func:`tandem.directory._provider_of`)."""
    return now is not None and (
        config.issuer,
        config.client_id,
        config.mfa_acr,
        config.mfa_amr,
    ) == (now.issuer, now.client_id, now.mfa_acr, now.mfa_amr)


def _redirect_uri(request: Request) -> str:
    """Where the provider sends the browser back: on the server's public origin when it is set
    (the one this start was addressed to, so the browser comes back with its cookie), never
    on whatever the ``Host`` header names; unset, as the request was addressed."""
    public = services_of(request).settings.public_origins
    if not public:
        return str(request.url_for("sso_callback"))
    origin = own_origin(request.scope, public) or public[0]
    return f"{origin}{request.app.url_path_for('sso_callback')}"


def _failed(request: Request, reason: str = "failed") -> Response:
    response = RedirectResponse(f"/console/?sso={reason}", status_code=303)
    _forget_browser(response, request)
    return response


def _forget_browser(response: Response, request: Request) -> None:
    response.delete_cookie(
        _cookie_name(request),
        path=_cookie_path(request),
        httponly=True,
        samesite="lax",
        secure=over_tls(request),
    )


async def _organisation_named(services: Services, org_id: str) -> str:
    """``org_id`` if it is an organisation's id; for a name that is no organisation's, the only
    organisation while there is one, else none (``""``), as a failed sign-in naming no account
    is filed (:func:`tandem.auth.organisation_of`). Counted under the default organisation
    with several, starts naming no organisation told its auditors which names are other
    organisations' (those were not counted there); under none with one, its auditors did not
    see the starts sprayed at it."""
    try:
        auth.validate_name(org_id, "organisation id")
    except ConfigError:
        named = None
    else:
        named = await services.storage.get_org(Grant.server(org_id, "sso start counted"))
    # Read for every well-formed name, an organisation's too: the same queries either way
    # (two rows at most: every organisation, for each throttled start, made a flood costly).
    only = await services.storage.only_org()
    if named is not None:
        return named.org_id
    return only or ""


def _start_key(request: Request) -> str:
    """The back-off key of the client's SSO starts: its address, an IPv6 address with its /64
    (rotating through it does not start afresh)."""
    return f"sso-ip:{address_group(request.client.host if request.client else '')}"


async def start(request: Request) -> Response:
    services = services_of(request)
    if request.headers.get("sec-fetch-site", "none") not in ("same-origin", "none"):
        # Login CSRF: another site's link would start a sign-in at an organisation of its
        # choosing, whose provider (its admin's) signs the browser into an account of theirs
        # in place of the user's own. The console's button is a same-origin navigation.
        return _failed(request)
    org_id = request.query_params.get("org", "").strip().lower()
    client = _start_key(request)
    wait = await services.sso_backoff.retry_after(services.clock(), client)
    if wait > 0:
        address = request.client.host if request.client else ""
        # Counted, not a record each: refused unchecked, it costs the client nothing. Counted
        # for the organisation the start named (it shows where its people sign in from), never
        # another's; a name that is no organisation's is counted under none.
        org = await _organisation_named(services, org_id)
        services.hub.count_anonymous("sso_throttled", org, f"from {address}")
        busy = _failed(request, "busy")
        busy.headers["retry-after"] = str(math.ceil(wait))  # how long, for whoever reads it
        return busy
    await services.sso_backoff.failed(services.clock(), client)  # forgiven when it completes
    try:
        auth.validate_name(org_id, "organisation id")
        config = await provider_for(services, org_id)
    except ConfigError:
        config = None
    if config is None:
        return _failed(request, "unavailable")
    try:
        async with oidc.client(timeout=config.timeout_seconds) as http:
            discovery = await oidc.discover(config, http)
    except AuthenticationError as exc:
        await services.hub.record("sso_failed", actor="", org=org_id, reason=str(exc))
        return _failed(request)
    url, pending = oidc.begin(config, discovery, _redirect_uri(request), services.entropy)
    browser = crypto.new_token(services.entropy)
    # The browser's sign-in now, ended when this one finishes: the provider's redirect back
    # (from another site) does not carry the SameSite=Strict cookie, this start does.
    earlier = sign_in_token(request)
    kept = {
        "pending": pending.to_json(),
        "browser": crypto.secret_digest(browser, "sso"),
        "earlier": auth.login_digest(earlier) if earlier and len(earlier) <= 128 else "",
    }
    sealed = services.box.seal(json.dumps(kept))
    await services.storage.put_oidc_pending(
        Grant.server(org_id, "sso start"),
        crypto.secret_digest(pending.state, "sso-state"),
        sealed,
        services.clock() + services.settings.sso_pending_seconds,
    )
    response = RedirectResponse(url, status_code=303)
    # Lax: the provider's redirect back is a top-level navigation from another site.
    response.set_cookie(
        _cookie_name(request),
        browser,
        max_age=int(services.settings.sso_pending_seconds),
        path=_cookie_path(request),
        httponly=True,
        samesite="lax",
        secure=over_tls(request),
    )
    return response


async def callback(request: Request) -> Response:
    services = services_of(request)
    state = request.query_params.get("state", "")
    if not state or len(state) > 256:
        return _failed(request)
    taken = await services.storage.take_oidc_pending(
        crypto.secret_digest(state, "sso-state"), services.clock()
    )
    if taken is None:
        return _failed(request)
    org_id, sealed = taken
    kept: dict[str, Any] = json.loads(services.box.open(sealed))
    browser = request.cookies.get(_cookie_name(request), "")
    if not browser or not crypto.secrets_equal(
        crypto.secret_digest(browser, "sso"), kept["browser"]
    ):
        await services.hub.record("sso_failed", org=org_id, reason="started in another browser")
        return _failed(request)
    config = await provider_for(services, org_id)
    if config is None:
        return _failed(request, "unavailable")
    try:
        pending = oidc.PendingLogin.from_json(kept["pending"])
        async with oidc.client(timeout=config.timeout_seconds) as http:
            discovery = await oidc.discover(config, http)
            identity = await oidc.finish(
                config, discovery, pending, dict(request.query_params), http, services.clock()
            )
        key = oidc.identity_key(org_id, discovery.issuer, identity.subject)
        user = await services.storage.user_for_oidc_identity(key)
        if user is None or user.org_id != org_id:
            raise AuthenticationError(
                "no account of this organisation is bound to that provider account "
                f"(subject {oidc.printable(identity.subject)!r}): ask your admin"
            )
        if user.disabled:
            raise AuthenticationError(f"the account {user.username!r} is disabled")
        try:
            token = await auth.open_login(
                services.storage,
                user,
                services.clock(),
                services.settings.login_ttl_seconds,
                services.entropy,
                auth.OIDC,
            )
        except AuthenticationError:
            raise AuthenticationError(
                f"the account {user.username!r} was unbound or disabled meanwhile"
            ) from None
        if not _same_provider(config, await provider_for(services, org_id)):
            # The admin changed or removed the provider while this sign-in finished: the
            # change ended the sign-ins made through it, and this one, stored after the
            # change was written, is seen here (one stored before it, the change ended).
            await auth.sign_out(services.storage, token)
            raise AuthenticationError("the organisation's identity provider changed meanwhile")
    except AuthenticationError as exc:
        await services.hub.record("sso_failed", org=org_id, reason=str(exc))
        return _failed(request)
    address = request.client.host if request.client else ""
    await services.hub.record(
        "sign_in", actor=user.username, org=org_id, method=auth.OIDC, ip=address
    )
    await end_earlier_sign_in(request, kept.get("earlier", ""))
    # Its own start is done (its pending row taken): one fewer unfinished. Not all of them:
    # a client finishing one sign-in of its own at will would start afresh each time, and
    # keep pending rows coming without end.
    await services.sso_backoff.forgive(_start_key(request))
    response = RedirectResponse("/console/", status_code=303)
    _forget_browser(response, request)
    set_sign_in_cookie(response, request, token, services.settings.login_ttl_seconds)
    return response
