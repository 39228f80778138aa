"""AWS event-stream framing (`application/vnd.amazon.eventstream`), the encoding side.

One message is a prelude (total length u32, headers length u32, CRC32 of those 8 bytes), the
headers, the payload, and a CRC32 of everything before it. Header values here are all strings
(type 7), which is all Bedrock's ConverseStream uses. botocore's `EventStreamBuffer` decodes
what this writes; the tests check it byte for byte.
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

_STRING = 7
_PRELUDE = struct.Struct(">II")


def encode_headers(headers: dict[str, str]) -> bytes:
    out = bytearray()
    for name, value in headers.items():
        raw_name, raw_value = name.encode("utf-8"), value.encode("utf-8")
        if len(raw_name) > 255 or len(raw_value) > 0xFFFF:
            raise ValueError(f"event-stream header {name!r} is too long")
        out += bytes([len(raw_name)]) + raw_name + bytes([_STRING])
        out += struct.pack(">H", len(raw_value)) + raw_value
    return bytes(out)


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    raw_headers = encode_headers(headers)
    total = _PRELUDE.size + 4 + len(raw_headers) + len(payload) + 4
    prelude = _PRELUDE.pack(total, len(raw_headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + raw_headers + payload
    return body + struct.pack(">I", zlib.crc32(body))


def event(event_type: str, payload: dict[str, Any]) -> bytes:
    """A ConverseStream event such as `messageStart` or `contentBlockDelta`."""
    return encode_message(
        {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"},
        json.dumps(payload, separators=(",", ":")).encode("utf-8"),
    )


def exception(exception_type: str, message: str, **fields: Any) -> bytes:
    """An error sent inside an open stream; `exception_type` is the member name of
    ConverseStreamOutput, e.g. `modelStreamErrorException` or `throttlingException`."""
    return encode_message(
        {
            ":exception-type": exception_type,
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        json.dumps({"message": message, **fields}, separators=(",", ":")).encode("utf-8"),
    )


__all__ = ["encode_headers", "encode_message", "event", "exception"]
