"""The key of a client address's waiting limit (issue 14): rotating through one IPv6 subscriber's
/64, or writing an IPv4 address as IPv4-mapped IPv6, does not give a fresh limit."""

from __future__ import annotations

from tandem.hub import address_group


def test_an_ipv6_subscribers_addresses_share_one_limit() -> None:
    assert address_group("2001:db8:1:2::1") == address_group("2001:db8:1:2:ffff:1:2:3")
    assert address_group("2001:db8:1:2::1") != address_group("2001:db8:1:3::1")


def test_an_ipv4_address_is_its_own_key_however_it_is_written() -> None:
    assert address_group("::ffff:198.51.100.7") == address_group("198.51.100.7") == "198.51.100.7"
    assert address_group("198.51.100.7") != address_group("198.51.100.8")


def test_something_that_is_no_address_is_kept_as_it_is() -> None:
    assert address_group("") == ""
    assert address_group("testclient") == "testclient"
