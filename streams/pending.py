"""The label join's waiting predictions: ``prediction_id`` → ``(model, version, ts,
prediction)`` in arrival order, the oldest expired or evicted first.

``PendingPredictions`` keeps them in the native extension's ``PendingPredictions`` when it
is installed (ids as text in a Rust hash map, the order a queue: ~150 bytes and a few
hundred nanoseconds per prediction, against ~300 bytes and ~1.5 µs for an
``OrderedDict`` of Python tuples), else in ``_PyPending``, an ``OrderedDict``. Both have
the same behaviour and write the same state bytes (tested against each other).

A waiting prediction's id is a ``str`` of valid Unicode and its time an int64; ``put``
raises ``TypeError`` with the reason for anything else, before changing anything.
"""

from __future__ import annotations

import contextlib
import operator
import struct
from collections import OrderedDict
from typing import Any

from schemas.native import driftline_native

_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1
_KIND_STR, _KIND_FLOAT, _KIND_OBJECT = 0, 1, 2
_ENTRY = struct.Struct("<Iq")  # version index, ts (after the id)


def check_id(pid: Any) -> str:
    """``pid`` if it can be a waiting prediction's id (a ``str`` of valid Unicode), else
    ``TypeError`` with the reason."""
    if not isinstance(pid, str):
        raise TypeError("prediction_id must be a string")
    try:
        pid.encode("utf-8")
    except UnicodeEncodeError:
        raise TypeError("prediction_id must be valid Unicode text") from None
    return pid


def check_timestamp(ts: Any) -> int:
    """``ts`` as an int if it is an integer within int64, else ``TypeError``."""
    try:
        value = operator.index(ts)
    except TypeError:
        value = None
    if value is None or not _I64_MIN <= value <= _I64_MAX:
        raise TypeError("timestamp must be integer epoch milliseconds within int64")
    return value


def _lookup(pid: Any) -> str | None:
    """The key to look ``pid`` up by, or None when it cannot be waiting."""
    try:
        return check_id(pid)
    except TypeError:
        return None


class _PyPending:
    """The Python implementation of the native ``PendingPredictions`` (same interface)."""

    def __init__(self) -> None:
        self._map: OrderedDict[str, tuple[int, int, Any]] = OrderedDict()  # (version, ts, pred)
        self._versions: list[tuple[Any, Any]] = []

    def add_version(self, model: Any, version: Any) -> int:
        self._versions.append((model, version))
        return len(self._versions) - 1

    def _check_version(self, version: int) -> None:
        if not 0 <= version < len(self._versions):
            raise ValueError(f"unknown model version index {version}")

    def _value(self, entry: tuple[int, int, Any]) -> tuple[Any, Any, int, Any]:
        model, version = self._versions[entry[0]]
        return (model, version, entry[1], entry[2])

    def put(self, pid: Any, version: int, ts: Any, prediction: Any) -> None:
        self._check_version(version)
        key, ts = check_id(pid), check_timestamp(ts)
        self._map[key] = (version, ts, prediction)
        self._map.move_to_end(key)

    def put_many(
        self, ids: list, versions: int | list[int], timestamps: list, predictions: list
    ) -> None:
        n = len(ids)
        each = None if isinstance(versions, int) else list(versions)
        for v in [versions] if each is None else each:
            self._check_version(v)  # type: ignore[arg-type]
        if len(timestamps) != n or len(predictions) != n or (each is not None and len(each) != n):
            raise ValueError("ids, versions, timestamps and predictions differ in length")
        keys = [check_id(pid) for pid in ids]
        times = [check_timestamp(ts) for ts in timestamps]
        pending = self._map
        for i, key in enumerate(keys):
            pending[key] = (versions if each is None else each[i], times[i], predictions[i])
            pending.move_to_end(key)

    def get(self, pid: Any) -> tuple | None:
        key = _lookup(pid)
        entry = self._map.get(key) if key is not None else None
        return None if entry is None else self._value(entry)

    def get_many(self, ids: list) -> list[tuple | None]:
        return [self.get(pid) for pid in ids]

    def pop(self, pid: Any) -> tuple | None:
        key = _lookup(pid)
        entry = self._map.pop(key, None) if key is not None else None
        return None if entry is None else self._value(entry)

    def remove_many(self, ids: list) -> int:
        return sum(self.pop(pid) is not None for pid in ids)

    def contains_any(self, ids: list) -> bool:
        return any((key := _lookup(pid)) is not None and key in self._map for pid in ids)

    def expire(self, horizon: int) -> int:
        removed = 0
        pending = self._map
        while pending:
            pid, (_, ts, _) = next(iter(pending.items()))
            if ts >= horizon:
                break
            del pending[pid]
            removed += 1
        return removed

    def evict(self, n: int) -> int:
        removed = 0
        while removed < n and self._map:
            self._map.popitem(last=False)
            removed += 1
        return removed

    def __len__(self) -> int:
        return len(self._map)

    def items(self) -> list[tuple[str, tuple]]:
        return [(pid, self._value(entry)) for pid, entry in self._map.items()]

    def dump(self) -> tuple[bytes, list, list[int]]:
        objects: list[Any] = []
        number: dict[int, int] = {}  # version index -> its number in the bytes
        out = [struct.pack("<Q", len(self._map))]
        for pid, (version, ts, pred) in self._map.items():
            raw = pid.encode("utf-8")
            v = number.setdefault(version, len(number))
            out += [struct.pack("<I", len(raw)), raw, _ENTRY.pack(v, ts)]
            text = None
            if type(pred) is str:
                with contextlib.suppress(UnicodeEncodeError):
                    text = pred.encode("utf-8")
            if text is not None:
                out += [bytes([_KIND_STR]), struct.pack("<I", len(text)), text]
            elif type(pred) is float:
                out += [bytes([_KIND_FLOAT]), struct.pack("<d", pred)]
            else:
                out += [bytes([_KIND_OBJECT]), struct.pack("<I", len(objects))]
                objects.append(pred)
        return b"".join(out), objects, list(number)

    def load(self, data: bytes, objects: list) -> None:
        view, at = memoryview(data), 0

        def take(n: int) -> memoryview:
            nonlocal at
            if at + n > len(view):
                raise ValueError("truncated waiting-predictions state")
            at += n
            return view[at - n : at]

        def text() -> str:
            (n,) = struct.unpack("<I", take(4))
            try:
                return bytes(take(n)).decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError("waiting-predictions state holds invalid UTF-8") from None

        (count,) = struct.unpack("<Q", take(8))
        classes: dict[str, str] = {}
        for _ in range(count):
            pid = text()
            version, ts = _ENTRY.unpack(take(_ENTRY.size))
            self._check_version(version)
            kind = take(1)[0]
            pred: Any
            if kind == _KIND_STR:
                pred = classes.setdefault(s := text(), s)
            elif kind == _KIND_FLOAT:
                (pred,) = struct.unpack("<d", take(8))
            elif kind == _KIND_OBJECT:
                (index,) = struct.unpack("<I", take(4))
                if index >= len(objects):
                    raise ValueError(
                        f"waiting-predictions state refers to a missing object {index}"
                    )
                pred = objects[index]
            else:
                raise ValueError(f"waiting-predictions state holds an unknown kind {kind}")
            self._map[pid] = (version, ts, pred)
            self._map.move_to_end(pid)
        if at != len(view):
            raise ValueError("waiting-predictions state has bytes after its last prediction")


def _native_available() -> bool:
    return driftline_native is not None and hasattr(driftline_native, "PendingPredictions")


class PendingPredictions:
    """Waiting predictions by id, in arrival order (see the module docstring).

    Examples
    --------
    >>> p = PendingPredictions()
    >>> p.remember(["a", "b"], "m", "1", [10, 20], ["yes", "no"])
    >>> p.put("a", "m", "1", 30, "no")  # a waiting id moves to the end, with its new value
    >>> [pid for pid, _ in p.items()], p.get("a")
    (['b', 'a'], ('m', '1', 30, 'no'))
    >>> p.expire(25), len(p)
    (1, 1)
    """

    def __init__(self, *, native: bool | None = None) -> None:
        if native is None:
            native = _native_available()
        self.native = bool(native)
        self._store: Any = driftline_native.PendingPredictions() if native else _PyPending()
        self._versions: dict[tuple[Any, Any], int] = {}
        # the store's methods, bound once (called per batch or per label)
        self.get = self._store.get
        self.get_many = self._store.get_many
        self.pop = self._store.pop
        self.remove_many = self._store.remove_many
        self.contains_any = self._store.contains_any
        self.items = self._store.items

    def _version(self, model: Any, version: Any) -> int:
        key = (model, version)
        index = self._versions.get(key)
        if index is None:
            index = self._versions[key] = self._store.add_version(model, version)
        return index

    def put(self, pid: Any, model: Any, version: Any, ts: Any, prediction: Any) -> None:
        """Keep one prediction waiting; a waiting id moves to the end with its new value."""
        self._store.put(pid, self._version(model, version), ts, prediction)

    def remember(
        self, ids: list, model: Any, version: Any, timestamps: list, predictions: list
    ) -> None:
        """``put`` of each prediction of one model version, in order (nothing changed when
        one is refused)."""
        self._store.put_many(ids, self._version(model, version), timestamps, predictions)

    def remember_rows(self, ids: list, values: list[tuple]) -> None:
        """``put`` of each ``(model, version, ts, prediction)``, in order (nothing changed
        when one is refused)."""
        versions = [self._version(v[0], v[1]) for v in values]
        timestamps = [v[2] for v in values]
        predictions = [v[3] for v in values]
        self._store.put_many(ids, versions, timestamps, predictions)

    def expire(self, horizon: int) -> int:
        """Remove the oldest predictions while their time is before ``horizon``; how many."""
        if horizon > _I64_MAX:
            return int(self._store.evict(len(self._store)))
        if horizon <= _I64_MIN:
            return 0
        return int(self._store.expire(horizon))

    def evict(self, n: int) -> int:
        """Remove the ``n`` oldest predictions; how many were."""
        return int(self._store.evict(max(0, n)))

    def __len__(self) -> int:
        return len(self._store)

    def state(self) -> dict:
        """What :meth:`from_state` restores: the model versions waiting predictions have,
        the predictions as bytes (the same from either implementation, and from any
        history that leaves the same predictions waiting) and those of other types."""
        data, objects, used = self._store.dump()
        table = sorted(self._versions, key=self._versions.__getitem__)
        return {"versions": [table[i] for i in used], "data": bytes(data), "objects": objects}

    @classmethod
    def from_state(cls, state: dict, *, native: bool | None = None) -> PendingPredictions:
        p = cls(native=native)
        for model, version in state["versions"]:
            p._version(model, version)
        p._store.load(state["data"], list(state["objects"]))
        return p

    @classmethod
    def from_items(cls, items: Any, *, native: bool | None = None) -> PendingPredictions:
        """From ``(id, (model, version, ts, prediction))`` pairs, oldest first (a label-join
        state written before this class: an ``OrderedDict``)."""
        p = cls(native=native)
        for pid, (model, version, ts, prediction) in items:
            p.put(pid, model, version, ts, prediction)
        return p
