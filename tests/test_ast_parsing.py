"""The test process's guard against CPython's AST depth bug (tests/conftest.py,
``_ast_parse_whole``): a garbage collector's finalizer that parses (as formatting a traceback
does) while pytest parses a module must break neither parse."""

from __future__ import annotations

import ast
import gc
from pathlib import Path


class ReportedWhenCollected:
    """Garbage only the collector finds (a cycle), whose finalizer parses: as asyncio's report
    of a task exception never retrieved formats its traceback."""

    def __init__(self, parsed: list[ast.Module]) -> None:
        self.itself = self
        self.parsed = parsed

    def __del__(self) -> None:
        self.parsed.append(ast.parse("log.error(task, exc_info=error)"))


def test_a_finalizer_parsing_while_a_module_is_parsed_breaks_neither_parse() -> None:
    source = Path(ast.__file__).read_text()  # enough nodes to start a collection midway
    parsed: list[ast.Module] = []
    for _ in range(3):
        ReportedWhenCollected(parsed)
        tree = ast.parse(source)
        assert ast.unparse(tree) == ast.unparse(ast.parse(source))
    gc.collect()
    assert len(parsed) == 3
