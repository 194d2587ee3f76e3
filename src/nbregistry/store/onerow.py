"""One-event parquet files, encoded directly.

The log writes one data file per event. pyarrow's writer spends 0.15 ms on a one-row file
(an Arrow table first, then writer properties, schema conversion and general page building),
a sixth of a registration. This writes the same content for the event schema: plain
encoding, no compression, statistics, dictionary or embedded Arrow schema, one version-1 data
page per column and the footer, in Thrift's compact protocol (Parquet's own format spec:
``parquet.thrift``). ``tests/test_eventlog.py`` checks that pyarrow reads every kind of event
back exactly; ``tests/test_conformance.py`` that deltalake, DataFusion, DuckDB and Polars read
the log's files.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime

from ..domain.entities import Event

_I32, _I64, _BINARY, _LIST, _STRUCT = 5, 6, 8, 9, 12
_INT64, _BYTE_ARRAY = 2, 6  # physical types
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = datetime.resolution  # timedelta(microseconds=1)
_ONE = struct.Struct("<q")
_LENGTH = struct.Struct("<I")


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _int(n: int) -> bytes:
    return _varint((n << 1) ^ (n >> 63))  # zigzag


def _field(delta: int, kind: int) -> bytes:
    return bytes([(delta << 4) | kind])


def _text(data: bytes) -> bytes:
    return _varint(len(data)) + data


def _list(kind: int, items: list[bytes]) -> bytes:
    head = bytes([(len(items) << 4) | kind]) if len(items) < 15 else bytes(
        [0xF0 | kind]) + _varint(len(items))
    return head + b"".join(items)


# (name, physical type, optional, logical type as a SchemaElement tail)
_STRING = _field(2, _I32) + _int(0) + _field(4, _STRUCT) + _field(1, _STRUCT) + b"\0\0"
_TIMESTAMP = (_field(2, _I32) + _int(10) + _field(4, _STRUCT) + _field(8, _STRUCT)
              + b"\x11" + _field(1, _STRUCT) + _field(2, _STRUCT) + b"\0\0\0\0")
COLUMNS = [("seq", _INT64, False, b""), ("event_id", _BYTE_ARRAY, False, _STRING),
           ("ts", _INT64, False, _TIMESTAMP), ("actor", _BYTE_ARRAY, False, _STRING),
           ("action", _BYTE_ARRAY, False, _STRING), ("model", _BYTE_ARRAY, True, _STRING),
           ("version", _INT64, True, b""), ("payload", _BYTE_ARRAY, False, _STRING),
           ("prev_hash", _BYTE_ARRAY, False, _STRING), ("hash", _BYTE_ARRAY, False, _STRING)]


def _schema() -> bytes:
    root = (_field(3, _I32) + _int(0) + _field(1, _BINARY) + _text(b"schema")
            + _field(1, _I32) + _int(len(COLUMNS)) + b"\0")
    elements = [root] + [
        _field(1, _I32) + _int(kind) + _field(2, _I32) + _int(int(optional))
        + _field(1, _BINARY) + _text(name.encode()) + logical + b"\0"
        for name, kind, optional, logical in COLUMNS]
    return _field(1, _LIST) + _list(_STRUCT, elements)


_HEAD = _field(1, _I32) + _int(2) + _schema() + _field(1, _I64) + _int(1)
_TAIL = (_field(2, _BINARY) + _text(b"nbregistry") + _field(1, _LIST)
         + _list(_STRUCT, [_field(1, _STRUCT) + b"\0\0"] * len(COLUMNS)) + b"\0")
_PAGE_TAIL = (_field(2, _STRUCT) + _field(1, _I32) + _int(1) + _field(1, _I32) + _int(0)
              + _field(1, _I32) + _int(3) + _field(1, _I32) + _int(3) + b"\0\0")
_PRESENT, _ABSENT = b"\x02\0\0\0\x02\x01", b"\x02\0\0\0\x02\x00"  # one definition level
_ENCODINGS = _list(_I32, [_int(3), _int(0)])  # RLE (the levels), PLAIN


def encode(event: Event) -> bytes:
    """The parquet file holding ``event`` as the one row of the event schema."""
    micros = (event.ts - _EPOCH) // _MICROSECOND
    values = (event.seq, event.event_id, micros, event.actor, event.action, event.model,
              event.version, event.payload_json, event.prev_hash, event.hash)
    out, chunks, at = [b"PAR1"], [], 4
    for (name, kind, optional, _), value in zip(COLUMNS, values, strict=True):
        body = b"" if value is None else (
            _ONE.pack(value) if kind == _INT64 else _LENGTH.pack(len(raw := str(
                value).encode())) + raw)
        if optional:
            body = (_ABSENT if value is None else _PRESENT) + body
        size = _int(len(body))
        page = (_field(1, _I32) + _int(0) + _field(1, _I32) + size + _field(1, _I32) + size
                + _PAGE_TAIL + body)
        out.append(page)
        total = _int(len(page))
        chunks.append(
            _field(2, _I64) + _int(0) + _field(1, _STRUCT)
            + _field(1, _I32) + _int(kind) + _field(1, _LIST) + _ENCODINGS
            + _field(1, _LIST) + _list(_BINARY, [_text(name.encode())])
            + _field(1, _I32) + _int(0) + _field(1, _I64) + _int(1) + _field(1, _I64) + total
            + _field(1, _I64) + total + _field(2, _I64) + _int(at) + b"\0\0")
        at += len(page)
    size = _int(at - 4)
    group = (_field(1, _LIST) + _list(_STRUCT, chunks) + _field(1, _I64) + size
             + _field(1, _I64) + _int(1) + _field(2, _I64) + _int(4) + _field(1, _I64) + size
             + b"\0")
    footer = _HEAD + _field(1, _LIST) + _list(_STRUCT, [group]) + _TAIL
    out += [footer, _LENGTH.pack(len(footer)), b"PAR1"]
    return b"".join(out)

