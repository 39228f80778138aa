"""Malformed requests to the fake Bedrock server: Bedrock's own error (HTTP 400
ValidationException) every time, a bounded body, no traceback on the server's side, and the
server still serving afterwards."""

from __future__ import annotations

import http.client
import json
import socket

import pytest

from loopguard.testing import FakeBedrock, Reply
from loopguard.testing.fake_bedrock import MAX_BODY_BYTES
from tests.conftest import require

botocore_config = require("botocore.config")
botocore_exceptions = require("botocore.exceptions")

PATH = "/model/m/converse"
HELLO = [{"role": "user", "content": [{"text": "hi"}]}]

BAD_BODIES = [
    b"[]",
    b'"text"',
    b"{not json",
    b"\xff\xfe",
    b"[" * 100_000,
    b'{"messages": [{"role": "user", "content": [{"text": 1' + b"0" * 5000 + b"}]}]}",
    json.dumps({"messages": "hi"}).encode(),
    json.dumps({"messages": [["user", "hi"]]}).encode(),
    json.dumps({"messages": [{"role": "user", "content": "hi"}]}).encode(),
    json.dumps({"messages": [{"role": "user", "content": [5]}]}).encode(),
    json.dumps({"messages": [{"role": "user", "content": [{"text": ["hi"]}]}]}).encode(),
    json.dumps({"messages": [{"role": "user", "content": [{"toolUse": {"name": 1}}]}]}).encode(),
    json.dumps(
        {
            "messages": [
                {"role": "user", "content": [{"toolResult": {"toolUseId": "t", "content": 3}}]}
            ]
        }
    ).encode(),
    json.dumps({"messages": HELLO, "system": "be brief"}).encode(),
    json.dumps({"messages": HELLO, "toolConfig": {"tools": [{"toolSpec": "x"}]}}).encode(),
    json.dumps({"messages": HELLO, "toolConfig": []}).encode(),
    json.dumps({"messages": HELLO, "inferenceConfig": {"maxTokens": "9"}}).encode(),
]


def post(fake: FakeBedrock, body: bytes, **headers: str) -> tuple[int, dict, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=10)
    try:
        conn.putrequest("POST", PATH)
        sent = {"Content-Type": "application/json", "Content-Length": str(len(body)), **headers}
        for name, value in sent.items():
            conn.putheader(name, value)
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), json.loads(response.read())
    finally:
        conn.close()


def assert_validation_error(status: int, headers: dict, payload: dict) -> None:
    assert status == 400
    assert headers["x-amzn-ErrorType"].startswith("ValidationException:")
    assert isinstance(payload["message"], str) and payload["message"]


def assert_still_serving(fake: FakeBedrock) -> None:
    status, _, payload = post(fake, json.dumps({"messages": HELLO}).encode())
    assert status == 200 and payload["output"]["message"]["content"] == [{"text": "fine"}]


@pytest.mark.parametrize("body", BAD_BODIES, ids=range(len(BAD_BODIES)))
def test_a_malformed_body_is_a_validation_exception(
    body: bytes, capfd: pytest.CaptureFixture[str]
) -> None:
    with FakeBedrock(lambda request: Reply(text="fine"), strict=False) as fake:
        assert_validation_error(*post(fake, body))
        assert_still_serving(fake)
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("length", ["abc", "-5", "1_0", "٣", str(MAX_BODY_BYTES + 1), "9" * 30])
def test_a_bad_or_huge_content_length_is_refused_unread(
    length: str, capfd: pytest.CaptureFixture[str]
) -> None:
    with FakeBedrock(lambda request: Reply(text="fine")) as fake:
        with socket.create_connection(("127.0.0.1", fake.port), timeout=10) as sock:
            sock.sendall(
                f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode()
                + b'{"messages": []}'
            )
            answer = b""
            while chunk := sock.recv(65536):  # the server closes the connection
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400 ")
        assert b"x-amzn-ErrorType: ValidationException:" in head
        assert b"Connection: close" in head
        assert json.loads(body)["message"]
        assert fake.calls == []  # nothing reached the script
        assert_still_serving(fake)
    assert "Traceback" not in capfd.readouterr().err


def test_a_body_shorter_than_declared_is_dropped_quietly(capfd: pytest.CaptureFixture[str]) -> None:
    with FakeBedrock(lambda request: Reply(text="fine")) as fake:
        with socket.create_connection(("127.0.0.1", fake.port), timeout=10) as sock:
            sock.sendall(f"POST {PATH} HTTP/1.1\r\nContent-Length: 100\r\n\r\n{{}}".encode())
            sock.shutdown(socket.SHUT_WR)
            assert sock.recv(100) == b""
        assert_still_serving(fake)
    assert "Traceback" not in capfd.readouterr().err


def test_botocore_reads_it_as_a_validation_exception() -> None:
    """The real client, with its own checks off so the malformed request goes out."""
    require("boto3")
    with FakeBedrock(lambda request: Reply(text="fine")) as fake:
        client = fake.client(config=botocore_config.Config(parameter_validation=False))
        with pytest.raises(botocore_exceptions.ClientError) as info:
            client.converse(modelId="m", messages=HELLO, inferenceConfig={"maxTokens": 0})
        client.close()
    error = info.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert error["Message"] == "inferenceConfig.maxTokens: must be a positive integer"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_langchain_aws_gets_the_validation_exception() -> None:
    """ChatBedrockConverse sending a request Bedrock refuses (max_tokens=0, botocore's own
    checks off): the same error reaches the caller."""
    require("langchain_aws")
    with FakeBedrock(lambda request: Reply(text="fine")) as fake:
        config = botocore_config.Config(parameter_validation=False)
        model = fake.chat_model(max_tokens=0, config=config)
        with pytest.raises(botocore_exceptions.ClientError) as info:
            model.invoke("hi")
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert "maxTokens" in info.value.response["Error"]["Message"]
