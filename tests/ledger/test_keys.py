"""Budget keys are unambiguous: the label's name and value, escaped, and the value's type."""

from __future__ import annotations

import uuid

import pytest

from loopguard import Guard, LoopGuardAbort
from loopguard.events import Message, ModelEnd, ModelStart, Usage
from loopguard.ledger import shared_ledger
from loopguard.ledger.spec import PREFIX, BudgetSpec
from tests.ledger._workers import MODEL, money_policy

USAGE = Usage(input_tokens=100, output_tokens=500)


def _call(guard: Guard, run: str, meta: dict) -> None:
    guard.process(
        ModelStart(
            run=run,
            model=MODEL,
            messages=[Message("user", "hi")],
            max_tokens=500,
            id=run,
            meta=meta,
        )
    )
    guard.process(ModelEnd(run=run, model=MODEL, usage=USAGE, id=run))


# one call (about $0.002) fits in $0.003, two do not
CAP = 0.003


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("user_id", {"user_id": "42"}), ("org_id", {"org_id": "42"})),  # same value, other label
        (("user_id", {"user_id": "_none_"}), ("user_id", {})),  # like the old unlabelled bucket
        (("user_id", {"user_id": 42}), ("user_id", {"user_id": "42"})),  # a number, a string
        (("user_id", {"user_id": "a:b"}), ("user_id", {"user_id": "a%3Ab"})),  # escapes
    ],
    ids=["label-name", "none-name", "type", "escape"],
)
def test_different_tenants_never_share_a_budget(first: tuple, second: tuple) -> None:
    uri = f"memory://{uuid.uuid4().hex}"
    # two workers on one ledger, each with a tenant budget on its own label
    guards = [
        Guard(money_policy(ledger=uri, budgets=[{"scope": "tenant", "key": label, "max_usd": CAP}]))
        for label, _ in (first, second)
    ]
    _call(guards[0], "first", first[1])
    _call(guards[1], "second", second[1])  # refused if it landed in the first one's bucket
    with pytest.raises(LoopGuardAbort):
        _call(guards[0], "again", first[1])  # the first one's budget is really spent
    keys = [u.key for u in shared_ledger(uri).usage(prefix=PREFIX) if u.spent_usd_n]
    assert len(keys) == 2


def test_the_key_format() -> None:
    spec = BudgetSpec(scope="tenant", key="user id", max_usd=1)
    key = spec.ledger_key
    assert key(run="r", agent=None, meta={"user id": "a:b~c"}, ts=0) == (
        f"{PREFIX}tenant:user%20id=a%3Ab%7Ec:day=1970-01-01"
    )
    assert key(run="r", agent=None, meta={"user id": 42}, ts=0) == (
        f"{PREFIX}tenant:user%20id=~42:day=1970-01-01"
    )
    assert key(run="r", agent=None, meta={}, ts=0) == f"{PREFIX}tenant:user%20id:day=1970-01-01"
    agent = BudgetSpec(scope="agent", period="total", max_usd=1).ledger_key
    assert agent(run="r", agent="support", meta={}, ts=0) == f"{PREFIX}agent=support:total"
    assert agent(run="r", agent=None, meta={}, ts=0) == f"{PREFIX}agent:total"
