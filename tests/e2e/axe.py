"""Accessibility checks with axe-core (Deque), run inside the page under test (issue 15).

`assert_accessible(page)` injects the pinned axe-core from sdk/node_modules (installed by the set-up
step) and fails with every violation listed, each with its rule, impact, help text and the elements
it found. The rules are WCAG 2.0/2.1/2.2 A and AA (the bar issue 15 sets); axe descends into open
shadow roots, so the customer widget is checked like the page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Frame, Page

SDK = Path(__file__).resolve().parents[2] / "sdk"
AXE_SCRIPT = SDK / "node_modules" / "axe-core" / "axe.min.js"
WCAG_AA_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa"]


def axe_violations(
    target: Page | Frame, include: str | None = None, exclude: list[str] | None = None
) -> list[dict[str, Any]]:
    """Run axe-core in `target` (limited to `include` if given) and return its violations."""
    if not AXE_SCRIPT.exists():
        raise AssertionError(f"{AXE_SCRIPT} is missing: `make setup` installs it")
    if not target.evaluate("() => typeof window.axe === 'object'"):
        target.evaluate(AXE_SCRIPT.read_text(encoding="utf-8") + "\n;undefined")
    context: dict[str, Any] = {}
    if include:
        context["include"] = [include]
    if exclude:
        context["exclude"] = [[selector] for selector in exclude]
    result: dict[str, Any] = target.evaluate(
        """async ([context, tags]) => {
            const r = await window.axe.run(
                Object.keys(context).length ? context : document,
                { runOnly: { type: "tag", values: tags }, resultTypes: ["violations"] });
            return { violations: r.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => ({ target: n.target, summary: n.failureSummary })),
            })) };
        }""",
        [context, WCAG_AA_TAGS],
    )
    violations: list[dict[str, Any]] = result["violations"]
    return violations


def describe(violations: list[dict[str, Any]]) -> str:
    lines = []
    for violation in violations:
        lines.append(f"{violation['id']} ({violation['impact']}): {violation['help']}")
        for node in violation["nodes"][:5]:
            lines.append(f"    {node['target']}: {(node['summary'] or '').splitlines()[0:2]}")
    return "\n".join(lines)


def assert_accessible(
    target: Page | Frame, include: str | None = None, exclude: list[str] | None = None
) -> None:
    violations = axe_violations(target, include, exclude)
    assert not violations, "axe-core found WCAG 2.2 AA violations:\n" + describe(violations)
