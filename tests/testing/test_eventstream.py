"""The event-stream framing, checked against botocore's own decoder."""

from __future__ import annotations

import http.client
import json

import pytest

from loopguard.testing import FakeBedrock, Reply, ToolUse, eventstream
from tests.conftest import require

eventstream_parser = require("botocore.eventstream")


def _decode(data: bytes) -> list:
    buffer = eventstream_parser.EventStreamBuffer()
    buffer.add_data(data)
    return list(buffer)


def test_message_round_trips_through_botocore():
    raw = eventstream.event(
        "contentBlockDelta", {"delta": {"text": "héllo"}, "contentBlockIndex": 0}
    )
    (message,) = _decode(raw)
    assert message.headers == {
        ":event-type": "contentBlockDelta",
        ":content-type": "application/json",
        ":message-type": "event",
    }
    assert json.loads(message.payload) == {"delta": {"text": "héllo"}, "contentBlockIndex": 0}
    assert message.prelude.total_length == len(raw)


def test_exception_message_has_exception_headers():
    (message,) = _decode(eventstream.exception("throttlingException", "slow down"))
    assert message.headers[":message-type"] == "exception"
    assert message.headers[":exception-type"] == "throttlingException"
    assert message.to_response_dict()["status_code"] == 400


@pytest.mark.parametrize("position", [2, 10, -1])  # prelude CRC, headers, message CRC
def test_corrupted_bytes_fail_the_checksum(position):
    raw = bytearray(eventstream.event("messageStop", {"stopReason": "end_turn"}))
    raw[position] ^= 0xFF
    with pytest.raises(eventstream_parser.ParserError):
        _decode(bytes(raw))


def test_server_stream_is_valid_chunked_eventstream():
    """Raw HTTP, no boto3: the body is chunked and every frame decodes with valid CRCs."""
    reply = Reply(text="one two three", tool_calls=[ToolUse("lookup", {"q": "x" * 60})])
    with FakeBedrock([reply]) as fake:
        conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=5)
        body = {
            "messages": [{"role": "user", "content": [{"text": "hi"}]}],
            "toolConfig": {
                "tools": [{"toolSpec": {"name": "lookup", "inputSchema": {"json": {}}}}]
            },
        }
        conn.request(
            "POST",
            "/model/m/converse-stream",
            json.dumps(body),
            {"Content-Type": "application/json"},
        )
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Type") == "application/vnd.amazon.eventstream"
        assert response.getheader("Transfer-Encoding") == "chunked"
        messages = _decode(response.read())
        conn.close()
    kinds = [m.headers[":event-type"] for m in messages]
    assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"]
    assert kinds.count("contentBlockStart") == 1  # the tool call; text blocks start with a delta
    tool_json = "".join(
        json.loads(m.payload)["delta"]["toolUse"]["input"]
        for m in messages
        if m.headers[":event-type"] == "contentBlockDelta"
        and "toolUse" in json.loads(m.payload)["delta"]
    )
    assert json.loads(tool_json) == {"q": "x" * 60}
    assert fake.calls[0].events_sent == len(messages) == fake.calls[0].events_total
