"""What Tandem ships, as a CycloneDX SBOM, and which of it an advisory file says is vulnerable.

The build (``make setup``, hence ``make dist``) writes :data:`SBOM_FILE` from the two lock files:
``requirements/runtime.txt`` (every Python package the server runs, pinned with hashes) and
``sdk/package-lock.json`` (the npm packages bundled into the SDK and console; development-only
ones left out). It goes into the wheel with the static files; admins fetch it from
``GET /api/security/sbom``.

The operator supplies advisories in OSV's JSON format (https://ossf.github.io/osv-schema/): one
vulnerability object, a list of them, or ``{"vulns": [...]}`` (what osv.dev's query API
returns), e.g. fetched daily by a job with network access. :func:`match` compares every
component of the SBOM, and Tandem itself, against each advisory's affected versions and ranges.
No network is used here.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import re
import sys
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tandem import __version__
from tandem.config import MAX_ADVISORY_FILE_BYTES
from tandem.exceptions import ConfigError
from tandem.files import read_file
from tandem.supervise import Supervisor

log = logging.getLogger("tandem.security")

SBOM_FILE = Path(__file__).parent / "server" / "static" / "sbom" / "sbom.cdx.json"
"""Written by the build, shipped in the wheel (git-ignored)."""
ECOSYSTEMS = {"pypi": "PyPI", "npm": "npm"}
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


@dataclasses.dataclass(frozen=True, slots=True)
class Component:
    ecosystem: str
    """``PyPI`` or ``npm``."""
    name: str
    version: str

    @property
    def purl(self) -> str:
        kind = "pypi" if self.ecosystem == "PyPI" else "npm"
        name = self.name.replace("@", "%40") if kind == "npm" else self.name
        return f"pkg:{kind}/{name}@{self.version}"


def python_components(lock_text: str) -> list[Component]:
    """The ``name==version`` pins of a pip requirements lock (hash lines skipped)."""
    found = []
    for line in lock_text.splitlines():
        pinned = _PIN.match(line.strip())
        if pinned:
            found.append(Component("PyPI", _pypi_name(pinned[1]), pinned[2]))
    return found


def npm_components(lock: dict[str, Any]) -> list[Component]:
    """The packages of an npm lock file (v2/v3) that are not development-only."""
    found = []
    for path, entry in (lock.get("packages") or {}).items():
        if not path or not isinstance(entry, dict) or entry.get("dev") or entry.get("link"):
            continue
        name = entry.get("name") or path.rsplit("node_modules/", 1)[-1]
        if isinstance(entry.get("version"), str):
            found.append(Component("npm", str(name), entry["version"]))
    return found


def build_sbom(python_lock: Path, npm_lock: Path, now: datetime | None = None) -> dict[str, object]:
    """A CycloneDX 1.5 JSON document of Tandem and everything it ships. Raises ConfigError
    naming a lock file that cannot be read."""
    try:
        components = python_components(python_lock.read_text())
        components += npm_components(json.loads(npm_lock.read_text()))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the lock files for the SBOM: {exc}") from None
    unique = sorted(set(components), key=lambda c: (c.ecosystem, c.name, c.version))
    moment = (now or datetime.now(UTC)).replace(microsecond=0)
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {
            "timestamp": moment.isoformat().replace("+00:00", "Z"),
            "component": {
                "type": "application",
                "name": "tandem",
                "version": __version__,
                "purl": f"pkg:pypi/tandem@{__version__}",
                "bom-ref": "tandem",
            },
        },
        "components": [
            {
                "type": "library",
                "name": c.name,
                "version": c.version,
                "purl": c.purl,
                "bom-ref": c.purl,
                "properties": [{"name": "tandem:ecosystem", "value": c.ecosystem}],
            }
            for c in unique
        ],
    }


def sbom_components(sbom: dict[str, Any]) -> list[Component]:
    """Tandem itself and the components of a CycloneDX document (by their purls)."""
    found = []
    main = (sbom.get("metadata") or {}).get("component") or {}
    for entry in [main, *(sbom.get("components") or [])]:
        purl = str(entry.get("purl") or "")
        kind, _, rest = purl.removeprefix("pkg:").partition("/")
        if kind not in ECOSYSTEMS or "@" not in rest[1:]:
            continue
        name, _, version = rest.rpartition("@")
        name = name.replace("%40", "@")
        found.append(
            Component(ECOSYSTEMS[kind], _pypi_name(name) if kind == "pypi" else name, version)
        )
    return found


def installed_drift(
    components: Sequence[Component], installed: Callable[[str], str | None] | None = None
) -> tuple[str, ...]:
    """The SBOM's Python packages installed at another version than it lists (``name listed
    X, installed Y``): advisories are matched against the SBOM, so for these they were matched
    against versions that do not run (a package upgraded or downgraded in the server's
    environment by hand). Packages not installed (another platform's) run nothing: not listed.
    ``installed``: a package's installed version (default: :mod:`importlib.metadata`)."""
    import importlib.metadata

    def from_metadata(name: str) -> str | None:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    version_of = installed or from_metadata
    drift = []
    for component in components:
        if component.ecosystem != "PyPI" or component.name == "tandem":
            continue  # npm packages are bundled at build time; tandem is the running code
        running = version_of(component.name)
        if running is not None and running != component.version:
            drift.append(f"{component.name} listed {component.version}, installed {running}")
    return tuple(drift)


def load_sbom(path: Path = SBOM_FILE) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except OSError:
        raise ConfigError(f"no SBOM at {path}: the build writes it (`make setup`)") from None
    except ValueError:
        raise ConfigError(f"the SBOM {path} is not JSON") from None
    if not isinstance(value, dict) or value.get("bomFormat") != "CycloneDX":
        raise ConfigError(f"{path} is not a CycloneDX SBOM")
    return value


# Advisories


@dataclasses.dataclass(frozen=True, slots=True)
class Finding:
    advisory: str
    summary: str
    component: Component
    fixed: tuple[str, ...]
    """Versions that fix it (empty: no fix yet)."""

    def to_json(self) -> dict[str, object]:
        return {
            "advisory": self.advisory,
            "summary": self.summary,
            "ecosystem": self.component.ecosystem,
            "package": self.component.name,
            "version": self.component.version,
            "fixed": list(self.fixed),
        }


def load_advisories(path: Path, max_bytes: int = MAX_ADVISORY_FILE_BYTES) -> list[dict[str, Any]]:
    """The OSV vulnerability objects in ``path``. Raises ConfigError for a file that cannot
    be read, is over ``max_bytes`` or is not OSV JSON."""
    return read_advisories(path, max_bytes)[0]


def read_advisories(path: Path, max_bytes: int) -> tuple[list[dict[str, Any]], float | None]:
    """The OSV vulnerability objects in ``path`` and the newest time the data carries (epoch
    seconds; None: no date in it): each advisory's ``modified``, and a ``modified`` beside
    ``vulns`` that the job fetching them may write (the time of the fetch). The file's own
    modification time is not the data's age: copying it without its times, or a ``touch``,
    made old advisories look new. Raises ConfigError for a file that cannot be read, is not
    OSV JSON, is over ``max_bytes`` (``max_advisory_file_bytes``) or holds a ``modified`` that
    is not an RFC 3339 time."""
    stamped: object = None
    try:
        if path.stat().st_size > max_bytes:
            raise ConfigError(
                f"the advisory file {path} is over {max_bytes} bytes "
                "(TANDEM_MAX_ADVISORY_FILE_BYTES)"
            )
        value = json.loads(read_file(path, max_bytes))
    except OSError as exc:
        raise ConfigError(f"cannot read the advisory file {path}: {exc.strerror}") from None
    except (ValueError, RecursionError):
        raise ConfigError(f"the advisory file {path} is not JSON") from None
    if isinstance(value, dict) and isinstance(value.get("vulns"), list):
        stamped = value.get("modified")
        value = value["vulns"]
    elif isinstance(value, dict) and ("id" in value or "affected" in value):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigError(
            f"the advisory file {path} is not OSV JSON (an object, a list or {{'vulns': [...]}})"
        )
    for number, advisory in enumerate(value):
        if not isinstance(advisory.get("id"), str) or not isinstance(
            advisory.get("affected", []), list
        ):
            raise ConfigError(f"advisory {number} in {path} has no id or a bad 'affected' list")
        if not all(_well_formed(affected) for affected in advisory.get("affected") or []):
            raise ConfigError(
                f"advisory {advisory['id']!r} in {path} has an 'affected' entry whose "
                "'versions', 'ranges' or 'events' is not a list"
            )
    times = [_time(stamped, f"the file {path}")] if stamped is not None else []
    times += [
        _time(advisory["modified"], f"advisory {advisory['id']!r} in {path}")
        for advisory in value
        if "modified" in advisory
    ]
    return value, max(times, default=None)


def _time(value: object, where: str) -> float:
    """An OSV time (RFC 3339, e.g. ``2026-11-28T00:00:00Z``; one without a zone taken as UTC)
    in epoch seconds."""
    try:
        if not isinstance(value, str) or len(value) > 64:
            raise ValueError
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{where} has a 'modified' that is not an RFC 3339 time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _well_formed(affected: object) -> bool:
    """Whether an OSV ``affected`` entry has the shapes :func:`match` walks (lists where OSV
    has lists); an entry that is no object at all is skipped there."""
    if not isinstance(affected, dict):
        return True
    if not isinstance(affected.get("versions") or [], list):
        return False
    ranges = affected.get("ranges") or []
    if not isinstance(ranges, list):
        return False
    return all(
        not isinstance(spread, dict) or isinstance(spread.get("events") or [], list)
        for spread in ranges
    )


def match(components: Iterable[Component], advisories: Sequence[dict[str, Any]]) -> list[Finding]:
    """Every (advisory, component) where the component's version is affected."""
    by_key: dict[tuple[str, str], list[Component]] = {}
    for component in components:
        by_key.setdefault(_key(component.ecosystem, component.name), []).append(component)
    findings = []
    for advisory in advisories:
        for affected in advisory.get("affected") or []:
            if not isinstance(affected, dict):
                continue
            package = affected.get("package") or {}
            if not isinstance(package, dict):
                continue
            key = _key(str(package.get("ecosystem", "")), str(package.get("name", "")))
            for component in by_key.get(key, ()):
                if _affects(affected, component.version):
                    findings.append(
                        Finding(
                            advisory=str(advisory["id"]),
                            summary=str(advisory.get("summary") or advisory.get("details") or "")[
                                :300
                            ],
                            component=component,
                            fixed=_fixed_versions(affected),
                        )
                    )
    return sorted(set(findings), key=lambda f: (f.component.name, f.advisory))


@dataclasses.dataclass(frozen=True, slots=True)
class SecurityStatus:
    version: str
    components: int
    advisory_file: str | None
    advisory_age_days: float | None
    stale: bool
    findings: tuple[Finding, ...]
    problem: str | None = None
    """Why the status is incomplete (no SBOM, no or unreadable advisory file)."""

    @property
    def ok(self) -> bool:
        return not self.findings and not self.stale and self.problem is None

    @property
    def banner(self) -> str | None:
        """What admins are shown, if anything needs their attention."""
        if self.findings:
            names = sorted({f.component.name for f in self.findings})
            return f"Known vulnerabilities affect {', '.join(names)}: see `tandem security status`."
        if self.problem:
            return self.problem
        if self.stale:
            return (
                f"The advisory file is {self.advisory_age_days:.0f} days old: fetch current "
                "advisories (docs/security-updates.md)."
            )
        return None

    def to_json(self) -> dict[str, object]:
        return {
            "version": self.version,
            "components": self.components,
            "advisory_file": self.advisory_file,
            "advisory_age_days": self.advisory_age_days,
            "stale": self.stale,
            "affected": [f.to_json() for f in self.findings],
            "problem": self.problem,
            "banner": self.banner,
        }


def status(
    advisory_file: Path | None,
    max_age_days: float,
    now: float,
    sbom_file: Path = SBOM_FILE,
    *,
    max_bytes: int,
) -> SecurityStatus:
    """Compare the shipped SBOM with the advisory file. Never raises: what cannot be read is
    reported in ``problem``."""
    try:
        components = sbom_components(load_sbom(sbom_file))
    except ConfigError as exc:
        return SecurityStatus(__version__, 0, None, None, False, (), str(exc))
    if advisory_file is None:
        return SecurityStatus(
            __version__,
            len(components),
            None,
            None,
            False,
            (),
            # Also the warning `tandem serve` logs, which has no --advisory-file.
            "no advisory file: point TANDEM_ADVISORY_FILE at one (OSV JSON; `tandem security "
            "status` and `tandem compliance check` also take --advisory-file; "
            "docs/security-updates.md)",
        )
    try:
        stat = advisory_file.stat()
        findings, dated = _findings(
            advisory_file, (stat.st_mtime_ns, stat.st_size), components, max_bytes
        )
    except (OSError, ConfigError) as exc:
        problem = str(exc) if isinstance(exc, ConfigError) else f"cannot read {advisory_file}"
        return SecurityStatus(
            __version__, len(components), str(advisory_file), None, False, (), problem
        )
    if dated is None:
        return SecurityStatus(
            __version__,
            len(components),
            str(advisory_file),
            None,
            True,
            findings,
            f"the advisory file {advisory_file} carries no date, so nothing shows how old it "
            "is: its advisories' 'modified' times, or a 'modified' beside 'vulns' written when "
            "they are fetched (its own modification time is not taken: a copy or a touch "
            "changes it; docs/security-updates.md)",
        )
    age = max(0.0, (now - dated) / 86400)  # a date ahead of this clock counts as now
    return SecurityStatus(
        version=__version__,
        components=len(components),
        advisory_file=str(advisory_file),
        advisory_age_days=round(age, 2),
        stale=age > max_age_days,
        findings=findings,
    )


_MATCHED: dict[
    tuple[Path, tuple[int, int], tuple[Component, ...], int],
    tuple[tuple[Finding, ...], float | None],
] = {}
"""What each advisory file, as last changed, names of what ships, and the newest date its data
carries: parsing one (up to ``max_advisory_file_bytes`` of JSON, one long call that holds
the interpreter whatever thread runs it) at every admin's page held every live session of the
server meanwhile."""


def _findings(
    path: Path, version: tuple[int, int], components: Sequence[Component], max_bytes: int
) -> tuple[tuple[Finding, ...], float | None]:
    """:func:`match` of the advisories in ``path`` (as of ``version``: its modification time
    and size), and the newest date the data carries (:func:`read_advisories`), read again only
    when the file changed."""
    key = (path, version, tuple(components), max_bytes)
    found = _MATCHED.get(key)
    if found is None:
        advisories, dated = read_advisories(path, max_bytes)
        found = (tuple(match(components, advisories)), dated)
        for older in [k for k in _MATCHED if k[0] == path]:
            _MATCHED.pop(older, None)
        _MATCHED[key] = found
    return found


def warn(state: SecurityStatus) -> None:
    """Log what admins would be shown (the server does at start and then daily)."""
    if state.banner:
        log.warning("security: %s", state.banner)


@contextlib.asynccontextmanager
async def watching(
    advisory_file: Path | None,
    max_age_days: float,
    every: float,
    clock: Callable[[], float],
    background: Supervisor,
    max_bytes: int,
) -> AsyncIterator[None]:
    """Run :func:`watch` from now until ``background`` closes, supervised by it (task
    ``advisories``): a failure is logged and counted, and the watch runs again after a
    back-off; it never stops the server (from a task group of its own, it did: every request
    answered 500)."""
    background.keep_running(
        "advisories", lambda: watch(advisory_file, max_age_days, every, clock, max_bytes)
    )
    yield


async def watch(
    advisory_file: Path | None,
    max_age_days: float,
    every: float,
    clock: Callable[[], float],
    max_bytes: int,
) -> None:
    """Warn in the server's log at start and then every ``every`` seconds while the advisory
    file is missing, unreadable, stale or names something shipped. Runs until cancelled."""
    while True:
        warn(
            await asyncio.to_thread(
                status, advisory_file, max_age_days, clock(), max_bytes=max_bytes
            )
        )
        await asyncio.sleep(every)


# Versions


def _affects(affected: dict[str, Any], version: str) -> bool:
    versions = affected.get("versions") or []
    if isinstance(versions, list) and version in versions:
        return True
    for spread in affected.get("ranges") or []:
        if not isinstance(spread, dict) or spread.get("type") not in ("ECOSYSTEM", "SEMVER"):
            continue  # GIT ranges name commits, not releases
        if _in_range(version, spread.get("events") or []):
            return True
    return False


def _in_range(version: str, events: list[Any]) -> bool:
    """OSV's algorithm: walk the events in version order; affected after ``introduced`` until
    ``fixed`` (exclusive) or ``last_affected`` (inclusive)."""
    mine = version_key(version)
    inside = False
    ordered = []
    for event in events:
        if isinstance(event, dict) and len(event) == 1:
            (kind, value), *_ = event.items()
            if kind in ("introduced", "fixed", "last_affected", "limit"):
                ordered.append((version_key("0" if value == "0" else str(value)), kind))
    ordered.sort(key=lambda pair: (pair[0], pair[1] != "introduced"))
    for at, kind in ordered:
        if kind == "introduced":
            inside = inside or mine >= at
        elif (kind == "last_affected" and mine > at) or (kind != "last_affected" and mine >= at):
            inside = False  # fixed (or limit) at or below this version
    return inside


def _fixed_versions(affected: dict[str, Any]) -> tuple[str, ...]:
    fixed = []
    for spread in affected.get("ranges") or []:
        for event in (spread.get("events") or []) if isinstance(spread, dict) else []:
            if isinstance(event, dict) and isinstance(event.get("fixed"), str):
                fixed.append(event["fixed"])
    return tuple(dict.fromkeys(fixed))


MAX_VERSION_CHARS = 128
"""Characters of a version compared (:func:`version_key`); the rest is ignored."""

_PRE = {"dev": -4, "a": -3, "alpha": -3, "b": -2, "beta": -2, "c": -1, "rc": -1, "pre": -1}


def version_key(version: str) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...]]:
    """A sort key good for PEP 440 and SemVer releases as they appear in lock files:
    ``1.2`` == ``1.2.0`` < ``1.2.1rc1`` == ``1.2.1-rc.1`` < ``1.2.1`` < ``1.2.1.post1``; build
    metadata (``+…``) ignored."""
    # No release has a longer version; and a number of thousands of digits (an advisory file
    # may hold anything) would not even convert to an int.
    text = version.strip().lower().lstrip("v").split("+", 1)[0][:MAX_VERSION_CHARS]
    matched = re.match(r"(\d+(?:\.\d+)*)(.*)", text)
    if matched is None:
        return (), ((0, -9),)
    release = [int(part) for part in matched[1].split(".")]
    while release and release[-1] == 0:
        release.pop()  # 1.2.0 == 1.2
    suffix: list[tuple[int, int]] = []
    for token in re.findall(r"\d+|[a-z]+", matched[2]):
        if token.isdigit():
            suffix.append((1, int(token)))
        elif token in _PRE:
            suffix.append((0, _PRE[token]))
        elif token == "post":  # noqa: S105 (a version label, not a secret)
            suffix.append((2, 0))
        else:
            suffix.append((0, -5))  # another label: before the release
    return tuple(release), tuple(suffix or [(1, -1)])  # the release after its pre-releases


def _key(ecosystem: str, name: str) -> tuple[str, str]:
    if ecosystem.lower() == "pypi":
        return "pypi", _pypi_name(name)
    return ecosystem.lower(), name


def _pypi_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tandem.sbom OUT``: write the SBOM from the repository's lock files."""
    args = list(sys.argv[1:] if argv is None else argv)
    out = Path(args[0]) if args else SBOM_FILE
    root = Path.cwd()
    sbom = build_sbom(root / "requirements" / "runtime.txt", root / "sdk" / "package-lock.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(sbom, indent=1) + "\n")
    print(f"wrote {out} ({len(sbom['components'])} components)")  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
