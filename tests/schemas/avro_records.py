"""Test helpers for the Avro contract: hypothesis strategies of valid records, built
from the ``.avsc`` files themselves (so a new field is generated without touching the
tests), defaults filling, type-strict comparison and reading the fixture JSON files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from schemas.codec import FINITE_FIELDS, SCHEMA_DIR

FIXTURE_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "avro"
SCHEMA_NAMES = tuple(sorted(path.stem for path in SCHEMA_DIR.glob("*.avsc")))

_LONG = (-(2**63), 2**63 - 1)
_INT = (-(2**31), 2**31 - 1)


def schema_json(name: str) -> Any:
    """The current schema ``name`` as JSON."""
    return json.loads((SCHEMA_DIR / f"{name}.avsc").read_text(encoding="utf-8"))


def records(name: str) -> st.SearchStrategy[dict[str, Any]]:
    """Valid records of the current schema ``name`` (optional fields sometimes absent).

    Doubles are never NaN (NaN != NaN would break equality checks) and are finite in
    the fields where the codec refuses non-finite values.
    """
    return _strategy(schema_json(name), "", FINITE_FIELDS.get(name, ()))


def _finite(path: str, finite_fields: tuple[str, ...]) -> bool:
    return any(path == f or path.startswith(f + ".") for f in finite_fields)


def _strategy(schema: Any, path: str, finite: tuple[str, ...]) -> st.SearchStrategy[Any]:
    if isinstance(schema, list):
        return st.one_of([_strategy(branch, path, finite) for branch in schema])
    kind = schema if isinstance(schema, str) else schema["type"]
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "int":
        return st.integers(*_INT)
    if kind == "long":
        return st.integers(*_LONG)
    if kind == "double":
        return st.floats(allow_nan=False, allow_infinity=not _finite(path, finite))
    if kind == "string":
        return st.text(max_size=12)
    if kind == "bytes":
        return st.binary(max_size=48)
    if kind == "enum":
        return st.sampled_from(schema["symbols"])
    if kind == "map":
        return st.dictionaries(
            st.text(max_size=8), _strategy(schema["values"], path + ".*", finite), max_size=4
        )
    if kind == "record":
        required: dict[str, st.SearchStrategy[Any]] = {}
        optional: dict[str, st.SearchStrategy[Any]] = {}
        for field in schema["fields"]:
            sub = f"{path}.{field['name']}" if path else field["name"]
            strategy = _strategy(field["type"], sub, finite)
            (optional if "default" in field else required)[field["name"]] = strategy
        return st.fixed_dictionaries(required, optional=optional)
    raise NotImplementedError(f"no strategy for Avro type {kind!r}")


def with_defaults(name: str, record: dict[str, Any]) -> dict[str, Any]:
    """``record`` as the codec returns it: every current field present, defaults filled."""
    out = {}
    for field in schema_json(name)["fields"]:
        out[field["name"]] = record[field["name"]] if field["name"] in record else field["default"]
    return out


def typed(value: Any) -> Any:
    """Structure of ``value`` with every leaf tagged by its type (1 != 1.0 != True)."""
    if isinstance(value, dict):
        return {key: typed(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [typed(item) for item in value]
    return (type(value).__name__, value)


def _from_json(obj: dict[str, Any]) -> Any:
    if set(obj) == {"$bytes"}:
        return bytes.fromhex(obj["$bytes"])
    return obj


def load_record(text: str) -> dict[str, Any]:
    """Record of a fixture JSON file; bytes are stored as ``{"$bytes": "<hex>"}``."""
    record: dict[str, Any] = json.loads(text, object_hook=_from_json)
    return record
