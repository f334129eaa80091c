"""The SDK's generated types (sdk/src/generated/) are exactly what the Python definitions give."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec
import pytest

from tandem.protocol import typescript


def test_the_generated_typescript_matches_the_python_definitions() -> None:
    assert typescript.stale() == [], "run `make generate` and commit sdk/src/generated/"


def test_a_file_edited_by_hand_is_reported(tmp_path: Path) -> None:
    typescript.write(tmp_path)
    (tmp_path / "protocol.ts").write_text("// edited by hand\n")
    assert typescript.stale(tmp_path) == ["protocol.ts"]


def test_every_server_message_has_a_schema_the_sdk_checks() -> None:
    text = typescript.protocol_module()
    for tag in ("created", "resumed", "team_policy", "ended", "record_request", "recording"):
        assert f"\n  {tag}: {{" in text


def test_generation_refuses_a_constraint_the_sdk_cannot_check() -> None:
    class Odd(msgspec.Struct):
        count: Annotated[int, msgspec.Meta(gt=0)]  # exclusiveMinimum

    schema = msgspec.json.schema(Odd)
    with pytest.raises(ValueError, match="exclusiveMinimum"):
        typescript._check_keywords(schema["$defs"]["Odd"])
