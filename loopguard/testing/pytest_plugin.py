"""pytest plugin (entry point `pytest11`): the `fake_bedrock` fixture.

    def test_my_agent(fake_bedrock):
        fake_bedrock.use([Reply.calling("lookup", id=1), Reply(text="done")])
        agent = build_agent(fake_bedrock.chat_model())
        ...

The server starts before the test and stops after it; a script that failed (raised, or called
a tool the agent did not offer) fails the test at teardown.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from loopguard.testing.fake_bedrock import FakeBedrock


@pytest.fixture
def fake_bedrock() -> Iterator[FakeBedrock]:
    """A started FakeBedrock answering `echo` (any agent) until the test calls `.use(...)`."""
    fake = FakeBedrock("echo").start()
    try:
        yield fake
    finally:
        fake.stop()
    fake.raise_script_errors()
