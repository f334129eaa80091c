"""The operators' docs name the tests that prove each control (docs/security.md, the threat
model, ...): every test they name exists, so a renamed or removed test cannot leave a control
claimed by a test that no longer runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
SETTINGS_NAMED_LIKE_TESTS = {"test_private_network"}
"""A setting (docs/configuration.md) whose name starts as a test's does."""


def python_tests() -> dict[str, set[str]]:
    """Each test function's name and the files that define it (path from the repository)."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / "tests").rglob("*.py"):
        for match in re.finditer(r"^(?:async )?def (test_\w+)", path.read_text(), re.MULTILINE):
            found.setdefault(match.group(1), set()).add(path.relative_to(ROOT).as_posix())
    return found


def files_of_tests() -> dict[str, set[str]]:
    """Each test file's name and its paths: docs name some by their name alone."""
    found: dict[str, set[str]] = {}
    for path in [*(ROOT / "tests").rglob("test_*.py"), *(ROOT / "sdk" / "test").rglob("*.ts")]:
        found.setdefault(path.name, set()).add(path.relative_to(ROOT).as_posix())
    return found


def missing(reference: str, tests: dict[str, set[str]], files: dict[str, set[str]]) -> bool:
    """Whether ``reference`` (a `code` span of a doc) names a test or test file there is none of."""
    path, _, name = reference.partition("::")
    name = name.split("[")[0]  # a parameter set: the function is what must exist
    if path.startswith(("tests/", "sdk/test/")):
        if not (ROOT / path.rstrip("/")).exists():
            return True
        return bool(name) and path not in tests.get(name, set())
    if path.endswith((".py", ".ts")) and "/" not in path and path.startswith("test"):
        known = files.get(path)
        if not known:
            return True
        return bool(name) and not (known & tests.get(name, set()))
    if path == "" and name:  # `::test_x`, following a file named just before
        return name.startswith("test_") and name not in tests
    plain = reference.split("[")[0]
    if re.fullmatch(r"test_\w+", plain) and plain not in SETTINGS_NAMED_LIKE_TESTS:
        return plain not in tests
    return False


def test_every_test_the_docs_name_exists() -> None:
    tests, files = python_tests(), files_of_tests()
    gone = [
        f"{doc.relative_to(ROOT)}: {reference}"
        for doc in DOCS
        for reference in re.findall(r"`([^`\s]+)`", doc.read_text())
        if missing(reference, tests, files)
    ]
    assert gone == [], "the docs name tests that do not exist:\n" + "\n".join(gone)


def test_a_renamed_test_is_caught() -> None:
    """The check itself: a name no test has, in each form the docs use, is caught."""
    tests, files = python_tests(), files_of_tests()
    assert missing("tests/test_audit.py::test_no_such_test_anywhere", tests, files)
    assert missing("test_audit.py::test_no_such_test_anywhere", tests, files)
    assert missing("tests/no_such_file.py", tests, files)
    assert missing("test_no_such_test_anywhere", tests, files)
    assert not missing("tests/test_doc_references.py::test_a_renamed_test_is_caught", tests, files)
    assert not missing("test_doc_references.py::test_every_test_the_docs_name_exists", tests, files)
    assert not missing("test_private_network", tests, files)  # a setting
