"""The organisation's masking policy: a JSON document the server hands to every customer SDK.

It can only *add* restrictions to a site's own policy (the SDK merges them; see
sdk/src/shared/policy.ts and docs/privacy.md). The server validates it once at start-up so a bad
file is a clear error naming the field, never a silent no-op.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import msgspec

from tandem.exceptions import ConfigError

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


def load_policy(path: Path) -> MaskingPolicy:
    """Read and validate a policy file. Raises ConfigError naming the file and the bad field."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the policy {path}: {exc.strerror}") from None
    try:
        return msgspec.json.decode(raw, type=MaskingPolicy)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid policy {path}: {exc}") from None
    except msgspec.DecodeError:
        raise ConfigError(f"invalid policy {path}: not valid JSON") from None


def policy_json(policy: MaskingPolicy | None) -> dict[str, object] | None:
    """The policy as a JSON object for the wire (None when there is none)."""
    if policy is None:
        return None
    value: dict[str, object] = msgspec.to_builtins(policy)
    return {key: item for key, item in value.items() if item != {}}
