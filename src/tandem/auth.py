"""Agent accounts: roles, password rules, sign-in and sign-in sessions (cookies)."""

from __future__ import annotations

import base64
import dataclasses
import math
import re
import unicodedata
from collections.abc import Awaitable, Callable

import pyotp

from tandem import crypto
from tandem.access import ROLES, Grant, Principal, Role, authorize
from tandem.audit import AuditRecord
from tandem.exceptions import (
    AuthenticationError,
    ConfigError,
    ConflictError,
    NotFoundError,
    SecondFactorError,
    TemporaryPasswordError,
    UserExistsError,
    WeakPasswordError,
)
from tandem.storage.base import (
    DEFAULT_TEAM,
    SET_ASIDE_BY_BINDING,
    LoginRecord,
    Storage,
    UserRecord,
)

COOKIE_NAME = "tandem_agent"
"""The sign-in cookie's name over plain HTTP (a local demo)."""
SECURE_COOKIE_NAME = f"__Host-{COOKIE_NAME}"
"""Its name over TLS: browsers keep a ``__Host-`` cookie only if the server's own secure
answer set it, for its host alone (Secure, Path=/, no Domain), so a page of a sibling subdomain
or a plain-HTTP answer cannot plant one (its sign-in, in place of the agent's)."""
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 256
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
# The most common choices that pass a length rule; a stronger check belongs to an identity provider.
_COMMON = frozenset(
    {
        "password1234",
        "password12345",
        "password123456",
        "123456789012",
        "qwertyuiop12",
        "qwerty123456",
        "iloveyou1234",
        "administrator",
        "letmein12345",
        "welcome12345",
        "changeme1234",
        "passwordpassword",
        "correcthorsebatterystaple",
    }
)


RESERVED_USERNAMES: frozenset[str] = frozenset(
    {"server", "customer", "cli", "system", "operator", "anonymous", "tandem"}
)
"""Names the audit trail uses for its system actors (``server``, ``customer``, ``cli``) and a few
that would read as one. No account may take them, so an entry by ``server`` is the server's."""


def name_unavailable(username: str) -> UserExistsError:
    """The one answer for a username that cannot be created: reserved, taken in this
    organisation or taken in another (which must not be told apart)."""
    return UserExistsError(f"the username {username!r} is not available: choose another")


Agent = Principal
"""A signed-in user as the server sees it on each request (any role)."""


PASSWORD_ONLY = "password"  # noqa: S105 (a sign-in method, not a password)
"""A sign-in with the password alone: the account had no second factor when it was made."""
TWO_STEP = "password+totp"
"""A sign-in with the password and the account's second factor (a TOTP or recovery code)."""
OIDC = "oidc"
"""A sign-in through the organisation's identity provider (it runs its own second factor)."""


def password_method(user: UserRecord) -> str:
    """What a password sign-in of ``user`` proves: both factors if the account has a second one
    (sign-in asks for it), the password alone otherwise."""
    return TWO_STEP if user.totp_secret else PASSWORD_ONLY


def principal(user: UserRecord, method: str) -> Principal:
    """The user as decisions see it, for a sign-in made by ``method``. Whether a second factor
    is still needed is what that sign-in proved, not what the account has now: a sign-in made
    with the password alone stays restricted after the owner enrols an authenticator elsewhere
    (:func:`agent_for_login` ends it). A sign-in through the organisation's identity provider
    counts as strong (the provider runs its own second factor)."""
    return Principal(
        username=user.username,
        display_name=user.display_name,
        role=validate_role(user.role),
        org=user.org_id,
        teams=frozenset(user.teams),
        needs_second_factor=method == PASSWORD_ONLY and not user.mfa_exempt,
        must_change_password=method != OIDC and user.password_change_required,
    )


def new_login(
    user: UserRecord,
    now: float,
    ttl: float,
    entropy: crypto.Entropy,
    method: str,
    setup_ttl: float = math.inf,
) -> tuple[str, LoginRecord]:
    """A sign-in for ``user`` made with ``method``, not stored yet: the cookie token (shown to
    the browser only) and the record storage keeps (its digest). It lasts ``ttl`` seconds, or
    ``setup_ttl`` if shorter when all it may do is finish setting the account up (a second
    factor or a new password still due: a half sign-in, made with the password alone)."""
    token = crypto.new_token(entropy)
    made = principal(user, method)
    if made.needs_second_factor or made.must_change_password:
        ttl = min(ttl, setup_ttl)
    login = LoginRecord(
        token_digest=crypto.secret_digest(token, "login"),
        username=user.username,
        expires_at=now + ttl,
        last_seen=now,
        method=method,
    )
    return token, login


async def open_login(
    storage: Storage,
    user: UserRecord,
    now: float,
    ttl: float,
    entropy: crypto.Entropy,
    method: str,
    setup_ttl: float = math.inf,
) -> str:
    """A new sign-in session for ``user``, the account as the caller checked its credentials;
    returns the cookie token (storage keeps its digest). Raises AuthenticationError if the
    account's password, second factor or provider binding changed, or it was disabled, since it
    was read: that change ended every sign-in of the account, and a sign-in checked against what
    it replaced (an attacker's, with the old password) must not be stored after it."""
    token, login = new_login(user, now, ttl, entropy, method, setup_ttl)
    if not await storage.add_login(login, proved=user):
        raise AuthenticationError()
    return token


def validate_name(value: str, what: str) -> str:
    """Ids of organisations, teams and sites follow the username rule."""
    if not _USERNAME.fullmatch(value):
        raise ConfigError(
            f"{'an' if what[0] in 'aeiou' else 'a'} {what} is 1-64 characters: lower-case "
            "letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def validate_username(username: str) -> str:
    if not _USERNAME.fullmatch(username):
        raise ConfigError(
            "a username is 1-64 characters: lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return username


def validate_role(role: str) -> Role:
    for known in ROLES:
        if role == known:
            return known
    raise ConfigError(f"role must be one of {', '.join(ROLES)}; not {role!r}")


def check_password_strength(password: str, username: str) -> None:
    """Raise :class:`WeakPasswordError` saying what is wrong with ``password``."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPasswordError(
            f"password too short: use at least {MIN_PASSWORD_LENGTH} characters "
            "(a few unrelated words work well)"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPasswordError(f"password too long: at most {MAX_PASSWORD_LENGTH} characters")
    if any("\ud800" <= c <= "\udfff" for c in password):
        # Bytes that are not UTF-8 on a command's standard input arrive as lone surrogates.
        raise WeakPasswordError("password is not UTF-8 text: type it in UTF-8")
    if any(unicodedata.category(c) == "Cc" for c in password):
        raise WeakPasswordError(
            "password must not contain control characters (a NUL, an escape, a tab): "
            "no sign-in form can type them"
        )
    squashed = re.sub(r"[\s_.-]", "", password.lower())
    if squashed in _COMMON:
        raise WeakPasswordError("password too common: it is on lists attackers try first")
    if username and username.lower() in password.lower():
        raise WeakPasswordError("password must not contain the username")
    if len(set(password)) < 6:
        raise WeakPasswordError("password too repetitive: use at least 6 different characters")


@dataclasses.dataclass(frozen=True, slots=True)
class Enrolment:
    """Shown once when an account is created with a second factor; never stored in the clear."""

    secret: str
    uri: str
    recovery_codes: list[str]


async def create_user(
    storage: Storage,
    username: str,
    password: str,
    role: str,
    display_name: str | None,
    now: float,
    *,
    box: crypto.SecretBox | None = None,
    entropy: crypto.Entropy = crypto.system_entropy,
    grant: Grant,
    teams: tuple[str, ...] | None = None,
    mfa_exempt: bool = False,
    hashing: crypto.PasswordHashing | None = None,
    client: str = "",
    password_change_required: bool = False,
    chosen_by: str | None = None,
) -> tuple[UserRecord, Enrolment | None]:
    """Validate and store a new user (argon2id hash). With ``box``, the account gets a TOTP second
    factor (seed encrypted with ``box``) and recovery codes (stored as digests); the enrolment is
    returned to be shown once (to whoever creates the account: its owner only, see
    :meth:`tandem.directory.Directory.add_user`). With ``password_change_required``, ``password``
    is temporary: the account's first password sign-in may only choose its own
    (:func:`change_password`, which refuses the same one), within the server's
    ``temporary_password_seconds`` (:func:`sign_in`); ``chosen_by`` names who chose it (the
    creator). The account joins ``grant``'s
    organisation (there is no default). Raises ConfigError, WeakPasswordError, UserExistsError
    (and, with ``hashing``, BusyError)."""
    validate_username(username)
    if username in RESERVED_USERNAMES:
        raise name_unavailable(username)
    checked_role = validate_role(role)
    check_password_strength(password, username)
    enrolment = new_enrolment(username, entropy) if box is not None else None
    record = UserRecord(
        username=username,
        display_name=display_name or username.capitalize(),
        role=checked_role,
        password_hash=await hash_password(hashing, client, password),
        created_at=now,
        totp_secret=box.seal(enrolment.secret) if box and enrolment else None,
        recovery_codes=tuple(
            crypto.recovery_digest(c, box, username) for c in enrolment.recovery_codes
        )
        if box and enrolment
        else (),
        org_id=grant.org_id,
        mfa_exempt=mfa_exempt,
        password_change_required=password_change_required,
        password_set_at=now,
        password_set_by=chosen_by if password_change_required else None,
    )
    if await storage.get_org(grant) is None:
        raise NotFoundError(f"no organisation named {grant.org_id!r}")
    known = await storage.list_teams(grant)
    if teams is None:  # people who take sessions start in the default team, if there is one
        teams = (DEFAULT_TEAM,) if checked_role in LIVE_ROLES and DEFAULT_TEAM in known else ()
    for team in teams:  # checked before anything is written: a refusal creates nothing
        if team not in known:
            raise NotFoundError(f"no team named {team!r}")
    try:
        await storage.add_user(grant, record)
    except UserExistsError:
        raise name_unavailable(username) from None
    try:
        await storage.set_user_teams(grant, username, teams)
    except BaseException:  # a team deleted meanwhile: the account goes too
        await storage.delete_user(grant, username)
        raise
    return dataclasses.replace(record, teams=tuple(sorted(set(teams)))), enrolment


LIVE_ROLES: frozenset[str] = frozenset({"agent", "supervisor"})


def new_enrolment(username: str, entropy: crypto.Entropy) -> Enrolment:
    """A fresh TOTP seed and recovery codes, to show once."""
    secret = base64.b32encode(entropy(20)).decode()
    uri = pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name="Tandem")
    return Enrolment(secret, uri, crypto.new_recovery_codes(entropy))


def check_totp(secret: str, code: str, now: float) -> int | None:
    """The time step ``code`` is valid for (current step or one either side), or None."""
    code = code.strip().replace(" ", "")
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    step = int(now // TOTP_PERIOD)
    for candidate in (step - 1, step, step + 1):
        if crypto.secrets_equal(totp.generate_otp(candidate), code):
            return candidate
    return None


TOTP_PERIOD = 30
"""Seconds of one time step (RFC 6238). Not a setting: every authenticator app the agents
enrol computes codes with 30-second steps; another period here would refuse their codes."""


AUTHENTICATOR = "authenticator"
"""A sign-in's second factor was a code of the account's authenticator app (TOTP)."""
RECOVERY_CODE = "recovery_code"
"""A sign-in's second factor was one of the account's recovery codes (used up)."""


async def _second_factor_shown(
    storage: Storage,
    user: UserRecord,
    code: str | None,
    now: float,
    box: crypto.SecretBox,
    *,
    spend: bool = True,
) -> str | None:
    """Which second factor ``code`` is (:data:`AUTHENTICATOR`: a TOTP code for the current
    step, or one either side for clock drift, not used before; :data:`RECOVERY_CODE`: an
    unused recovery code, now used up), or None when it is neither. Raises
    SecondFactorError(unreadable=True) when ``box`` does not open the account's seed (the
    secrets key was replaced): its recovery codes, keyed with the same key, match nothing
    either, so no code is tried. With ``spend`` False (the password was wrong) the same
    storage work is done against no account (:data:`_NOBODY`): nothing is spent, and a right
    password costs no statement more than a wrong one."""
    try:
        seed = box.open(user.totp_secret or "")
    except ConfigError:
        if not spend:  # the same statements as for any other account
            return await _spend_code(storage, user.username, False, None, code, now, box)
        raise SecondFactorError(unreadable=True) from None
    return await _spend_code(storage, user.username, spend, seed, code, now, box)


_NOBODY = ""
"""The account the second-factor step of a wrong password spends its code on: no account has
this name (:data:`_USERNAME`), so the statements run and change nothing."""


async def _spend_code(
    storage: Storage,
    username: str,
    spend: bool,
    seed: str | None,
    code: str | None,
    now: float,
    box: crypto.SecretBox,
) -> str | None:
    """:func:`_second_factor_shown`'s storage work: ``code`` spent on ``username``'s account
    when ``spend``, else on :data:`_NOBODY`'s (the same statements, changing nothing)."""
    owner = username if spend else _NOBODY
    if not code:
        return None
    squashed = code.strip().replace(" ", "")
    if squashed.isdigit() and len(squashed) == 6:
        step = check_totp(seed, squashed, now) if seed is not None else None
        if step is not None and await storage.use_second_factor(owner, step, None):
            return AUTHENTICATOR
        return None
    # Every form the code may be stored under (keyed with any key of the ring, or unkeyed as
    # the oldest versions stored it), in one statement: a code matches one form only.
    forms = crypto.recovery_digests(squashed, box, username)
    if await storage.use_second_factor(owner, None, forms):
        return RECOVERY_CODE
    return None


async def verify_password(
    hashing: crypto.PasswordHashing | None, client: str, password_hash: str | None, password: str
) -> bool:
    """:func:`tandem.crypto.verify_password`, through the server's bounded ``hashing`` (off its
    event loop, for ``client``) when given; the CLI checks in place."""
    if hashing is None:
        return crypto.verify_password(password_hash, password)
    return await hashing.verify(client, password_hash, password)


async def hash_password(hashing: crypto.PasswordHashing | None, client: str, password: str) -> str:
    """:func:`tandem.crypto.hash_password`, as :func:`verify_password` runs it."""
    if hashing is None:
        return crypto.hash_password(password)
    return await hashing.hash(client, password)


async def sign_in(
    storage: Storage,
    username: str,
    password: str,
    now: float,
    ttl: float,
    entropy: crypto.Entropy,
    *,
    code: str | None = None,
    box: crypto.SecretBox | None = None,
    hashing: crypto.PasswordHashing | None = None,
    client: str = "",
    setup_ttl: float = math.inf,
    temporary_ttl: float = math.inf,
    browser_signed_in_as: str | None = None,
) -> tuple[Agent, str, str]:
    """Check credentials (password, then the second factor if the account has one) and open a
    sign-in session. Returns the agent, the cookie token (shown to the browser only; storage
    keeps its digest) and the second factor shown (:data:`AUTHENTICATOR`,
    :data:`RECOVERY_CODE`, or ``""`` for an account without one). Raises
    :class:`AuthenticationError`, one message for every failure (:class:`SecondFactorError`
    when only the second factor was wrong), and BusyError when ``hashing`` has too much to
    do (for ``client``, an address group). A temporary password (someone else chose it) set
    ``temporary_ttl`` seconds ago or more, or typed in a browser that carries a sign-in of
    whoever chose it (``browser_signed_in_as``, the account of the sign-in cookie the request
    came with), raises :class:`TemporaryPasswordError`, told only to whoever typed it right."""
    user = await storage.get_user(username) if _USERNAME.fullmatch(username) else None
    right = await verify_password(hashing, client, user.password_hash if user else None, password)
    if user is None or not right:
        # The second-factor step's statements run for a wrong password too (on no account):
        # a right one must not answer a query or two later than a wrong one, for an account
        # or a name nobody has (tests/test_auth.py, ...costs_the_same_statements...); nor
        # for an account without a second factor (a provider's, or none set up) than for one
        # with it, or a name nobody has (...for_any_kind_of_account).
        if box is not None:
            if user is not None and user.totp_secret:
                await _second_factor_shown(storage, user, code, now, box, spend=False)
            else:
                await _spend_code(storage, username, False, None, code, now, box)
        raise AuthenticationError()
    shown = ""
    if user.totp_secret:
        factor = await _second_factor_shown(storage, user, code, now, box) if box else None
        if factor is None:
            raise SecondFactorError()
        shown = factor
    if user.disabled:  # told only to whoever holds every credential of the account
        raise AuthenticationError(DISABLED)
    if user.password_change_required and user.oidc_identity:
        # A password someone else chose (a new account's, a reset's) does not sign in an account
        # that signs in through its provider: its owner never replaces it, so whoever typed it
        # could choose the account's password and set up its own authenticator at any time,
        # a lasting sign-in of the owner's, who is never locked out to notice.
        raise AuthenticationError(PROVIDER_ACCOUNT)
    check_temporary_password(user, now, temporary_ttl)
    if (
        user.password_change_required
        and user.password_set_by is not None
        and browser_signed_in_as == user.password_set_by
    ):
        # The admin who chose the password, signed in, signs in as the account to choose the
        # owner's password before the owner does (and set up its authenticator): refused from
        # its own browser. A private window gets past this; the claim's record then names
        # whose password was claimed, and the owner is shown it (docs/security.md).
        raise TemporaryPasswordError(
            CHOOSER_SIGNED_IN, reason="chooser_signed_in", chosen_by=user.password_set_by
        )
    method = password_method(user)
    token = await open_login(storage, user, now, ttl, entropy, method, setup_ttl)
    return principal(user, method), token, shown


DISABLED = "This account is disabled: ask your admin to enable it."
PROVIDER_ACCOUNT = (
    "This account signs in through your organisation's identity provider, not with a "
    "temporary password: sign in with your organisation, or ask your admin to unbind it."
)


TEMPORARY_PASSWORD_EXPIRED = (
    "This temporary password has expired: ask your administrator for a new one."  # noqa: S105
)
PASSWORD_SET_ASIDE_EXPIRED = (
    "Your password was set aside when this account was bound to single sign-on, and has "  # noqa: S105
    "expired since: ask your administrator for a new one."
)
CLAIMED_PASSWORD_AGAIN = (
    "choose a password other than the temporary one someone else chose for this account"  # noqa: S105
)
CHOOSER_SIGNED_IN = (
    "This browser is signed in as the admin who chose this temporary password: the account's "
    "owner signs in with it, in their own browser."
)


def temporary_password_expired(user: UserRecord, now: float, ttl: float) -> bool:
    """Whether ``user``'s password is temporary and was set ``ttl`` seconds ago or more (set by
    a version that kept no time: counted from the account's creation)."""
    if not user.password_change_required:
        return False
    set_at = user.password_set_at if user.password_set_at is not None else user.created_at
    return now - set_at >= ttl


def check_temporary_password(user: UserRecord, now: float, ttl: float) -> None:
    """Raise :class:`TemporaryPasswordError` (``expired``) if ``user``'s temporary password
    is past its lifetime (:func:`temporary_password_expired`)."""
    if not temporary_password_expired(user, now, ttl):
        return
    if user.password_set_by == SET_ASIDE_BY_BINDING:
        # The owner's own password, made temporary when the account was bound to the provider
        # (and since unbound): nobody chose it for them, it was set aside.
        raise TemporaryPasswordError(PASSWORD_SET_ASIDE_EXPIRED, reason="expired", chosen_by=None)
    raise TemporaryPasswordError(
        TEMPORARY_PASSWORD_EXPIRED, reason="expired", chosen_by=user.password_set_by
    )


async def organisation_of(storage: Storage, username: str) -> str | None:
    """The organisation whose audit trail a failed or refused sign-in as ``username`` belongs
    in: the account's; for a name no account has (a name no account could have is not looked
    up), the only organisation while there is one, else None: no organisation's
    (:data:`tandem.storage.base.NO_ORG`). Another organisation's auditors must not read an
    account's name, nor the addresses its sign-ins come from, and its own must see attacks on
    it; no organisation's auditors may tell a name another organisation holds from one nobody
    has by where its failures are filed (with one organisation there is no other's name to
    tell, and its auditors see the names sprayed at it)."""
    user = await storage.get_user(username) if _USERNAME.fullmatch(username) else None
    # Read for every name, an account's too: the same queries either way, or the time of the
    # answer (a throttled one's: no password check to hide it) would tell the names apart.
    # Two rows at most: every organisation, read for each throttled attempt, made a flood the
    # throttle answers cheaply cost the database a read of the whole table each.
    only = await storage.only_org()
    if user is not None:
        return user.org_id
    return only


async def agent_for_token(
    storage: Storage,
    token: str | None,
    now: float,
    idle_seconds: float = float("inf"),
    *,
    touch_seconds: float,
) -> Agent | None:
    """The agent a cookie token belongs to, or None if it is unknown, expired (absolute lifetime)
    or idle for longer than ``idle_seconds``. Each use counts as activity, written at most every
    ``touch_seconds`` (``login_touch_seconds``)."""
    if not token or len(token) > 128:
        return None
    return await agent_for_login(
        storage, login_digest(token), now, idle_seconds, touch_seconds=touch_seconds
    )


def cookie_token(value: str) -> str:
    """The sign-in token of a cookie's value: the part before a dot (the client binding
    after it, with ``login_bind_client`` on). Tokens are base64url: they have no dot."""
    return value.partition(".")[0]


def login_digest(token: str) -> str:
    """How storage (and a socket's seat) names the sign-in of a cookie token."""
    return crypto.secret_digest(token, "login")


async def agent_for_login(
    storage: Storage,
    digest: str,
    now: float,
    idle_seconds: float = float("inf"),
    *,
    touch_seconds: float,
    activity: bool = True,
) -> Agent | None:
    """The agent of the sign-in stored as ``digest``, as the account is now (role, teams,
    second factor), or None if the sign-in ended, expired or idled out, or the account is gone.
    ``activity`` counts this check as use of the sign-in (a message, not a timer), written at
    most every ``touch_seconds`` (``login_touch_seconds``: idle expiry is coarse; writes cost)."""
    login = await storage.get_login(digest)
    if login is None or login.expires_at <= now:
        return None
    if now - login.last_seen >= idle_seconds:
        await storage.delete_login(digest)
        return None
    if activity and now - login.last_seen >= touch_seconds:
        await storage.touch_login(digest, now)
    user = await storage.get_user(login.username)
    if user is None or user.disabled:
        return None
    if login.method == PASSWORD_ONLY and user.totp_secret:
        # Made with the password alone before the account had a second factor: whoever holds
        # it never showed one. Enrolment ends such sign-ins (confirm_second_factor); this
        # catches one that raced it, and any from before sign-ins recorded what they proved.
        await storage.delete_login(digest)
        return None
    if user.password_change_required and await storage.get_login(digest) is None:
        # An admin's reset committed between the two reads: it ended this sign-in along with
        # setting the new password (one transaction), so the sign-in is over, not restricted.
        return None
    return principal(user, login.method)


async def change_password(
    storage: Storage,
    username: str,
    current: str,
    new: str,
    now: float,
    ttl: float,
    entropy: crypto.Entropy,
    *,
    hashing: crypto.PasswordHashing | None = None,
    client: str = "",
    setup_ttl: float = math.inf,
    temporary_ttl: float = math.inf,
) -> tuple[str, UserRecord]:
    """The user's own password change: ``current`` must be right, ``new`` strong and different.
    Every sign-in of the user ends; returns the token of a new one for the caller's browser and
    the account as it was (whether the password replaced was temporary, chosen by whom, when).
    Raises AuthenticationError (wrong current password), TemporaryPasswordError (``current``
    is a temporary password past ``temporary_ttl``: a half sign-in made just before does not
    claim it after) or WeakPasswordError (also for ``new`` the temporary password the account's
    last claim replaced, :attr:`UserRecord.claimed_password_hash`) (and BusyError as
    :func:`sign_in`)."""
    user = await storage.get_user(username)
    if user is None or not await verify_password(hashing, client, user.password_hash, current):
        raise AuthenticationError("the current password is not right")
    check_temporary_password(user, now, temporary_ttl)
    check_password_strength(new, username)
    if new == current:
        raise WeakPasswordError("choose a password other than the current one")
    if user.claimed_password_hash is not None and await verify_password(
        hashing, client, user.claimed_password_hash, new
    ):
        # Whoever claimed a temporary password before the owner (its chooser, anyone it was
        # shown to) gave the account back that password, no longer temporary: the owner signed
        # in with it as told, never asked to choose its own, and others still knew it.
        raise WeakPasswordError(CLAIMED_PASSWORD_AGAIN)
    new_hash = await hash_password(hashing, client, new)
    # Ends every sign-in. The account's own organisation, as read with the current password:
    # raises NotFoundError if the name was deleted (and made anew anywhere) while it hashed.
    own = Grant.server(user.org_id, "own password change")
    try:
        # Only over the password checked: of two changes checked against it at once (the owner
        # and whoever else knew it, the admin who typed a new account's), the first stored wins
        # and the other is refused, never told it chose a password the first then replaced.
        await storage.set_password(
            own,
            username,
            new_hash,
            False,
            at=now,
            chosen_by=None,
            replacing=user.password_hash,
            claimed=user.password_hash if user.password_change_required else None,
        )
    except ConflictError:
        raise AuthenticationError("the current password is not right") from None
    changed = dataclasses.replace(
        user,
        password_hash=new_hash,
        password_change_required=False,
        password_set_at=now,
        password_set_by=None,
        claimed_password_hash=(
            user.password_hash if user.password_change_required else user.claimed_password_hash
        ),
    )
    method = password_method(user)
    return await open_login(storage, changed, now, ttl, entropy, method, setup_ttl), user


async def sign_out(storage: Storage, token: str | None) -> None:
    if token and len(token) <= 128:
        await storage.delete_login(login_digest(token))


async def begin_second_factor(
    storage: Storage, user: UserRecord, box: crypto.SecretBox, entropy: crypto.Entropy
) -> Enrolment:
    """Start setting up an authenticator for an account that has none: a new seed, kept
    (encrypted) as pending until :func:`confirm_second_factor` sees a code from it. Recovery codes
    are made only on confirmation. Raises ConflictError if the account already has one."""
    if user.totp_secret:
        raise ConflictError("two-step sign-in is already set up; an admin can reset it")
    enrolment = new_enrolment(user.username, entropy)
    await storage.set_pending_second_factor(user.username, box.seal(enrolment.secret))
    return dataclasses.replace(enrolment, recovery_codes=[])


async def check_enrolment_code(
    storage: Storage, username: str, code: str, now: float, box: crypto.SecretBox
) -> tuple[UserRecord, int]:
    """The account and the TOTP step of ``code`` if it comes from the account's pending seed
    (:func:`begin_second_factor`); nothing is written. Raises AuthenticationError for a wrong
    code, ConflictError when nothing is pending."""
    user = await storage.get_user(username)
    if user is None or not user.pending_totp:
        raise ConflictError("start setting up two-step sign-in first")
    step = check_totp(box.open(user.pending_totp), code, now)
    if step is None:
        raise AuthenticationError("That code is not right. Check the time on your phone.")
    return user, step


async def confirm_second_factor(
    storage: Storage,
    user: UserRecord,
    step: int,
    method: str,
    now: float,
    ttl: float,
    entropy: crypto.Entropy,
    box: crypto.SecretBox,
    setup_ttl: float = math.inf,
) -> tuple[list[str], Agent, str]:
    """Turn on ``user``'s pending seed, whose code of TOTP ``step`` :func:`check_enrolment_code`
    accepted (the step is spent); returns new recovery codes (shown once, stored as digests
    keyed with ``box``),
    and the enrolling browser's new sign-in (the principal and its cookie token). Every other
    sign-in of the user ends: one made with the password alone never showed the new factor.
    The browser showed the password (``method``, its old sign-in's) and now a code from the new
    factor, so a password sign-in becomes a two-step one. One transaction: if storage fails,
    nothing changed (the browser is still signed in, the seed still pending). Raises
    NotFoundError if the account went, was disabled, or its pending seed or its password
    changed since ``user`` was read (a password change ended the enrolling sign-in too: one
    made with the old password must not come back with a factor of its own)."""
    assert user.pending_totp
    codes = crypto.new_recovery_codes(entropy)
    enrolled = dataclasses.replace(user, totp_secret=user.pending_totp, pending_totp=None)
    method = OIDC if method == OIDC else password_method(enrolled)
    token, login = new_login(enrolled, now, ttl, entropy, method, setup_ttl)
    digests = tuple(crypto.recovery_digest(c, box, user.username) for c in codes)
    if not await storage.enable_second_factor(
        user.username, user.pending_totp, digests, step, login, user.password_hash
    ):
        raise NotFoundError("not found")
    return codes, principal(enrolled, method), token


async def renew_recovery_codes(
    storage: Storage,
    username: str,
    password: str,
    code: str,
    now: float,
    entropy: crypto.Entropy,
    box: crypto.SecretBox,
    *,
    hashing: crypto.PasswordHashing | None = None,
    client: str = "",
    before_change: Callable[[], Awaitable[None]] | None = None,
) -> list[str]:
    """The owner's own renewal of its recovery codes: ``password`` and a code of its
    authenticator (not a recovery code: one found on paper, with the password, would make ten
    of its own) proved again, the code spent. Returns ten new codes (shown once; stored as
    digests keyed with the current secrets key); every earlier code stops working in the same
    transaction. Raises AuthenticationError (wrong password), SecondFactorError (a wrong, used
    or unreadable code), ConflictError (no authenticator set up), NotFoundError (the account
    changed meanwhile: a reset of its password or second factor), and BusyError as
    :func:`sign_in`. ``before_change`` (the record of the renewal) is awaited once both are
    proved, before any code changes: if it fails, the codes the owner holds still work (never
    new codes nobody was shown)."""
    user = await storage.get_user(username)
    right = await verify_password(hashing, client, user.password_hash if user else None, password)
    if user is None or not right:
        raise AuthenticationError("the password is not right")
    if not user.totp_secret:
        raise ConflictError("two-step sign-in is not set up: there are no recovery codes to renew")
    try:
        seed = box.open(user.totp_secret)
    except ConfigError:
        raise SecondFactorError(unreadable=True) from None
    step = check_totp(seed, code, now)
    if step is None or not await storage.use_second_factor(username, step, None):
        raise SecondFactorError()
    codes = crypto.new_recovery_codes(entropy)
    digests = tuple(crypto.recovery_digest(c, box, username) for c in codes)
    if before_change is not None:
        await before_change()
    if not await storage.renew_recovery_codes(
        username, user.totp_secret, user.password_hash, digests
    ):
        raise NotFoundError("not found")
    return codes


ACCOUNT_OWN_ACTIONS: tuple[str, ...] = (
    "sign_in",
    "second_factor_failed",
    "sign_in_other_client",
    "password_changed",
    "mfa_enrolled",
    "recovery_codes_renewed",
)
"""What was done in an account's name (the record's actor is the account) that its owner is
shown at sign-in (:func:`account_activity`): its sign-ins (from where, how), its password
right with a wrong code, a copy of its cookie used elsewhere, its own password, authenticator
and recovery codes changed. One the owner did not do is a sign-in of someone else."""
ACCOUNT_CHANGES: tuple[str, ...] = (
    "password_reset",
    "mfa_reset",
    "sso_identity_bound",
    "sso_identity_removed",
    "user_disabled",
    "user_enabled",
    "role_changed",
    "user_created",
)
"""What others (an admin, the operator) did to an account (the record's subject is the account)
that its owner is shown at sign-in: an admin can reset an agent's password and second factor,
or bind it to a provider account of the admin's, and sign in as the agent; the audit trail
records it, but only auditors read the trail. Its creation too: who made it, and whether the
password they chose was temporary or kept (a name given again shows only its own account's
creation: nothing from before the account was made is read)."""
MAX_ACCOUNT_ACTIVITY = 50
"""Default of the ``max_account_activity`` setting: the most records of each action
:func:`account_activity` shows, newest first (50 sign-ins:
a month of an agent's on working days), each action counted apart so that a flood of one
(whoever took the account over, signing in again and again, or an admin changing its role back
and forth) cannot push another (an authenticator enrolled, the reset that let it in) out of the
owner's sight. At most 700 records (14 actions)."""


async def account_activity(
    storage: Storage, agent: Principal, now: float, days: float, most: int = MAX_ACCOUNT_ACTIVITY
) -> list[AuditRecord]:
    """What happened to ``agent``'s account in the last ``days`` days, newest first (at most
    ``most`` of each action: the ``max_account_activity`` setting): its sign-ins and other
    :data:`ACCOUNT_OWN_ACTIONS`, and the :data:`ACCOUNT_CHANGES` others made to it, read from
    the audit trail (which nobody can rewrite: whoever signed in as the agent cannot take them
    out of the owner's sight). An owner back after longer than ``days`` (the newest sign-in
    being this one) is shown the sign-in before it too, however old, and the changes and other
    own actions (a temporary password claimed, an authenticator set up) of the ``days`` before
    that one and since: a takeover made while the owner was away does not age out of the list
    before the owner is back. Sign-ins through the provider beside others bring the
    newest binding to the provider, however old. Nothing from before the account was made: a
    name given again (after its account was removed) is not shown its former holder's
    sign-ins."""
    grant = authorize(agent, "self")
    user = await storage.get_user(agent.username)
    if user is None:
        return []
    made = user.created_at
    window = max(now - days * 86400.0, made)
    found = await storage.account_activity(
        grant, agent.username, window, most, ACCOUNT_OWN_ACTIONS, ACCOUNT_CHANGES
    )
    if sum(record.action == "sign_in" for record in found) < 2:
        latest = await storage.account_activity(grant, agent.username, made, 2, ("sign_in",), ())
        if len(latest) == 2:  # else the account's first sign-in (or none): nothing before it
            previous = latest[1]
            # With what was done in the account's name then (not its sign-ins: the one before
            # this is shown): a temporary password claimed, an authenticator set up, by whoever
            # let the owner back in only once they had left the window.
            earlier = await storage.account_activity(
                grant,
                agent.username,
                max(previous.at - days * 86400.0, made),
                most,
                tuple(action for action in ACCOUNT_OWN_ACTIONS if action != "sign_in"),
                ACCOUNT_CHANGES,
            )
            found = [*found, previous, *earlier]
    # Sign-ins through the provider beside others (an agent who types a password): the binding
    # that lets them in is shown however old, with who made it. An admin who bound the account
    # to a provider account of its own and kept the binding signs in through it after the
    # binding left the window (and a new password does not stop it). An agent who signs in
    # only through the provider is not shown its binding at each sign-in.
    ways = {
        record.details.get("method") == "oidc" for record in found if record.action == "sign_in"
    }
    if ways == {True, False} and not any(r.action == "sso_identity_bound" for r in found):
        found += await storage.account_activity(
            grant, agent.username, made, 1, (), ("sso_identity_bound",)
        )
    merged = {record.seq: record for record in found}
    return sorted(merged.values(), key=lambda record: record.org_seq, reverse=True)
