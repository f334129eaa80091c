"""The rule for names people read, and how a name stored before it is shown (tandem.names)."""

from __future__ import annotations

import json
import random
import subprocess
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tandem.names import MAX_MARKS, REPLACEMENT, display_line, name_refusal, shown_name

INVISIBLE = (
    "\u200e",  # left-to-right mark
    "\u200f",  # right-to-left mark
    "\u061c",  # Arabic letter mark
    *(chr(c) for c in range(0x2066, 0x206A)),  # isolates
    *(chr(c) for c in range(0x202A, 0x202F)),  # embeddings and overrides
    "\u180e",  # Mongolian vowel separator
    "\u200b",  # zero-width space
    "\u200c",  # zero-width non-joiner between Latin letters
    "\u200d",  # zero-width joiner between Latin letters
    *(chr(c) for c in range(0x2060, 0x2065)),  # word joiner, invisible operators
    "\ufeff",  # byte order mark
    "\U000e0001",  # language tag
    "\U000e0041",  # tag letter A
    "\U000e007f",  # cancel tag
    "\u3164",  # Hangul filler
    "\u115f",  # Hangul choseong filler
    "\u00ad",  # soft hyphen
)
"""Each draws nothing (or reorders what is around it): "Ann{c}Smith" would look like another
account's "AnnSmith", or "Ann Smith{c}" like "Ann Smith"."""


@pytest.mark.parametrize("char", INVISIBLE, ids=lambda c: f"U+{ord(c):04X}")
def test_a_name_with_an_invisible_character_is_refused_and_shown_visibly(char: str) -> None:
    name = f"Ann{char}Smith"
    refusal = name_refusal(name, "display name")
    assert refusal is not None and f"U+{ord(char):04X}" in refusal, refusal
    assert shown_name(name, "ann") == f"Ann{REPLACEMENT}Smith"  # not "AnnSmith": told apart
    assert shown_name(f"Ann Smith{char}", "ann") == f"Ann Smith{REPLACEMENT}"


def test_a_variation_selector_or_mark_with_nothing_to_sit_on_is_refused() -> None:
    for name in ("\ufe0fAnn", "Ann \u0301Smith", "\U000e0100Ann"):
        assert "on nothing" in (name_refusal(name) or ""), name
        assert name_refusal(shown_name(name, "ann")) is None


def test_marks_stacked_deep_are_refused_and_cut_when_shown() -> None:
    zalgo = "A" + "\u0301\u0300\u0302" * 30
    assert f"at most {MAX_MARKS} marks" in (name_refusal(zalgo) or "")
    assert shown_name(zalgo, "ann") == "A" + ("\u0301\u0300\u0302" * 2)[:MAX_MARKS]
    assert len(display_line("x" + "\u0301" * 500)) == 1 + MAX_MARKS


def test_a_name_of_nothing_visible_is_shown_as_its_fallback() -> None:
    assert shown_name("\u2028 \u3164", "ann") == REPLACEMENT  # the filler shows as U+FFFD
    assert shown_name("\u2028 \n", "ann") == "ann"


def test_names_of_every_script_pass_as_they_are() -> None:
    for name in (
        "Nguy\u1ec5n V\u0103n A",  # Vietnamese, precomposed
        "Nguye\u0302\u0303n",  # decomposed: two marks on one letter
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # Persian, a non-joiner in place
        "\u0915\u094d\u200d\u0937",  # Devanagari, a joiner after a virama
        "\U0001f469\u200d\U0001f4bb Ada",  # an emoji sequence
        "\U0001f469\U0001f3fd\u200d\U0001f4bb Ada",  # with a skin tone
        "\U0001f3f3\ufe0f\u200d\U0001f308 Ada",  # with a variation selector
        "Zo\u00eb \u03a9mega \u674e",
        "N" * 100,
    ):
        assert name_refusal(name) is None, name
        assert shown_name(name, "x") == name


@given(st.text(max_size=300), st.text(alphabet="abc", min_size=1, max_size=5))
def test_a_shown_name_always_passes_the_rule(text: str, fallback: str) -> None:
    shown = shown_name(text, fallback)
    assert shown == fallback or name_refusal(shown) is None, repr(shown)


@given(st.text(max_size=300))
def test_a_display_line_is_one_line_without_invisible_characters(text: str) -> None:
    line = display_line(text)
    assert "\n" not in line and "\u2028" not in line and "\u202e" not in line
    assert "\u200e" not in line and "\u3164" not in line


TURNING = list(
    "aA\u00e9 \u200c\u200d\u0301\ufe0f\u094d\u0915\u0645\u06cc\U0001f469\U0001f3fd\u200e\u3164"
    "\n\u2028\u00a0\U000e0041\ud800\u0300\u034f\ufe00\U000e0100\u180b\u1820\u845b\u20e31"
    "\u09b0\u0d4d\u2764\u203c"
)
"""The characters the rule turns on: joiners in and out of their place, marks, fillers."""


@given(st.lists(st.sampled_from(TURNING), max_size=120).map("".join))
def test_a_shown_name_of_the_characters_the_rule_turns_on_passes_it(text: str) -> None:
    shown = shown_name(text, "fallback")
    assert shown == "fallback" or name_refusal(shown) is None, (repr(text), repr(shown))


VECTORS = json.loads(
    (Path(__file__).parent / "fixtures" / "name_vectors.json").read_text(encoding="utf-8")
)
"""Names of every script a bank's agents have, and names with each character that draws nothing:
the same table sdk/test/names.test.ts reads, so that the server and the browsers agree."""


@pytest.mark.parametrize("vector", VECTORS, ids=lambda vector: vector["why"])
def test_the_server_and_the_browsers_agree_on_the_shared_names(vector: dict[str, Any]) -> None:
    name = vector["name"]
    assert (name_refusal(name) is None) is vector["is_a_name"], name_refusal(name)
    assert shown_name(name, "fallback") == vector["shown"]
    assert name_refusal(vector["shown"]) is None


SDK = Path(__file__).parents[1] / "sdk"
BROWSERS_RULE = """
import { plausibleName } from %s;
let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const names = JSON.parse(input);
  process.stdout.write(JSON.stringify(names.map((name) => plausibleName(name))));
});
"""


def test_the_browsers_rule_agrees_with_the_servers_on_every_character_and_random_names(
    tmp_path: Path,
) -> None:
    """sdk/src/shared/names.ts run by node on what this process's rule decides: each assigned
    character of the Basic Multilingual Plane between two words, and random names of the
    characters the rule turns on. (Unassigned ones are the server's to refuse, by its own
    Unicode version.) The table both suites read has the cases worth naming; this, the rest."""
    entry = tmp_path / "rule.mjs"
    entry.write_text(BROWSERS_RULE % json.dumps(str(SDK / "src" / "shared" / "names.ts")))
    bundle = tmp_path / "rule.bundle.mjs"
    subprocess.run(
        [
            SDK / "node_modules" / ".bin" / "esbuild",
            entry,
            "--bundle",
            "--platform=node",
            "--format=esm",
            f"--outfile={bundle}",
            "--log-level=warning",
        ],
        check=True,
        timeout=120,
    )
    names = [
        f"Ann{chr(point)}Smith"
        for point in range(0x10000)
        if not 0xD800 <= point <= 0xDFFF and unicodedata.category(chr(point)) != "Cn"
    ]
    alphabet = [c for c in TURNING if unicodedata.category(c) not in ("Cn", "Cs")]
    draw = random.Random(20261201)
    names += ["".join(draw.choices(alphabet, k=draw.randint(1, 10))) for _ in range(20000)]
    ran = subprocess.run(
        ["node", bundle],
        input=json.dumps(names),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    browsers = json.loads(ran.stdout)
    differ = [
        name
        for name, passes in zip(names, browsers, strict=True)
        if passes != (name_refusal(name) is None)
    ]
    assert differ == [], [
        f"{name!r}: the server {'refuses' if name_refusal(name) else 'takes'} it, not the browsers"
        for name in differ[:10]
    ]
