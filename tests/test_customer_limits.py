"""Limits on new customer sessions (issue 14): their settings, and the key of a client address's
waiting limit (rotating through one IPv6 subscriber's /64, or writing an IPv4 address as
IPv4-mapped IPv6, does not give a fresh limit). The limits at work: tests/server/
test_customer_quotas.py."""

from __future__ import annotations

import pytest

from tandem.config import Settings
from tandem.exceptions import ConfigError
from tandem.hub import address_group


@pytest.mark.parametrize(
    "bad",
    [
        {"max_sessions": 0},
        {"max_sessions_per_org": 0},
        {"max_waiting_per_address": 0},
        {"max_waiting_per_site": -1},
        {"anonymous_audit_interval_seconds": 0.0},
        {"anonymous_audit_retention_days": -1.0},
    ],
)
def test_limits_below_one_or_intervals_not_positive_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        Settings.load(environ={}, **bad)


def test_by_default_an_organisation_gets_a_fair_share_and_an_address_ten_waiting() -> None:
    settings = Settings.load(environ={})
    assert settings.max_sessions_per_org is None
    assert (settings.max_waiting_per_address, settings.max_waiting_per_site) == (10, 500)


def test_an_ipv6_subscribers_addresses_share_one_limit() -> None:
    assert address_group("2001:db8:1:2::1") == address_group("2001:db8:1:2:ffff:1:2:3")
    assert address_group("2001:db8:1:2::1") != address_group("2001:db8:1:3::1")


def test_an_ipv4_address_is_its_own_key_however_it_is_written() -> None:
    assert address_group("::ffff:198.51.100.7") == address_group("198.51.100.7") == "198.51.100.7"
    assert address_group("198.51.100.7") != address_group("198.51.100.8")


def test_something_that_is_no_address_is_kept_as_it_is() -> None:
    assert address_group("") == ""
    assert address_group("testclient") == "testclient"
