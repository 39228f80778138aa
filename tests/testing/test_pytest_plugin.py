"""The `fake_bedrock` fixture, as a user's test suite gets it from the pytest11 entry point."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.conftest import require

require("boto3")

USER_TESTS = textwrap.dedent("""
    from loopguard.testing import Reply

    HELLO = [{"role": "user", "content": [{"text": "hi"}]}]

    def test_scripted_reply(fake_bedrock):
        fake_bedrock.use([Reply(text="scripted")])
        out = fake_bedrock.client().converse(modelId="m", messages=HELLO)
        assert out["output"]["message"]["content"] == [{"text": "scripted"}]

    def test_default_echoes_for_any_agent(fake_bedrock):
        out = fake_bedrock.client().converse(modelId="m", messages=HELLO)
        assert out["output"]["message"]["content"] == [{"text": "You said: hi"}]
        assert fake_bedrock.endpoint_url.startswith("http://127.0.0.1:")

    def test_a_broken_script_fails_at_teardown(fake_bedrock):
        fake_bedrock.use([Reply.calling("no_such_tool")])
        try:
            fake_bedrock.client().converse(modelId="m", messages=HELLO)
        except Exception:
            pass  # the agent under test might swallow the error; the fixture does not
""")


def test_fixture_comes_from_the_entry_point(tmp_path):
    (tmp_path / "test_user.py").write_text(USER_TESTS)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "test_user.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    summary = done.stdout.strip().splitlines()[-1]
    assert (
        "3 passed, 1 error" in summary
    )  # the call passes; teardown errs, done.stdout + done.stderr
    assert "ERROR at teardown of test_a_broken_script_fails_at_teardown" in done.stdout
    assert "the script calls tool(s) ['no_such_tool']" in done.stdout
