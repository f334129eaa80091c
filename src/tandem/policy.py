"""The organisation's masking policy: a JSON document the server hands to every customer SDK.

It can only *add* restrictions to a site's own policy (the SDK merges them; see
sdk/src/shared/policy.ts and docs/privacy.md). The server validates it once at start-up so a bad
file is a clear error naming the field, never a silent no-op.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

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
    problem = state_selector_problem(policy)
    if problem:
        raise ConfigError(f"invalid policy {path}: {problem}")
    return policy


def policy_json(policy: MaskingPolicy | None) -> dict[str, object] | None:
    """The policy as a JSON object for the wire (None when there is none)."""
    if policy is None:
        return None
    value: dict[str, object] = msgspec.to_builtins(policy)
    return {key: item for key, item in value.items() if item != {}}
