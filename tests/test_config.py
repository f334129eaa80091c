"""Settings: precedence, validation, origin normalisation."""

from __future__ import annotations

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
    ],
)
def test_non_origins_are_refused(bad: str) -> None:
    with pytest.raises(ConfigError):
        normalize_origin(bad)


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
