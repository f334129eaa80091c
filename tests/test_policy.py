"""The organisation's masking policy: validated at start-up, handed to every customer SDK."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tandem.exceptions import ConfigError
from tandem.policy import (
    MaskingPolicy,
    Pages,
    load_policy,
    page_pattern_problem,
    pattern_problem,
    policy_json,
    state_selector_problem,
)
from tests.conftest import ServerFactory, tandem_in_process
from tests.server.helpers import start_session


def write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(document))
    return path


def test_a_valid_policy_loads_with_private_defaults(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, {"version": 1, "mask": [".balance"]}))
    assert policy.mask == [".balance"]
    assert policy.url.query is False and policy.media.video is False
    assert policy_json(policy) == {"version": 1, "mask": [".balance"]}


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"version": 2}, "$.version"),
        ({"version": 1, "mask": ".x"}, "$.mask"),
        ({"version": 1, "hide": [""]}, "$.hide[0]"),
        ({"version": 1, "detectors": {"cards": False}}, "cards"),
        ({"version": 1, "detectors": {"iban": "yes"}}, "$.detectors.iban"),
        ({"version": 1, "colour": "red"}, "colour"),
        ({"version": 1, "pages": {"deny": ["account"]}}, "$.pages.deny[0]"),
    ],
)
def test_a_malformed_policy_names_the_field(tmp_path: Path, document: object, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_policy(write(tmp_path, document))
    assert field in str(info.value) and "invalid policy" in str(info.value)


def test_not_json_and_missing_files_are_clear_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_policy(bad)
    with pytest.raises(ConfigError, match="cannot read the policy"):
        load_policy(tmp_path / "missing.json")


def test_serve_refuses_a_bad_policy_before_starting(tmp_path: Path) -> None:
    path = write(tmp_path, {"version": 1, "mask": "oops"})
    result = tandem_in_process("serve", "--policy", str(path), "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert "invalid policy" in result.stderr and "$.mask" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.usefixtures("close_client_connections")
async def test_the_sdk_receives_the_organisation_policy(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    path = write(tmp_path, {"version": 1, "hide": ["#chat"], "detectors": {"ssn": True}})
    server = server_factory(policy_file=path)
    _customer, created = await start_session(server)
    assert created["policy"] == {"version": 1, "hide": ["#chat"], "detectors": {"ssn": True}}


@pytest.mark.usefixtures("close_client_connections")
async def test_without_a_policy_the_field_is_null(server_factory: ServerFactory) -> None:
    _customer, created = await start_session(server_factory())
    assert created["policy"] is None


# The same lists as sdk/test/policy.test.ts: the SDK refuses the same selectors from the server.
MARKUP_SELECTORS = [
    "#card", ".pii", "input[name=ssn]", 'input[type="password" i]', "[data-pii]",
    "form.checkout > .payment input", "body:has(.pii) #essay", ".md\\:flex", "li:nth-child(2n+1)",
    "td:not(.price)", "a ~ b, c + d", "x-widget", "[autocomplete^=cc-]", "tr:nth-last-of-type(odd)",
    "INPUT[NAME=SSN]",
]  # fmt: skip
STATE_SELECTORS = [
    "body:has(#yes:checked) #essay", "input:invalid", "#card[value^='4']", "[data-value*=a]",
    "a:hover", "p:empty", "input:placeholder-shown", "li:nth-child(2n of :checked)",
    "[aria-checked=true]", "p::before", "input:focus", "[xlink|href]", "a:is(:checked)",
    "#x:-webkit-autofill", "input:autofill", "details:open",
]  # fmt: skip


@pytest.mark.parametrize("field", ["mask", "hide"])
def test_a_policy_that_hides_by_the_pages_state_is_refused_naming_the_selector(
    tmp_path: Path, field: str
) -> None:
    """The customer's SDK refuses a policy from the server whose selectors test what the customer
    did (`:checked`, a field's value): the relay would read it in the snapshots' sizes. The
    server says so when the policy is configured, not when a customer's session ends."""
    for selector in MARKUP_SELECTORS:
        assert state_selector_problem(MaskingPolicy(version=1, mask=[selector])) is None, selector
    for selector in STATE_SELECTORS:
        assert state_selector_problem(MaskingPolicy(version=1, hide=[selector])), selector
    document = {"version": 1, field: [".fine", "body:has(#yes:checked) #essay"]}
    with pytest.raises(ConfigError, match=rf"invalid policy .*\$\.{field}\[1\]: a policy from"):
        load_policy(write(tmp_path, document))
    # Its unmask is never used (the SDK ignores the server's), so it is not looked at.
    assert load_policy(write(tmp_path, {"version": 1, "unmask": ["a:hover"]})).unmask == ["a:hover"]


# The same patterns as sdk/test/policy.test.ts ("malformed page patterns are refused ..."): the
# server refuses what customers' browsers would, with the same words.
BAD_PATTERNS = [
    ("/index.php?", "nothing after ?"),
    ("/index.php?page=a&&x=1", "an empty query parameter"),
    ("/index.php?=checkout", "a query parameter without a name"),
    ("/index.php?%20=checkout", "a query parameter without a name"),
    ("/index.php?[]=checkout", "a query parameter without a name"),
    ("/index.php?pa*=checkout", "name cannot have *"),
    ("/a?b&c&d&e&f&g&h&i&j", "at most 8 query parameters"),
    ("/app#/list?", "in the route: nothing after ?"),
    ("/app#!/list?a&&b", "in the route: an empty query parameter"),
    ("/app#tab=1&&b", "in the route: an empty query parameter"),
    # Chosen before the customer's Allow, a server's rule may not ask for a value's first
    # characters (the pause would answer): values whole, or any value.
    ("/*?token=a*", "a policy from the server may name a query parameter's value only whole"),
    ("/x?a=1&email=*@*", "a policy from the server may name a query parameter's value only whole"),
    ("/cb#access_token=ab*", "in the route: a policy from the server may name a query"),
    ("/#/reset?code=*1", "in the route: a policy from the server may name a query"),
    # Patterns that would name no page at all (an admin would believe a page private that is not).
    ("https://shop.example", "an origin without a path names no page"),
    ("https://shop.example?page=checkout", "an origin without a path names no page"),
    ("https://shop.example#/account", "an origin without a path names no page"),
    ("/check\x00out", "a control character, which no address has"),
    ("/a\nb", "a control character, which no address has"),
    ("/a?b=\x7f", "a control character, which no address has"),
]
GOOD_PATTERNS = [
    "/a?b&c&d&e&f&g&h&i", "/index.php?page=*", "https://*?page=checkout", "/#!", "/a?%3D=1",
    "/#checkout", "/app/#/account*?tab=billing", "/shop?step=pay&id=*#!/list?view=orders",
    "/*?token", "/*?token=*", "/app#tab=billing", "/app#/reset*", "https://shop.example/",
    "https://*.shop.example*", "https://*",
]  # fmt: skip


@pytest.mark.parametrize(("pattern", "message"), BAD_PATTERNS)
@pytest.mark.parametrize("field", ["allow", "deny"])
def test_a_malformed_page_pattern_is_refused_naming_the_field(
    tmp_path: Path, pattern: str, message: str, field: str
) -> None:
    """Query parameters and hash routes in page patterns (docs/privacy.md): a pattern customers'
    browsers would refuse is refused when the policy is loaded, naming the field and the fault."""
    document = {"version": 1, "pages": {field: ["/fine", pattern]}}
    with pytest.raises(ConfigError) as raised:
        load_policy(write(tmp_path, document))
    assert f"$.pages.{field}[1]: " in str(raised.value)
    assert message in str(raised.value)


def test_odd_page_patterns_are_answered_never_crash() -> None:
    """What an admin may type: each pattern gets an answer (a problem or none), no exception."""
    for pattern in [
        "/\ud800",
        "/%",
        "/%zz?%=%",
        "/#",
        "/?#?",
        "https://",
        "https://*",
        "/a#!%21?x=%ff",
        "/" + "*" * 499,
        "/a?" + "&".join("b" * 8),
        "/a#?" + "=" * 400,
        "http://[::1",
        "/\u202e",
    ]:
        problem = pattern_problem(pattern)
        assert problem is None or isinstance(problem, str), pattern


def test_page_patterns_that_name_queries_and_routes_load() -> None:
    for pattern in GOOD_PATTERNS:
        policy = MaskingPolicy(version=1, pages=Pages(allow=[pattern], deny=[pattern]))
        assert page_pattern_problem(policy) is None, pattern
