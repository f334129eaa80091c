"""Settings: precedence, validation, origin normalisation."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from tandem.config import Settings, normalize_origin
from tandem.exceptions import ConfigError


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://Shop.Example", "https://shop.example"),
        ("https://shop.example:443", "https://shop.example"),
        ("http://shop.example:80/", "http://shop.example"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("http://[::1]:8000", "http://[::1]:8000"),
        ("http://[0:0::1]:8000", "http://[::1]:8000"),  # IPv6 as browsers write it
        ("https://bücher.example", "https://xn--bcher-kva.example"),
        ("https://my_host.example", "https://my_host.example"),
        ("https://shop.example.", "https://shop.example."),  # another origin to a browser
    ],
)
def test_origins_are_normalised(given: str, expected: str) -> None:
    assert normalize_origin(given) == expected


@pytest.mark.parametrize(
    "bad",
    [
        "shop.example",
        "ftp://shop.example",
        "https://shop.example/path",
        "https://u@shop.example",
        "https://shop.example:99999",
        "https://",
        "javascript:alert(1)",
        "null",
        # Hosts no Origin header carries: each was stored as a site that never matched a page.
        "https://exa mple.com",
        "https://*.example.com",  # no wildcards
        "https://a%41.example",
        "https://a<b.example",
        "https://a|b.example",
        "https://a\\b.example",
        "https://a\tb.example",  # was read as https://ab.example: a site nobody typed
        "https://a\nb.example",
        # IPv4 as browsers never send it (they write four decimal numbers, or refuse the URL)
        "http://0x7f.1",
        "http://1.2.3",
        "http://01.2.3.4",
        "http://999.1.1.1",
        "http://1.2.3.4.5",
        "https://example.123",
        "http://[fe80::1%25eth0]",
        "http://[::g]",
    ],
)
def test_non_origins_are_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="origin"):
        normalize_origin(bad)


def test_a_wildcard_origin_is_refused_saying_why() -> None:
    with pytest.raises(ConfigError, match="no wildcards: add one site per origin"):
        normalize_origin("https://*.shop.example")


def test_environment_is_read() -> None:
    settings = Settings.load(
        environ={
            "TANDEM_HOST": "0.0.0.0",
            "TANDEM_PORT": "9000",
            "TANDEM_DATA_DIR": "/tmp/x",
            "TANDEM_ALLOW_ORIGINS": "https://a.example, https://b.example",
        }
    )
    assert settings.host == "0.0.0.0" and settings.port == 9000
    assert settings.data_dir == Path("/tmp/x")
    assert settings.allow_origins == ("https://a.example", "https://b.example")


def test_explicit_values_win_over_environment() -> None:
    settings = Settings.load(environ={"TANDEM_PORT": "9000"}, port=9100)
    assert settings.port == 9100


def test_bad_port_in_environment_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="TANDEM_PORT must be a whole number"):
        Settings.load(environ={"TANDEM_PORT": "eighty"})


def test_unknown_setting_is_refused() -> None:
    with pytest.raises(ConfigError):
        Settings.load(environ={}, colour="blue")


def test_settings_are_immutable() -> None:
    settings = Settings.load(environ={})
    with pytest.raises(AttributeError):
        settings.port = 1  # type: ignore[misc]


def test_console_origins_are_read_and_validated() -> None:
    settings = Settings.load(
        environ={"TANDEM_CONSOLE_ORIGINS": "https://Console.Bank.example:443, http://c.example:81"}
    )
    assert settings.console_origins == ("https://console.bank.example", "http://c.example:81")
    assert Settings.load(environ={}, console_origins=("https://x.example/",)).console_origins == (
        "https://x.example",
    )
    with pytest.raises(ConfigError):
        Settings.load(environ={"TANDEM_CONSOLE_ORIGINS": "https://console.bank.example/app"})


def test_public_origins_are_read_normalised_and_validated() -> None:
    settings = Settings.load(
        environ={"TANDEM_PUBLIC_ORIGINS": "https://Tandem.example:443, http://[::1]:8000,"}
    )
    assert settings.public_origins == ("https://tandem.example", "http://[::1]:8000")
    assert Settings.load(environ={}).public_origins == ()
    given = Settings.load(environ={}, public_origins=("https://t.example/", "https://T.example"))
    assert given.public_origins == ("https://t.example",)  # once, in the order given
    for bad in (
        "https://t.example/app",
        "tandem.example",
        "wss://t.example",
        "https://u@t.example",
    ):
        with pytest.raises(ConfigError):
            Settings.load(environ={"TANDEM_PUBLIC_ORIGINS": bad})


@pytest.mark.parametrize(
    ("overrides", "exposure"),
    [
        ({}, None),
        ({"host": "::1"}, None),
        ({"host": "localhost"}, None),
        ({"host": "127.0.0.2"}, None),
        ({"host": "0.0.0.0"}, "it listens on 0.0.0.0, not loopback only"),
        ({"host": "10.0.0.11"}, "it listens on 10.0.0.11, not loopback only"),
        ({"host": "tandem.internal"}, "it listens on tandem.internal, not loopback only"),
        ({"trusted_proxies": ("127.0.0.1",)}, "it answers a reverse proxy (--trusted-proxy)"),
        ({"host": "0.0.0.0", "public_origins": ("https://t.example",)}, None),
        ({"trusted_proxies": ("127.0.0.1",), "public_origins": ("https://t.example",)}, None),
    ],
)
def test_a_server_reached_by_other_names_without_a_public_origin_says_why(
    overrides: dict[str, object], exposure: str | None
) -> None:
    found = Settings.load(environ={}, **overrides).unnamed_exposure
    if exposure is None:
        assert found is None
    else:
        assert found is not None and found.startswith(exposure), found


def test_sign_in_timeouts_and_advisories_come_from_the_environment() -> None:
    settings = Settings.load(
        {
            "TANDEM_LOGIN_IDLE_SECONDS": "900",
            "TANDEM_LOGIN_TTL_SECONDS": "3600",
            "TANDEM_ADVISORY_FILE": "/etc/tandem/osv.json",
            "TANDEM_ADVISORY_MAX_AGE_DAYS": "2",
        }
    )
    assert (settings.login_idle_seconds, settings.login_ttl_seconds) == (900.0, 3600.0)
    assert settings.advisory_file == Path("/etc/tandem/osv.json")
    assert settings.advisory_max_age_days == 2.0
    with pytest.raises(ConfigError, match="TANDEM_LOGIN_IDLE_SECONDS must be a number"):
        Settings.load({"TANDEM_LOGIN_IDLE_SECONDS": "soon"})
    with pytest.raises(ConfigError, match="must be positive"):
        Settings.load({"TANDEM_LOGIN_IDLE_SECONDS": "0"})


def test_socket_queue_must_hold_one_largest_frame() -> None:
    with pytest.raises(ConfigError, match="socket_queue_bytes"):
        Settings.load(environ={}, socket_queue_bytes=1024 * 1024)  # one 1 MiB frame + 64 is more
    assert Settings.load(environ={}, socket_queue_bytes=1024 * 1024 + 64).socket_queue_bytes


@pytest.mark.parametrize("value", [0.0, -1.0, float("nan")])
def test_send_and_shutdown_timeouts_must_be_positive(value: float) -> None:
    with pytest.raises(ConfigError, match="must be positive"):
        Settings.load(environ={}, socket_send_timeout_seconds=value)
    with pytest.raises(ConfigError, match="must be positive"):
        Settings.load(environ={}, shutdown_timeout_seconds=value)


@pytest.mark.parametrize("value", [0.0, 1.0, 1.5, -0.25, float("nan")])
def test_the_hand_overs_share_of_the_stop_is_a_fraction(value: float) -> None:
    with pytest.raises(ConfigError, match="shutdown_hand_over_share"):
        Settings.load(environ={}, shutdown_hand_over_share=value)
    assert Settings.load(environ={}, shutdown_hand_over_share=0.5).shutdown_hand_over_share == 0.5


def test_shutdown_timeout_from_the_environment() -> None:
    assert Settings.load(environ={"TANDEM_SHUTDOWN_TIMEOUT": "4.5"}).shutdown_timeout_seconds == 4.5
    with pytest.raises(ConfigError, match="TANDEM_SHUTDOWN_TIMEOUT"):
        Settings.load(environ={"TANDEM_SHUTDOWN_TIMEOUT": "soon"})


def test_every_numeric_limit_is_read_from_its_environment_variable() -> None:
    settings = Settings.load(
        {
            "TANDEM_MAX_SESSIONS": "20000",
            "TANDEM_SOCKET_QUEUE_BYTES": "4194304",
            "TANDEM_RESUME_GRACE_SECONDS": "12.5",
            "TANDEM_MAX_SESSIONS_PER_ORG": "7",
        }
    )
    assert settings.max_sessions == 20000 and settings.socket_queue_bytes == 4194304
    assert settings.resume_grace_seconds == 12.5 and settings.max_sessions_per_org == 7
    assert Settings.load({"TANDEM_MAX_SESSIONS": "5"}, max_sessions=9).max_sessions == 9


def test_a_limit_that_is_not_a_number_names_its_variable() -> None:
    with pytest.raises(ConfigError, match="TANDEM_MAX_SESSIONS must be a whole number"):
        Settings.load({"TANDEM_MAX_SESSIONS": "lots"})
    with pytest.raises(ConfigError, match="TANDEM_IDLE_TIMEOUT_SECONDS must be a number"):
        Settings.load({"TANDEM_IDLE_TIMEOUT_SECONDS": "soon"})


@pytest.mark.parametrize(
    ("variable", "value", "refused"),
    [
        ("TANDEM_SUBJECT_EXPORT_ATTEMPTS", "0", "subject_export_attempts"),
        ("TANDEM_SUBJECT_EXPORT_ATTEMPTS", "11", "subject_export_attempts"),
        ("TANDEM_SUBJECT_EXPORT_ATTEMPTS", "2.5", "must be a whole number"),
        ("TANDEM_MAX_RECORDING_OVERDUE_SECONDS", "59", "max_recording_overdue_seconds"),
        ("TANDEM_MAX_RECORDING_OVERDUE_SECONDS", "nan", "max_recording_overdue_seconds"),
        ("TANDEM_MAX_RETENTION_CLOCK_SKEW_SECONDS", "-1", "max_retention_clock_skew_seconds"),
        ("TANDEM_MAX_RETENTION_CLOCK_SKEW_SECONDS", "1e308", "max_retention_clock_skew_seconds"),
    ],
)
def test_the_recordings_limits_are_validated(variable: str, value: str, refused: str) -> None:
    """The limits that were code constants (the compliance check's overdue recordings, the
    purges' clock believed ahead, a customer's export's attempts) are settings now, read from
    the environment and refused out of their range in one line naming them."""
    with pytest.raises(ConfigError, match=refused):
        Settings.load({variable: value})


def test_the_recordings_limits_are_read_from_the_environment() -> None:
    settings = Settings.load(
        {
            "TANDEM_SUBJECT_EXPORT_ATTEMPTS": "10",
            "TANDEM_MAX_RECORDING_OVERDUE_SECONDS": "60",
            "TANDEM_MAX_RETENTION_CLOCK_SKEW_SECONDS": "0",
        }
    )
    assert settings.subject_export_attempts == 10
    assert settings.max_recording_overdue_seconds == 60.0
    assert settings.max_retention_clock_skew_seconds == 0.0
    defaults = Settings()
    assert (defaults.subject_export_attempts, defaults.max_recording_overdue_seconds) == (3, 600.0)
    assert defaults.max_retention_clock_skew_seconds == 3600.0


def test_a_supervisors_frame_rate_is_a_setting_of_at_least_one() -> None:
    assert Settings().max_watcher_frames_per_second == 10
    assert (
        Settings.load(
            environ={"TANDEM_MAX_WATCHER_FRAMES_PER_SECOND": "3"}
        ).max_watcher_frames_per_second
        == 3
    )
    with pytest.raises(ConfigError, match="max_watcher_frames_per_second"):
        Settings(max_watcher_frames_per_second=0)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TANDEM_CODE_TTL_SECONDS", "nan"),
        ("TANDEM_IDLE_TIMEOUT_SECONDS", "inf"),
        ("TANDEM_MAX_SESSION_SECONDS", "-1"),
        ("TANDEM_AGENT_REAUTH_SECONDS", "0"),
        ("TANDEM_BACKGROUND_BACKOFF_SECONDS", "0"),
        ("TANDEM_MAX_PAYLOAD_BYTES", "-1"),
        ("TANDEM_RECORDING_FLUSH_BYTES", "0"),
        ("TANDEM_LOGIN_FREE_FAILURES", "-3"),
        ("TANDEM_CUSTOMER_TOKEN_MAX_SECONDS", "1e308"),
        ("TANDEM_ANONYMOUS_AUDIT_RETENTION_DAYS", "nan"),
        ("TANDEM_LOGIN_BACKOFF_SECONDS", "1000"),
        ("TANDEM_SSO_TIMEOUT_SECONDS", "0"),
        ("TANDEM_SSO_TIMEOUT_SECONDS", "nan"),
        ("TANDEM_SSO_MAX_RESPONSE_BYTES", "10"),
        ("TANDEM_SSO_CLOCK_LEEWAY_SECONDS", "-1"),
        ("TANDEM_SSO_MAX_TOKEN_AGE_SECONDS", "5"),
        ("TANDEM_SSO_PENDING_SECONDS", "1e9"),
        ("TANDEM_TUNNEL_ACCEPT_SECONDS", "0"),
        ("TANDEM_READINESS_TIMEOUT_SECONDS", "inf"),
    ],
)
def test_a_number_that_is_nan_infinite_negative_zero_or_huge_is_refused(
    variable: str, value: str
) -> None:
    name = variable.removeprefix("TANDEM_").lower()
    with pytest.raises(ConfigError, match=name):
        Settings.load({variable: value})


def test_a_zero_that_means_something_is_still_accepted() -> None:
    settings = Settings.load(
        {
            "TANDEM_AGENT_RESUME_SECONDS": "0",
            "TANDEM_GC_FREEZE_SECONDS": "0",
            "TANDEM_LOGIN_FREE_FAILURES": "0",
            "TANDEM_RECORDING_END_SECONDS": "0",
        }
    )
    assert settings.gc_freeze_seconds == 0 and settings.login_free_failures == 0


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://",
        "postgresql://db.example:5432",
        "postgres://u@db.example/",
        "postgresql://u@[::1/x",
    ],
)
def test_a_database_url_that_names_no_database_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="database URL"):
        Settings.load({"TANDEM_DATABASE_URL": url})


def test_a_database_named_by_path_or_parameter_is_accepted() -> None:
    for url in (
        "postgresql://u@db.example/tandem",
        "postgresql:///tandem?host=/run/postgresql",
        "postgresql://u@db.example?dbname=tandem",
    ):
        assert Settings.load({"TANDEM_DATABASE_URL": url}).database_url == url


def test_an_empty_host_or_data_dir_is_not_every_interface_or_the_current_directory() -> None:
    """``TANDEM_HOST=`` (an empty line of an environment file) made the server listen on every
    interface (bind to ""), ``TANDEM_DATA_DIR=`` put the database in the current directory."""
    settings = Settings.load({"TANDEM_HOST": "", "TANDEM_DATA_DIR": " "})
    assert (settings.host, settings.data_dir) == ("127.0.0.1", Path("data"))
    with pytest.raises(ConfigError, match="the host is empty"):
        Settings.load({}, host="")
    with pytest.raises(ConfigError, match="data dir is empty"):
        Settings.load({}, data_dir="")


@pytest.mark.parametrize("proxy", ["proxy.internal", "", "10.0.0.1/8", "unix:"])
def test_a_trusted_proxy_that_no_address_matches_is_refused(proxy: str) -> None:
    """uvicorn keeps what is neither an address nor a network as a literal that no peer ever
    equals: ``--trusted-proxy proxy.internal`` started a server that ignored the proxy's
    headers without a word (every customer counted as the proxy's one address)."""
    with pytest.raises(ConfigError, match="trusted proxy"):
        Settings.load({}, trusted_proxies=(proxy,))
    with pytest.raises(ConfigError, match="trusted proxy"):
        Settings.load({"TANDEM_TRUSTED_PROXIES": f"127.0.0.1,{proxy or ' '}x"})


def test_trusted_proxies_as_addresses_networks_or_a_star_are_accepted() -> None:
    proxies = ("10.0.0.5", "10.0.0.0/8", "::1", "fd00::/8", "*")
    assert Settings.load({}, trusted_proxies=proxies).trusted_proxies == proxies


@pytest.mark.parametrize("port", ["99999", "0", "x"])
def test_a_database_url_with_a_port_out_of_range_is_refused(port: str) -> None:
    """``postgresql://host:99999/db`` passed every check and then crashed the command with an
    OverflowError traceback from the socket layer."""
    with pytest.raises(ConfigError, match="port"):
        Settings.load({"TANDEM_DATABASE_URL": f"postgresql://127.0.0.1:{port}/tandem"})


def test_database_urls_with_ipv6_hosts_and_host_lists_keep_their_ports() -> None:
    for url in (
        "postgresql://u@[::1]:5432/tandem",
        "postgresql://u@[::1]/tandem",
        "postgresql://u@db1:5432,db2:5433/tandem",
    ):
        assert Settings.load({"TANDEM_DATABASE_URL": url}).database_url == url


DOCS = Path(__file__).parent.parent / "docs" / "configuration.md"
UNITS = {"": 1, "s": 1, "min": 60, "h": 3600, "KiB": 1024, "MiB": 1 << 20, "GiB": 1 << 30}
WORDS = {"none": None, "off": False, "the system's": (), "a fair share": None}
VARIABLE_FIELDS = {
    "TANDEM_POLICY": "policy_file",
    "TANDEM_AUDIT_KEY": "audit_key_file",
    "TANDEM_SHUTDOWN_TIMEOUT": "shutdown_timeout_seconds",
}


def documented_default(text: str) -> object:
    """A default as docs/configuration.md writes it (``16 MiB``, ``10 000``, ``none``)."""
    text = text.strip().strip("`").replace("` s", " s")
    if text in WORDS:
        return WORDS[text]
    number, _, unit = text.partition(" ")
    if re.fullmatch(r"\d+(\.\d+)?", number) and unit in UNITS:
        return float(number) * UNITS[unit]
    if text.replace(" ", "").isdigit():
        return float(text.replace(" ", ""))
    return text


def same(documented: object, actual: object) -> bool:
    if documented is None:
        return actual in (None, ())
    if isinstance(documented, float) and not isinstance(actual, bool):
        return isinstance(actual, int | float) and documented == actual
    return documented == actual or str(documented).removeprefix("./") == str(actual)


def table_rows(section: str) -> list[list[str]]:
    rows = [line.split(" | ") for line in section.splitlines() if line.startswith("| ")]
    return [[cell.strip(" |") for cell in row] for row in rows[2:]]


def test_every_documented_setting_is_a_setting_with_the_documented_default() -> None:
    """docs/configuration.md against Settings: a limit renamed, a default changed on one side
    only, a variable documented that nothing reads, fail here."""
    import dataclasses

    settings = Settings.load({})
    fields = {field.name for field in dataclasses.fields(Settings)}
    top, limits = DOCS.read_text(encoding="utf-8").split("## Limits", 1)
    source = (Path(__file__).parent.parent / "src" / "tandem" / "config.py").read_text()
    wrong: list[str] = []
    for row in table_rows(top):
        variable, default = row[2].split()[0].strip("`"), row[3]
        if not variable.startswith("TANDEM_"):
            continue
        name = VARIABLE_FIELDS.get(variable, variable.removeprefix("TANDEM_").lower())
        if f'"{variable}"' not in source:
            wrong.append(f"{variable}: not read by Settings.load")
        elif (
            name in fields
            and "<data dir>" not in default
            and not same(documented_default(default), getattr(settings, name))
        ):
            wrong.append(f"{variable}: documented {default}, is {getattr(settings, name)!r}")
    for row in table_rows(limits):
        names = [name.strip("`") for name in row[0].split(" (")[0].split(" / ")]
        defaults = row[1].split(" / ") if len(names) > 1 else [row[1]]
        for name, default in zip(names, defaults, strict=True):
            if name not in fields:
                wrong.append(f"{name}: documented, no such setting")
            elif not same(documented_default(default), getattr(settings, name)):
                wrong.append(f"{name}: documented {default}, is {getattr(settings, name)!r}")
    assert wrong == []


def test_every_environment_variable_settings_read_is_documented() -> None:
    source = (Path(__file__).parent.parent / "src" / "tandem" / "config.py").read_text()
    documented = DOCS.read_text(encoding="utf-8")
    read = set(re.findall(r'"(TANDEM_[A-Z_]+)"', source))
    assert read and {variable for variable in read if variable not in documented} == set()


def test_every_setting_is_documented() -> None:
    """Each field of Settings is in docs/configuration.md, by its name or its variable."""
    import dataclasses

    documented = DOCS.read_text(encoding="utf-8")
    by_field = {name: variable for variable, name in VARIABLE_FIELDS.items()}
    missing = [
        field.name
        for field in dataclasses.fields(Settings)
        if f"`{field.name}`" not in documented
        and by_field.get(field.name, f"TANDEM_{field.name.upper()}") not in documented
    ]
    assert missing == []


@pytest.mark.parametrize(
    ("values", "refused"),
    [
        ({"TANDEM_MAX_RECORDING_DOWNLOADS": "10"}, "max_recording_downloads"),
        ({"TANDEM_MAX_RECORDING_DOWNLOADS": "9"}, "max_recording_downloads"),
        (
            {"TANDEM_DATABASE_POOL_SIZE": "4", "TANDEM_MAX_RECORDING_DOWNLOADS": "3"},
            "database_pool_size - 2",
        ),
        ({"TANDEM_RECHECK_CONCURRENCY": "10"}, "recheck_concurrency"),
        ({"TANDEM_DATABASE_POOL_SIZE": "0"}, "database_pool_size"),
    ],
)
def test_readers_that_could_take_every_pooled_connection_are_refused(
    values: dict[str, str], refused: str
) -> None:
    """Found by the review of the recordings' gates: playbacks and exports waiting behind an
    erasure hold a pooled connection each, up to ``max_recording_downloads`` of them; at 10 or
    more (the pool's fixed size) they could take every connection of the process, the
    erasure's and everyone else's included. The pool's size is a setting now, and the readers
    (and the sockets' re-checks) must leave connections free."""
    with pytest.raises(ConfigError, match=re.escape(refused)):
        Settings.load({"TANDEM_DATABASE_URL": "postgresql://u@db.example/tandem", **values})


def test_a_larger_pool_lets_more_recordings_be_read_at_once() -> None:
    settings = Settings.load(
        {
            "TANDEM_DATABASE_URL": "postgresql://u@db.example/tandem",
            "TANDEM_DATABASE_POOL_SIZE": "12",
            "TANDEM_MAX_RECORDING_DOWNLOADS": "10",
        }
    )
    assert (settings.database_pool_size, settings.max_recording_downloads) == (12, 10)
    assert Settings().database_pool_size == 10
    # SQLite has no pool: the readers take turns on its one connection.
    assert Settings(max_recording_downloads=20).max_recording_downloads == 20


@pytest.mark.parametrize(
    ("variable", "value", "refused"),
    [
        ("TANDEM_RECORDING_PURGE_SECONDS", "0", "recording_purge_seconds"),
        ("TANDEM_RECORDING_PURGE_SECONDS", "601", "recording_purge_seconds"),
        ("TANDEM_RECORDING_PURGE_SECONDS", "nan", "recording_purge_seconds"),
        ("TANDEM_ALLOW_ORIGIN_ATTEMPTS", "0", "allow_origin_attempts"),
        ("TANDEM_ALLOW_ORIGIN_ATTEMPTS", "11", "allow_origin_attempts"),
        ("TANDEM_ALLOW_ORIGIN_ATTEMPTS", "2.5", "must be a whole number"),
        ("TANDEM_CUSTOMER_TOKEN_LEEWAY_SECONDS", "-1", "customer_token_leeway_seconds"),
        ("TANDEM_CUSTOMER_TOKEN_LEEWAY_SECONDS", "301", "customer_token_leeway_seconds"),
        ("TANDEM_LOGIN_TOUCH_SECONDS", "-1", "login_touch_seconds"),
        ("TANDEM_LOGIN_TOUCH_SECONDS", "1800", "login_touch_seconds"),
        ("TANDEM_LOGIN_TOUCH_SECONDS", "inf", "login_touch_seconds"),
        ("TANDEM_MAX_ADVISORY_FILE_BYTES", "1048575", "max_advisory_file_bytes"),
        ("TANDEM_MAX_ADVISORY_FILE_BYTES", "1e9", "must be a whole number"),
    ],
)
def test_the_limits_that_were_constants_are_refused_out_of_range(
    variable: str, value: str, refused: str
) -> None:
    """The recordings' purge's interval, the start-up's tries at an --allow-origin origin, a
    customer token's clock leeway, how often a sign-in's use is written and the largest advisory
    file read were code constants:
    settings now, each refused out of its range in one line naming it."""
    with pytest.raises(ConfigError, match=refused):
        Settings.load({variable: value})


def test_the_limits_that_were_constants_are_read_from_the_environment() -> None:
    settings = Settings.load(
        {
            "TANDEM_RECORDING_PURGE_SECONDS": "600",
            "TANDEM_ALLOW_ORIGIN_ATTEMPTS": "10",
            "TANDEM_CUSTOMER_TOKEN_LEEWAY_SECONDS": "0",
            "TANDEM_LOGIN_TOUCH_SECONDS": "0",
            "TANDEM_MAX_ADVISORY_FILE_BYTES": "1048576",
        }
    )
    assert settings.max_advisory_file_bytes == 1048576
    assert Settings().max_advisory_file_bytes == 64 * 1024 * 1024
    assert (settings.recording_purge_seconds, settings.allow_origin_attempts) == (600.0, 10)
    assert (settings.customer_token_leeway_seconds, settings.login_touch_seconds) == (0, 0.0)
    defaults = Settings()
    assert (defaults.recording_purge_seconds, defaults.allow_origin_attempts) == (60.0, 3)
    assert (defaults.customer_token_leeway_seconds, defaults.login_touch_seconds) == (30, 60.0)
    # The overdue bound follows the purge's interval, not a fixed minute.
    assert Settings(recording_purge_seconds=10.0, max_recording_overdue_seconds=10.0)
    with pytest.raises(ConfigError, match="recording_purge_seconds"):
        Settings(recording_purge_seconds=120.0, max_recording_overdue_seconds=60.0)


@pytest.mark.parametrize(
    ("variable", "value", "refused"),
    [
        ("TANDEM_MAX_AUDIT_PAGE", "0", "max_audit_page"),
        ("TANDEM_MAX_AUDIT_PAGE", "9", "max_audit_page"),
        ("TANDEM_MAX_AUDIT_PAGE", "100001", "max_audit_page"),
        ("TANDEM_MAX_AUDIT_SEARCH", "49", "the console's audit page"),
        ("TANDEM_MAX_AUDIT_SEARCH", "10001", "max_audit_search"),
        ("TANDEM_MAX_RECORDING_LIST", "199", "what the console lists"),
        ("TANDEM_MAX_RECORDING_LIST", "100001", "max_recording_list"),
        ("TANDEM_MAX_RECORDING_LIST", "-1", "max_recording_list"),
        ("TANDEM_MAX_ACCOUNT_ACTIVITY", "9", "max_account_activity"),
        ("TANDEM_MAX_ACCOUNT_ACTIVITY", "1001", "max_account_activity"),
        ("TANDEM_MAX_ACCOUNT_ACTIVITY", "5.5", "must be a whole number"),
        ("TANDEM_AUDIT_APPEND_ATTEMPTS", "0", "audit_append_attempts"),
        ("TANDEM_AUDIT_APPEND_ATTEMPTS", "1000001", "audit_append_attempts"),
        ("TANDEM_CLOSE_NOTICE_SECONDS", "0", "close_notice_seconds"),
        ("TANDEM_CLOSE_NOTICE_SECONDS", "61", "close_notice_seconds"),
        ("TANDEM_CLOSE_NOTICE_SECONDS", "nan", "close_notice_seconds"),
        ("TANDEM_HURRIED_STOP_SECONDS", "0", "hurried_stop_seconds"),
        ("TANDEM_HURRIED_STOP_SECONDS", "-2", "hurried_stop_seconds"),
        ("TANDEM_HURRIED_STOP_SECONDS", "inf", "hurried_stop_seconds"),
        ("TANDEM_SHUTDOWN_RESERVE_SECONDS", "0", "shutdown_reserve_seconds"),
        ("TANDEM_SHUTDOWN_RESERVE_SECONDS", "3600", "shutdown_reserve_seconds"),
        ("TANDEM_MAX_REQUEST_BODY_BYTES", "4095", "max_request_body_bytes"),
        ("TANDEM_MAX_REQUEST_BODY_BYTES", "67108865", "max_request_body_bytes"),
    ],
)
def test_the_lists_and_waits_that_were_constants_are_refused_out_of_range(
    variable: str, value: str, refused: str
) -> None:
    """An audit page and search page, the recordings' list, an account's own activity, the
    audit append's attempts, a close's last notice, a hurried stop and what a stop leaves to
    uvicorn were code constants: settings now, each refused out of its range in one line
    naming it."""
    with pytest.raises(ConfigError, match=refused):
        Settings.load({variable: value})


def test_the_lists_and_waits_that_were_constants_are_read_from_the_environment() -> None:
    settings = Settings.load(
        {
            "TANDEM_MAX_AUDIT_PAGE": "10",
            "TANDEM_MAX_AUDIT_SEARCH": "50",
            "TANDEM_MAX_RECORDING_LIST": "100000",
            "TANDEM_MAX_ACCOUNT_ACTIVITY": "1000",
            "TANDEM_AUDIT_APPEND_ATTEMPTS": "10",
            "TANDEM_CLOSE_NOTICE_SECONDS": "0.5",
            "TANDEM_HURRIED_STOP_SECONDS": "60",
            "TANDEM_SHUTDOWN_RESERVE_SECONDS": "5",
            "TANDEM_MAX_REQUEST_BODY_BYTES": "4096",
        }
    )
    assert settings.max_request_body_bytes == 4096 and Settings().max_request_body_bytes == 65536
    assert (settings.max_audit_page, settings.max_audit_search) == (10, 50)
    assert (settings.max_recording_list, settings.max_account_activity) == (100000, 1000)
    assert settings.audit_append_attempts == 10 and settings.close_notice_seconds == 0.5
    assert (settings.hurried_stop_seconds, settings.shutdown_reserve_seconds) == (60.0, 5.0)
    defaults = Settings()
    assert (defaults.max_audit_page, defaults.max_audit_search) == (1000, 100)
    assert (defaults.max_recording_list, defaults.max_account_activity) == (500, 50)
    assert defaults.audit_append_attempts == 1000 and defaults.close_notice_seconds == 2.0
    assert (defaults.hurried_stop_seconds, defaults.shutdown_reserve_seconds) == (2.0, 2.0)
    # A stop shorter than the hurried one still starts: a second Ctrl-C never lengthens it.
    assert Settings(shutdown_timeout_seconds=1.0).hurried_stop_seconds == 2.0


def test_the_consoles_pages_are_the_ones_the_settings_may_not_go_below() -> None:
    """The console pages the audit trail by ``PAGE`` records (a shorter page is the trail's
    end) and lists ``limit=200`` recordings unpaged: a server answering fewer would have it
    show less without a word. The settings' floors are those numbers, read here from the SDK."""
    from tandem.config import CONSOLE_AUDIT_PAGE, CONSOLE_RECORDINGS_LIST

    console = Path(__file__).parent.parent / "sdk" / "src" / "console"
    office = (console / "office.ts").read_text(encoding="utf-8")
    pages = re.findall(r"const PAGE = (\d+);", office)
    assert pages == [str(CONSOLE_AUDIT_PAGE)]
    assert re.search(r"/api/audit/search\?\$\{params\}", office)
    recordings = (console / "recordings.ts").read_text(encoding="utf-8")
    asked = set(re.findall(r"/api/recordings\?limit=(\d+)", recordings))
    assert asked == {str(CONSOLE_RECORDINGS_LIST)}


CHECK_READS_ITSELF = {
    "data_dir": "where the check runs: the server's note of its settings is read from it",
    "database_url": "compared as `postgresql` (the URL carries a password)",
    "audit_key_file": "compared as `audit_key_file` (audit_key_path)",
    "tls_key": "compared as `tls_key`",
    "advisory_file": "the check reads the advisories itself: the file is the evidence",
    "max_advisory_file_bytes": "the bound of the advisory file the check reads itself",
    "max_input_file_bytes": "the bound of the policy file the check reads (its digest compared)",
}
"""Settings ``tandem compliance check`` reads that are not compared with the server's, and why."""


def test_every_setting_the_compliance_check_reads_is_compared_with_the_servers() -> None:
    """`tandem compliance check` runs with its own environment and refuses to report when the
    settings it reads differ from the running server's (serving_differences). The purges'
    interval of recordings, the overdue bound, the default re-training interval and the
    advisories' age were read but not compared: a shell with TANDEM_RECORDING_PURGE_SECONDS=60
    passed the retention item of a server purging every two days."""
    import dataclasses

    fields = {field.name for field in dataclasses.fields(Settings)}
    source = (Path(__file__).parent.parent / "src" / "tandem" / "compliance.py").read_text()
    read = {name for name in re.findall(r"settings\.([a-z_]+)", source) if name in fields}
    read.add("training_interval_days")  # through Training.interval, the organisation's default
    compared = set(Settings().checked_settings())
    assert read - compared - set(CHECK_READS_ITSELF) == set()
    assert set(CHECK_READS_ITSELF) <= fields


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TANDEM_RECORDING_PURGE_SECONDS", "172800"),
        ("TANDEM_MAX_RECORDING_OVERDUE_SECONDS", "172800"),
        ("TANDEM_TRAINING_INTERVAL_DAYS", "3650"),
        ("TANDEM_ADVISORY_MAX_AGE_DAYS", "365"),
        ("TANDEM_AUDIT_ANCHOR_EVERY", "1000"),
    ],
)
def test_a_server_with_other_compliance_settings_is_a_difference(
    tmp_path: Path, variable: str, value: str
) -> None:
    """The server notes these as it starts; a check run with the defaults names each."""
    from tandem.config import note_serving_settings, serving_differences

    overdue = {"TANDEM_MAX_RECORDING_OVERDUE_SECONDS": "172800"}  # at least the purge's interval
    server = Settings.load({"TANDEM_DATA_DIR": str(tmp_path), **overdue, variable: value})
    note_serving_settings(server)
    assert serving_differences(server) == []
    shell = Settings.load({"TANDEM_DATA_DIR": str(tmp_path)})
    name = variable.removeprefix("TANDEM_").lower()
    assert [d for d in serving_differences(shell) if d.startswith(f"{name}: here ")]


def test_a_setting_an_earlier_servers_note_lacks_is_named_as_not_noted(tmp_path: Path) -> None:
    """A server started by an earlier version noted fewer settings: the check names each it
    lacks as not noted, and says to restart it (was "the server None")."""
    from tandem.config import note_serving_settings, serving_differences

    settings = Settings.load({"TANDEM_DATA_DIR": str(tmp_path)})
    note_serving_settings(settings)
    path = settings.serving_settings_path
    noted = json.loads(path.read_text(encoding="utf-8"))
    del noted["recording_purge_seconds"]
    path.write_text(json.dumps(noted), encoding="utf-8")
    assert serving_differences(settings) == [
        "recording_purge_seconds: here 60.0, the server did not note it (started by an earlier "
        "version of Tandem: restart it to have it noted)"
    ]


@pytest.mark.parametrize(
    ("variable", "value", "refused"),
    [
        ("TANDEM_MAX_PAYLOAD_BYTES", "524288", "max_payload_bytes must be at least 525312"),
        ("TANDEM_MAX_CONTROL_BYTES", "4095", "max_control_bytes must be at least 4096"),
    ],
)
def test_frame_limits_below_what_the_browsers_send_are_refused(
    variable: str, value: str, refused: str
) -> None:
    """The browsers split a batch into frames of up to 512 KiB of payload and build their
    control messages to fit 4 KiB: a server set below either closed their sockets (1009)
    whenever a page sent a large batch or a customer token, without saying why at start."""
    with pytest.raises(ConfigError, match=refused):
        Settings.load({variable: value})
    assert Settings.load({"TANDEM_MAX_PAYLOAD_BYTES": "525312"}).max_payload_bytes == 525312


def test_the_frame_floor_is_the_sdks_largest_payload() -> None:
    from tandem.config import SDK_FRAME_BYTES, SDK_PAYLOAD_BYTES
    from tandem.recordings import MAX_PAYLOAD_BYTES

    payload = Path(__file__).parent.parent / "sdk" / "src" / "shared" / "payload.ts"
    [sdk] = re.findall(r"export const MAX_PAYLOAD_BYTES = ([0-9 *]+);", payload.read_text())
    assert math.prod(int(factor) for factor in sdk.split("*")) == SDK_PAYLOAD_BYTES
    # A frame: kind, epoch and counter (17 bytes), the format byte, the deflated payload (stored
    # blocks: 5 bytes each 65535, and the sync flush's 5), the AES-GCM tag (16).
    deflated = SDK_PAYLOAD_BYTES + 5 * (SDK_PAYLOAD_BYTES // 65535 + 1) + 5
    assert 17 + 1 + deflated + 16 <= SDK_FRAME_BYTES <= MAX_PAYLOAD_BYTES
