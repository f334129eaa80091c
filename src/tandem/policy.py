"""The organisation's masking policy: a JSON document the server hands to every customer SDK.

It can only *add* restrictions to a site's own policy (the SDK merges them; see
sdk/src/shared/policy.ts and docs/privacy.md). The server validates it once at start-up so a bad
file is a clear error naming the field, never a silent no-op.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import unquote

import msgspec

from tandem.config import MAX_INPUT_FILE_BYTES
from tandem.exceptions import ConfigError
from tandem.files import read_file

Selector = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
Selectors = Annotated[list[Selector], msgspec.Meta(max_length=200)]


class Detectors(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    iban: bool = False
    ssn: bool = False
    email: bool = False
    phone: bool = False


class Media(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    images: bool = True
    video: bool = False


class UrlParts(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    query: bool = False
    fragment: bool = False


Pattern = Annotated[str, msgspec.Meta(min_length=1, max_length=500, pattern=r"^(/|https?://)")]


class Pages(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    allow: Annotated[list[Pattern], msgspec.Meta(max_length=200)] = msgspec.field(
        default_factory=list
    )
    deny: Annotated[list[Pattern], msgspec.Meta(max_length=200)] = msgspec.field(
        default_factory=list
    )


class MaskingPolicy(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Version 1 of the policy document."""

    version: Literal[1]
    mask: Selectors = msgspec.field(default_factory=list)
    hide: Selectors = msgspec.field(default_factory=list)
    unmask: Selectors = msgspec.field(default_factory=list)
    detectors: Detectors = msgspec.field(default_factory=Detectors)
    media: Media = msgspec.field(default_factory=Media)
    url: UrlParts = msgspec.field(default_factory=UrlParts)
    pages: Pages = msgspec.field(default_factory=Pages)


# What a `mask` or `hide` selector of a policy the server hands out (the organisation's, a
# site's, a team's) may say: elements by tag, class, id, structure (`:not`, `:is`, `:where`,
# `:has`, `:nth-child`..., combinators) and markup attributes, never the page's state
# (`:checked`, `:valid`, `:focus`, a `value`, `data-*` or `aria-*` attribute's value...). A
# selector that tested it would hide part of the page depending on what the customer chose or
# typed in a hidden field, and a relay would read the answer in the size of the next snapshot.
# The customer's SDK refuses such a policy (and ends the session); this tells the admin when the
# policy is configured. The same expression as sdk/src/shared/policy.ts (SERVER_SELECTOR), on the
# selector in lower case; one character a step (no backtracking to blow up).
SERVER_SELECTOR = re.compile(
    r"""^(?:[-_a-z0-9\u00a0-\uffff]|\\[^\n]|[.#*>+~,()\s]|\[\s*[-_a-z0-9]+\s*\]|\[\s*(?:class|id|type|role|name|autocomplete|inputmode|rel|lang|dir|for)\s*[~|^$*]?=\s*(?:"[^"\\\n]*"|'[^'\\\n]*'|[-_a-z0-9]+)\s*(?:[is]\s*)?\]|:(?:not|is|where|has)\(|:(?:first-child|last-child|only-child|first-of-type|last-of-type|only-of-type|root|defined)|:nth-(?:last-)?(?:child|of-type)\(\s*(?:odd|even|[-+]?[0-9]*n?(?:\s*[-+]\s*[0-9]+)?)\s*\))*$"""
)


def state_selector_problem(policy: MaskingPolicy) -> str | None:
    """Why customers' browsers would refuse ``policy`` (a `mask` or `hide` selector that tests
    the page's state, see SERVER_SELECTOR), naming the field; None when they take it."""
    for field, selectors in (("mask", policy.mask), ("hide", policy.hide)):
        for i, selector in enumerate(selectors):
            if not SERVER_SELECTOR.match(selector.lower()):
                return (
                    f"$.{field}[{i}]: a policy from the server may name elements only by tag, "
                    "class, id, structure and markup attributes (class, id, type, role, name, "
                    "autocomplete, inputmode, rel, lang, dir, for), never by what the customer "
                    f"did on the page: {selector!r}"
                )
    return None


# Page patterns (docs/privacy.md, sdk/src/shared/pages.ts): `[origin]path[?query][#route[?query]]`,
# each query `&`-separated conditions `name` or `name=value`. The customer's SDK refuses a
# malformed one (and no session starts); this says so, with the same words, when the policy is
# configured. The most conditions is a limit of the format, the same in every customer's
# browser (which enforces it), so not a server setting.
MAX_PATTERN_PARAMETERS = 8


def _route_query(fragment: str) -> str | None:
    """The query of a pattern's route, read as the SDK reads a fragment (pages.ts, routeOf): a
    fragment of parameters (`#tab=billing`: no `/` or `!` first, a `=` before any `?`) is one."""
    if fragment.startswith("%21"):  # a router reading the fragment decoded reads it as `!`
        fragment = "!" + fragment[3:]
    bang = fragment.startswith("!")
    path, has_query, query = fragment.removeprefix("!").partition("?")
    if not bang and not path.startswith("/") and "=" in path:
        return fragment
    return query if has_query else None


def _query_problem(query: str | None, server: bool) -> str | None:
    if query is None:
        return None
    if query == "":
        return "nothing after ? (name a query parameter: ?page=checkout)"
    parts = query.split("&")
    if len(parts) > MAX_PATTERN_PARAMETERS:
        return f"at most {MAX_PATTERN_PARAMETERS} query parameters"
    for part in parts:
        if part == "":
            return "an empty query parameter (nothing between & and &)"
        name = part.split("=", 1)[0]
        read = unquote(name.replace("+", " ")).strip(" \t\n\r\f\v").lower()
        if read.removesuffix("[]") == "":
            return f"a query parameter without a name: {part}"
        if "*" in name:
            return f"a query parameter's name cannot have *: {part}"
        _, has_value, value = part.partition("=")
        if server and has_value and value != "*" and "*" in value:
            return (
                "a policy from the server may name a query parameter's value only whole "
                f"(no * in it, or * alone): {part}"
            )
    return None


def pattern_problem(pattern: str, server: bool = True) -> str | None:
    """Why a page pattern is malformed, in the SDK's words (None: it is not). ``server``: the
    pattern is in a policy the server hands out, whose rules are chosen before the customer's
    Allow and whose pauses the server sees (docs/threat-model.md, "Policies are fixed at
    Allow"): it names a query parameter's value only whole, never `?token=a*`, which would ask
    for a token's first characters (the SDK's serverPagePatternProblem)."""
    before_route, _, route = pattern.partition("#")
    main, has_query, query = before_route.partition("?")
    if not main.startswith("/") and not re.match(r"https?://", main):
        return "must start with / (a path) or http(s):// (origin and path)"
    # Patterns that would name no page at all: refused, so that no admin believes a page private
    # that is not (the same checks in pages.ts).
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in pattern):
        return "a control character, which no address has (write it escaped: %0A)"
    if not main.startswith("/") and "*" not in main and "/" not in main.split("://", 1)[1]:
        return "an origin without a path names no page: add / (its home page) or /* (all its pages)"
    problem = _query_problem(query if has_query else None, server)
    if problem:
        return problem
    if "#" in pattern:
        problem = _query_problem(_route_query(route), server)
        if problem:
            return f"in the route: {problem}"
    return None


def page_pattern_problem(policy: MaskingPolicy) -> str | None:
    """Why customers' browsers would refuse the page rules of ``policy`` (a malformed pattern,
    see pattern_problem), naming the field; None when they take them."""
    for field, patterns in (("allow", policy.pages.allow), ("deny", policy.pages.deny)):
        for i, pattern in enumerate(patterns):
            problem = pattern_problem(pattern.strip())
            if problem:
                return f"$.pages.{field}[{i}]: {problem}: {pattern!r}"
    return None


def handed_out_problem(policy: MaskingPolicy) -> str | None:
    """Why customers' browsers would refuse ``policy`` from the server (state_selector_problem,
    page_pattern_problem); None when they take it."""
    return state_selector_problem(policy) or page_pattern_problem(policy)


def load_policy(path: Path, max_bytes: int = MAX_INPUT_FILE_BYTES) -> MaskingPolicy:
    """Read and validate a policy file (at most ``max_bytes``, the ``max_input_file_bytes``
    setting). Raises ConfigError naming the file and the bad field."""
    try:
        raw = read_file(path, max_bytes)
    except OSError as exc:
        raise ConfigError(f"cannot read the policy {path}: {exc.strerror}") from None
    try:
        policy = msgspec.json.decode(raw, type=MaskingPolicy)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid policy {path}: {exc}") from None
    except msgspec.DecodeError:
        raise ConfigError(f"invalid policy {path}: not valid JSON") from None
    problem = handed_out_problem(policy)
    if problem:
        raise ConfigError(f"invalid policy {path}: {problem}")
    return policy


def policy_json(policy: MaskingPolicy | None) -> dict[str, object] | None:
    """The policy as a JSON object for the wire (None when there is none)."""
    if policy is None:
        return None
    value: dict[str, object] = msgspec.to_builtins(policy)
    return {key: item for key, item in value.items() if item != {}}
