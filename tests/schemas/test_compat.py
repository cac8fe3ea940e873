"""Backward compatibility of the wire format: committed fixtures written by earlier
schema versions still decode, and history schemas resolve old writers to the current
reader schema."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from avro_records import FIXTURE_DIR, SCHEMA_NAMES, load_record, schema_json, typed, with_defaults

from schemas.codec import SCHEMA_DIR, AvroCodec, DecodeError, schema_fingerprint

CODEC = AvroCodec()
FIXTURES = sorted(FIXTURE_DIR.glob("*.bin"))
_FIXTURE_NAME = re.compile(r"(?P<name>[a-z_]+)\.v(?P<version>[0-9]+)\.bin")


def test_every_schema_has_a_v1_fixture() -> None:
    for name in SCHEMA_NAMES:
        assert (FIXTURE_DIR / f"{name}.v1.bin").is_file(), name
        assert (FIXTURE_DIR / f"{name}.v1.json").is_file(), name
    assert len(FIXTURES) >= len(SCHEMA_NAMES)


@pytest.mark.parametrize("path", FIXTURES, ids=[p.name for p in FIXTURES])
def test_fixture_decodes_to_its_record(path: Path) -> None:
    match = _FIXTURE_NAME.fullmatch(path.name)
    assert match is not None, f"fixture {path.name} is not named <schema>.v<N>.bin"
    name = match["name"]
    expected = load_record(path.with_name(f"{name}.v{match['version']}.json").read_text("utf-8"))
    decoded_name, decoded = CODEC.decode(path.read_bytes())
    assert decoded_name == name
    # Fields added after the fixture was written come back with their defaults.
    assert typed(decoded) == typed(with_defaults(name, expected))


def test_fixture_bytes_are_single_object_encoded() -> None:
    data = (FIXTURE_DIR / "prediction.v1.bin").read_bytes()
    assert data[:2] == b"\xc3\x01"
    known = {schema_fingerprint(schema_json(n)) for n in SCHEMA_NAMES}
    history = SCHEMA_DIR / "history"
    if history.is_dir():
        known |= {schema_fingerprint(json.loads(p.read_text())) for p in history.glob("*.avsc")}
    assert {f.read_bytes()[2:10] for f in FIXTURES} <= known


# --- history resolution, on a copy of the schema directory ------------------------------


def _schema_dir(tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copytree(SCHEMA_DIR, target, ignore=shutil.ignore_patterns("history"))
    return target


def _without_field(schema: dict[str, Any], field: str) -> dict[str, Any]:
    return {**schema, "fields": [f for f in schema["fields"] if f["name"] != field]}


def _write(path: Path, schema: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(schema), encoding="utf-8")


LABEL_V0 = {
    "prediction_id": "p-9",
    "model_name": "churn",
    "label": "no",
    "timestamp": 1_718_000_000_000,
}


def test_old_writer_resolves_to_current_reader(tmp_path: Path) -> None:
    # "Version 0" of label had no model_version; the current schema added it with a default.
    old_schema = _without_field(schema_json("label"), "model_version")
    old_dir = _schema_dir(tmp_path, "old")
    _write(old_dir / "label.avsc", old_schema)
    old_bytes = AvroCodec(schema_dir=old_dir).encode("label", LABEL_V0)
    assert old_bytes[2:10] == schema_fingerprint(old_schema) != CODEC.fingerprint("label")

    with pytest.raises(DecodeError, match=rf"^unknown schema fingerprint {old_bytes[2:10].hex()}"):
        AvroCodec(schema_dir=_schema_dir(tmp_path, "no_history")).decode(old_bytes)

    new_dir = _schema_dir(tmp_path, "new")
    _write(new_dir / "history" / "label.1.avsc", old_schema)
    codec = AvroCodec(schema_dir=new_dir)
    assert codec.decode(old_bytes) == ("label", {**LABEL_V0, "model_version": None})
    assert codec.decode_as("label", old_bytes)["model_version"] is None
    # New records are still written with the current schema.
    assert codec.encode("label", LABEL_V0)[2:10] == CODEC.fingerprint("label")


def test_history_with_only_doc_changes_shares_the_current_fingerprint(tmp_path: Path) -> None:
    schema = schema_json("label")
    schema["doc"] = "an older wording"
    schema_dir = _schema_dir(tmp_path, "docs")
    _write(schema_dir / "history" / "label.1.avsc", schema)
    codec = AvroCodec(schema_dir=schema_dir)
    assert codec.fingerprint("label") == CODEC.fingerprint("label")
    assert codec.decode(CODEC.encode("label", LABEL_V0))[0] == "label"


def test_unresolvable_old_writer_is_a_schema_violation(tmp_path: Path) -> None:
    # An old alert_ack had a third action the current enum does not know (and no default).
    old_schema = schema_json("alert_ack")
    old_schema["fields"][1]["type"]["symbols"] = ["acknowledge", "resolve", "escalate"]
    old_dir = _schema_dir(tmp_path, "old")
    _write(old_dir / "alert_ack.avsc", old_schema)
    ack = {"alert_id": "a", "action": "escalate", "actor": "bob", "timestamp": 1}
    old_bytes = AvroCodec(schema_dir=old_dir).encode("alert_ack", ack)

    new_dir = _schema_dir(tmp_path, "new")
    _write(new_dir / "history" / "alert_ack.1.avsc", old_schema)
    with pytest.raises(DecodeError, match=r"^schema violation: .*escalate") as info:
        AvroCodec(schema_dir=new_dir).decode(old_bytes)
    assert info.type is DecodeError


@pytest.mark.parametrize(
    ("filename", "schema_name", "message"),
    [
        ("nope.1.avsc", "label", "history schema nope.1.avsc has no current schema"),
        ("label.avsc", "label", "history schema label.avsc is not named <schema>.<number>.avsc"),
        ("label.2.avsc", "alert_ack", "schemas 'alert_ack' and 'label' have the same fingerprint"),
    ],
)
def test_bad_history_is_refused_at_load(
    tmp_path: Path, filename: str, schema_name: str, message: str
) -> None:
    schema_dir = _schema_dir(tmp_path, "dir")
    _write(schema_dir / "history" / filename, schema_json(schema_name))
    with pytest.raises(ValueError, match=re.escape(message)):
        AvroCodec(schema_dir=schema_dir)
