"""The SBOM (tandem.sbom) and `tandem security status`: the build records exactly what the lock
files pin; an OSV advisory fixture naming versions actually shipped is detected (exact version and
range), near misses are not, a clean file passes, a stale or missing one fails. No network."""

from __future__ import annotations

import json
import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tandem import __version__, sbom
from tandem.config import MAX_ADVISORY_FILE_BYTES
from tandem.exceptions import ConfigError
from tests.conftest import tandem_in_process as run  # tests/test_cli.py runs the real command

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = Path(__file__).parent / "fixtures" / "osv-advisories.json"
T0 = 1_800_000_000.0


def osv_time(epoch: float) -> str:
    """An OSV ``modified`` time (RFC 3339, UTC)."""
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


RUNTIME_LOCK = ROOT / "requirements" / "runtime.txt"
NPM_LOCK = ROOT / "sdk" / "package-lock.json"


def shipped(ecosystem: str, name: str) -> str:
    """The version of ``name`` the lock files pin."""
    found = sbom.build_sbom(RUNTIME_LOCK, NPM_LOCK)
    for component in sbom.sbom_components(found):
        if (component.ecosystem, component.name) == (ecosystem, name):
            return component.version
    raise AssertionError(f"{ecosystem} {name} is not shipped")


def test_the_sbom_lists_every_pinned_python_package_and_bundled_npm_package() -> None:
    document = sbom.build_sbom(RUNTIME_LOCK, NPM_LOCK)
    assert document["bomFormat"] == "CycloneDX" and document["specVersion"] == "1.5"
    purls = {c["purl"] for c in document["components"]}  # type: ignore[attr-defined]
    pins = re.findall(r"^([a-z0-9._-]+)==([^ ;\\]+)", RUNTIME_LOCK.read_text(), re.MULTILINE)
    assert pins and {f"pkg:pypi/{n}@{v}" for n, v in pins} <= purls
    npm = json.loads(NPM_LOCK.read_text())["packages"]
    bundled = {
        f"pkg:npm/{path.rsplit('node_modules/', 1)[1].replace('@', '%40')}@{entry['version']}"
        for path, entry in npm.items()
        if path and not entry.get("dev")
    }
    developer_only = {
        f"pkg:npm/{path.rsplit('node_modules/', 1)[1]}@{entry['version']}"
        for path, entry in npm.items()
        if entry.get("dev")
    }
    assert bundled and bundled <= purls
    assert not developer_only & purls  # esbuild, typescript…: not shipped
    main = document["metadata"]["component"]  # type: ignore[index]
    assert main["purl"] == f"pkg:pypi/tandem@{__version__}"


def test_the_build_wrote_the_sbom_the_package_ships() -> None:
    built = sbom.load_sbom()  # written by `make setup` into the package's static files
    fresh = sbom.build_sbom(RUNTIME_LOCK, NPM_LOCK)
    assert built["components"] == fresh["components"]
    assert built["metadata"]["component"] == fresh["metadata"]["component"]


def test_the_fixture_names_versions_actually_shipped() -> None:
    assert shipped("PyPI", "starlette") == "1.10.0", "update tests/fixtures/osv-advisories.json"
    assert sbom.version_key("2.0.0-alpha.1") <= sbom.version_key(shipped("npm", "rrweb"))
    assert sbom.version_key(shipped("npm", "rrweb")) < sbom.version_key("2.2.3")


def test_the_advisory_fixture_is_detected_and_near_misses_are_not() -> None:
    components = sbom.sbom_components(sbom.load_sbom())
    findings = sbom.match(components, sbom.load_advisories(FIXTURE))
    assert [(f.advisory, f.component.ecosystem, f.component.name) for f in findings] == [
        ("TANDEM-TEST-0002", "npm", "rrweb"),
        ("TANDEM-TEST-0001", "PyPI", "starlette"),
    ]
    assert findings[0].fixed == ("2.2.3",)
    assert findings[1].fixed == ()  # named by version only: no fix known


def test_tandem_itself_is_matched_by_its_running_version() -> None:
    advisory = {
        "id": "TANDEM-SELF",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "tandem"},
                "ranges": [
                    {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "99.0"}]}
                ],
            }
        ],
    }
    [finding] = sbom.match(sbom.sbom_components(sbom.load_sbom()), [advisory])
    assert finding.component.version == __version__ and finding.fixed == ("99.0",)


@pytest.mark.parametrize(
    ("events", "affected"),
    [
        ([{"introduced": "0"}, {"fixed": "1.10.0"}], False),  # fixed exactly here
        ([{"introduced": "0"}, {"fixed": "1.10.1"}], True),
        ([{"introduced": "1.10.0"}], True),
        ([{"introduced": "1.10.0.post1"}], False),
        ([{"introduced": "0"}, {"last_affected": "1.10.0"}], True),
        ([{"introduced": "0"}, {"last_affected": "1.9.9"}], False),
        ([{"introduced": "0"}, {"fixed": "1.2"}, {"introduced": "1.10rc1"}], True),
        ([{"introduced": "0"}, {"fixed": "1.10.0rc1"}], False),
    ],
)
def test_osv_ranges(events: list[dict[str, str]], affected: bool) -> None:
    spread = {"package": {"ecosystem": "PyPI", "name": "x"}, "ranges": [{"type": "ECOSYSTEM"}]}
    spread["ranges"][0]["events"] = events  # type: ignore[index]
    found = sbom.match([sbom.Component("PyPI", "x", "1.10.0")], [{"id": "A", "affected": [spread]}])
    assert bool(found) is affected


@given(st.lists(st.integers(0, 30), min_size=1, max_size=4), st.integers(0, 5))
def test_versions_order_like_releases(release: list[int], extra: int) -> None:
    base = ".".join(map(str, release))
    key = sbom.version_key
    assert key(base) == key(base + ".0")
    assert key(f"{base}rc{extra}") < key(base) < key(f"{base}.post{extra}")
    assert key(f"{base}a{extra}") < key(f"{base}b{extra}") < key(f"{base}rc{extra}")
    assert key(base) < key(f"{base}.1")


def test_a_version_of_thousands_of_digits_is_compared_not_a_crash() -> None:
    huge = "1" * 5000  # past Python's limit for converting digits to an int
    assert sbom.version_key(huge) > sbom.version_key("2.0")
    assert sbom.version_key(huge + ".1") == sbom.version_key(huge)  # compared up to a point


def test_malformed_advisory_files_are_clear_errors(tmp_path: Path) -> None:
    bad = tmp_path / "osv.json"
    for text, message in (
        ("{", "not JSON"),
        ('"x"', "not OSV JSON"),
        ('[{"affected": []}]', "has no id"),
        ('[{"id": "X-1", "affected": [{"ranges": 1}]}]', "is not a list"),
        ('[{"id": "X-1", "affected": [{"versions": {"a": 1}}]}]', "is not a list"),
        (
            '[{"id": "X-1", "affected": [{"ranges": [{"type": "SEMVER", "events": 7}]}]}]',
            "not a list",
        ),
    ):
        bad.write_text(text)
        with pytest.raises(ConfigError, match=message):
            sbom.load_advisories(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        sbom.load_advisories(tmp_path / "missing.json")


def test_a_touched_file_of_old_advisories_stays_stale(tmp_path: Path) -> None:
    """The advisories' age was the file's modification time: copied without its times
    (``cp``, a configuration tool's deployment, a backup restored) or touched, a month-old
    fetch looked new and passed. The age is now the newest date the data carries."""
    advisories = tmp_path / "osv.json"
    vulns = json.loads(FIXTURE.read_text())["vulns"][2:]  # the near misses: nothing affected
    for vuln in vulns:
        vuln["modified"] = osv_time(T0 - 30 * 86400)
    for text in (json.dumps(vulns), json.dumps({"vulns": vulns})):
        advisories.write_text(text)
        os.utime(advisories, (T0, T0))  # touched just now
        state = sbom.status(advisories, 7.0, T0 + 60, max_bytes=MAX_ADVISORY_FILE_BYTES)
        assert (state.stale, state.advisory_age_days, state.findings) == (True, 30.0, ())
        assert "30 days old" in (state.banner or "")
    # A fetch job that stamps the file when it fetched it (a clean answer carries no advisory).
    advisories.write_text(json.dumps({"vulns": vulns, "modified": osv_time(T0 - 86400)}))
    os.utime(advisories, (T0 - 40 * 86400, T0 - 40 * 86400))  # an old copy's time: not taken
    state = sbom.status(advisories, 7.0, T0, max_bytes=MAX_ADVISORY_FILE_BYTES)
    assert (state.ok, state.advisory_age_days) == (True, 1.0)


def test_an_advisory_file_that_carries_no_date_is_not_taken_for_current(tmp_path: Path) -> None:
    advisories = tmp_path / "osv.json"
    for text in ("[]", '{"vulns": []}', '[{"id": "X-1", "affected": []}]'):
        advisories.write_text(text)
        os.utime(advisories, (T0, T0))
        state = sbom.status(advisories, 7.0, T0, max_bytes=MAX_ADVISORY_FILE_BYTES)
        assert not state.ok and state.stale and state.advisory_age_days is None
        assert "carries no date" in (state.problem or "") and state.banner == state.problem
    for text in ('{"vulns": [], "modified": "yesterday"}', '[{"id": "X-1", "modified": 7}]'):
        advisories.write_text(text)
        with pytest.raises(ConfigError, match="'modified' that is not an RFC 3339 time"):
            sbom.load_advisories(advisories)
        assert "not an RFC 3339 time" in (
            sbom.status(advisories, 7.0, T0, max_bytes=MAX_ADVISORY_FILE_BYTES).problem or ""
        )


# The command


def env_without_tandem() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TANDEM_")}


def test_security_status_reports_the_fixture_and_exits_non_zero() -> None:
    result = run("security", "status", "--advisory-file", str(FIXTURE), env=env_without_tandem())
    assert result.returncode == 1, result.stderr
    assert "AFFECTED PyPI starlette 1.10.0: TANDEM-TEST-0001 (no fix yet)" in result.stdout
    assert "AFFECTED npm rrweb 2.2.2: TANDEM-TEST-0002 (fixed in 2.2.3)" in result.stdout
    assert "TANDEM-TEST-0003" not in result.stdout


def test_security_status_passes_a_clean_sbom(tmp_path: Path) -> None:
    clean = tmp_path / "osv.json"
    vulns = json.loads(FIXTURE.read_text())["vulns"]
    # Only the near misses, fetched now.
    clean.write_text(json.dumps({"vulns": vulns[2:], "modified": osv_time(time.time())}))
    result = run("security", "status", "--advisory-file", str(clean), env=env_without_tandem())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no known vulnerability" in result.stdout


def test_security_status_fails_a_stale_or_missing_advisory_file(tmp_path: Path) -> None:
    clean = tmp_path / "osv.json"
    clean.write_text(json.dumps({"vulns": [], "modified": osv_time(time.time() - 8 * 86400)}))
    stale = run("security", "status", "--advisory-file", str(clean), env=env_without_tandem())
    assert stale.returncode == 1 and "STALE" in stale.stdout
    env = {**env_without_tandem(), "TANDEM_ADVISORY_MAX_AGE_DAYS": "10"}
    assert run("security", "status", "--advisory-file", str(clean), env=env).returncode == 0
    missing = run("security", "status", "--format", "json", env=env_without_tandem())
    assert missing.returncode == 1
    assert "no advisory file" in json.loads(missing.stdout)["problem"]


def test_the_missing_advisory_file_is_told_in_words_a_server_takes() -> None:
    """`tandem serve` logs this problem at start, and `serve` has no --advisory-file: the
    warning told its operator to give one, an option the command refuses."""
    problem = sbom.status(None, 7.0, time.time(), max_bytes=MAX_ADVISORY_FILE_BYTES).problem or ""
    assert problem.startswith("no advisory file: point TANDEM_ADVISORY_FILE at one")
    assert "give one with --advisory-file" not in problem


def test_an_advisory_file_over_max_advisory_file_bytes_is_a_problem_not_read(
    tmp_path: Path,
) -> None:
    """``max_advisory_file_bytes`` (a code constant of 64 MiB before) bounds the advisory file
    `tandem security status` (as the server and the compliance check) reads: a clean file of
    about 1.5 MiB passes by default and is refused, unread, with a limit of 1 MiB; a limit
    under 1 MiB is refused in one line naming the setting."""
    clean = tmp_path / "osv.json"
    vulns = json.loads(FIXTURE.read_text())["vulns"]
    padding = "x" * (3 * 512 * 1024)  # an OSV summary as long as a real export's many
    clean.write_text(
        json.dumps({"vulns": vulns[2:], "modified": osv_time(time.time()), "note": padding})
    )
    passed = run("security", "status", "--advisory-file", str(clean), env=env_without_tandem())
    assert passed.returncode == 0, passed.stdout + passed.stderr
    env = {**env_without_tandem(), "TANDEM_MAX_ADVISORY_FILE_BYTES": str(1024 * 1024)}
    refused = run("security", "status", "--advisory-file", str(clean), env=env)
    assert refused.returncode == 1
    assert "over 1048576 bytes" in refused.stdout + refused.stderr
    env["TANDEM_MAX_ADVISORY_FILE_BYTES"] = "1000"
    too_small = run("security", "status", "--advisory-file", str(clean), env=env)
    assert too_small.returncode != 0
    assert "max_advisory_file_bytes" in too_small.stdout + too_small.stderr
