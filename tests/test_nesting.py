"""The engine's sub-agents: runs nested in runs (`run_start` with a `parent`), plain events."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from loopguard import Guard, LoopGuardAbort, Policy, PolicySet
from loopguard.events import (
    Event,
    ModelEnd,
    ModelStart,
    RunEnd,
    RunStart,
    ToolStart,
    Usage,
    from_dict,
)
from loopguard.replay import replay_events

QUIET = {"progress": {"enabled": False}, "velocity": {"enabled": False}}


def rules(default: dict[str, Any] | None = None, **agents: dict[str, Any]) -> PolicySet:
    return PolicySet(
        default=Policy(**(default or {}), **QUIET),
        agents={name: Policy(**limits, **QUIET) for name, limits in agents.items()},
    )


USAGE = Usage(100, 10)


def call(guard: Guard, run: str, n: int, agent: str | None = None) -> None:
    """One model call that goes out and finishes (100 in, 10 out)."""
    guard.process(ModelStart(run=run, agent=agent, id=f"{run}-{n}", model="m", max_tokens=10))
    guard.process(ModelEnd(run=run, agent=agent, id=f"{run}-{n}", model="m", usage=USAGE))


def test_concurrent_sub_agents_never_overshoot_the_parent_cap() -> None:
    # Eight sub-agents in threads, each trying 10 calls, under a parent cap of 20 calls and
    # $20 at $1 a call: exactly 20 go out, however the threads interleave.
    guard = Guard(rules({"max_model_calls": 20, "max_cost_usd": 20.5}), pricer=lambda *_: 1.0)
    guard.process(RunStart(run="p", agent="parent"))
    made: list[int] = []
    barrier = threading.Barrier(8)

    def child(i: int) -> None:
        run = f"c{i}"
        guard.process(RunStart(run=run, agent="child", parent="p"))
        barrier.wait()
        for n in range(10):
            call_id = f"{run}-{n}"
            try:
                guard.process(ModelStart(run=run, agent="child", id=call_id, model="m"))
            except LoopGuardAbort:
                return
            made.append(1)  # the call went out
            guard.process(ModelEnd(run=run, agent="child", id=call_id, model="m", usage=USAGE))

    threads = [threading.Thread(target=child, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 20
    parent = guard.get_run("p")
    assert parent is not None
    assert (parent.model_calls, parent.cost_usd) == (20, 20.0)
    assert parent.aborted is not None  # its cap is spent: it is stopped too


def test_a_refusal_further_up_gives_back_what_the_runs_below_took() -> None:
    # grandparent (2 calls) > parent ($ cap, reserves) > child: the child's third call is
    # refused by the grandparent after the parent counted and reserved it; both are undone.
    guard = Guard(
        rules(
            {"max_model_calls": 2},
            parent={"max_cost_usd": 100.0, "max_model_calls": 50},
            child={"max_model_calls": 50},
        ),
        pricer=lambda *_: 1.0,
    )
    guard.process(RunStart(run="g", agent="grand"))
    guard.process(RunStart(run="p", agent="parent", parent="g"))
    guard.process(RunStart(run="c", agent="child", parent="p"))
    call(guard, "c", 1, "child")
    call(guard, "c", 2, "child")
    with pytest.raises(LoopGuardAbort) as info:
        guard.process(ModelStart(run="c", agent="child", id="c-3", model="m", max_tokens=10))
    evidence = info.value.verdict.evidence
    assert (evidence["enclosing_run"], evidence["limit"]) == ("g", "max_model_calls")
    assert "2 levels up" in info.value.verdict.reason
    parent, child = guard.get_run("p"), guard.get_run("c")
    assert parent is not None and child is not None
    assert (parent.model_calls, child.model_calls) == (2, 2)
    assert not parent.slots["budget"].held  # its reservation for the refused call released
    assert parent.aborted is None  # only the run whose cap refused is stopped
    # The sub-agent stays stopped (sticky), and so does the grandparent.
    with pytest.raises(LoopGuardAbort):
        guard.process(ToolStart(run="c", agent="child", tool="t"))
    with pytest.raises(LoopGuardAbort):
        guard.process(ModelStart(run="g", agent="grand", model="m"))


def test_the_strictest_max_depth_on_the_chain_holds() -> None:
    guard = Guard(rules({"max_depth": 1}, deep={"max_depth": 5}))
    guard.process(RunStart(run="r0", agent="top"))
    guard.process(RunStart(run="r1", agent="deep", parent="r0"))
    with pytest.raises(LoopGuardAbort) as info:
        guard.process(RunStart(run="r2", agent="deep", parent="r1"))
    assert (info.value.verdict.evidence["limit"], info.value.verdict.evidence["max"]) == (
        "max_depth",
        1,
    )
    # max_depth = 0: no sub-agents at all.
    guard = Guard(rules({"max_depth": 0}))
    guard.process(RunStart(run="a", agent="top"))
    with pytest.raises(LoopGuardAbort):
        guard.process(RunStart(run="b", agent="sub", parent="a"))


def test_a_sub_agent_started_in_a_stopped_run_is_refused() -> None:
    guard = Guard(rules({"max_model_calls": 1}))
    guard.process(RunStart(run="p"))
    call(guard, "p", 1)
    with pytest.raises(LoopGuardAbort):
        guard.process(ModelStart(run="p", model="m"))
    with pytest.raises(LoopGuardAbort):
        guard.process(RunStart(run="c", agent="child", parent="p"))


def test_an_enclosing_run_in_shadow_mode_only_reports() -> None:
    guard = Guard(
        PolicySet(
            default=Policy(mode="shadow", max_model_calls=1, **QUIET),
            agents={"child": Policy(max_model_calls=10, **QUIET)},
        )
    )
    guard.process(RunStart(run="p"))
    guard.process(RunStart(run="c", agent="child", parent="p"))
    for n in range(3):
        call(guard, "c", n, "child")
    parent = guard.get_run("p")
    assert parent is not None
    assert parent.model_calls == 3
    assert [v.evidence["limit"] for v in parent.shadow_verdicts] == ["max_model_calls"]


def test_a_parent_guarded_by_another_guard_of_the_process() -> None:
    outer = Guard(rules({"max_model_calls": 2}))
    inner = Guard(rules(child={"max_model_calls": 50}))
    # Run ids are unique in a process (LangChain's are UUIDs): so are these.
    outer.process(RunStart(run="outer-run"))
    inner.process(RunStart(run="inner-run", agent="child", parent="outer-run"))
    call(inner, "inner-run", 1, "child")
    call(outer, "outer-run", 1)
    with pytest.raises(LoopGuardAbort) as info:
        call(inner, "inner-run", 2, "child")
    assert info.value.verdict.evidence["enclosing_run"] == "outer-run"


def test_resume_of_a_sub_agent_raises_the_enclosing_cap() -> None:
    guard = Guard(rules({"max_model_calls": 1}, child={"max_model_calls": 50}))
    guard.process(RunStart(run="p"))
    guard.process(RunStart(run="c", agent="child", parent="p"))
    call(guard, "c", 1)
    with pytest.raises(LoopGuardAbort):
        call(guard, "c", 2)
    lifted = guard.resume("c", limits={"max_model_calls": 2})
    assert lifted is not None and lifted.evidence["enclosing_run"] == "p"
    call(guard, "c", 2)  # the parent's cap, raised for this run only, lets it out
    with pytest.raises(LoopGuardAbort):
        call(guard, "c", 3)


def test_an_evicted_sub_agent_keeps_its_parent() -> None:
    guard = Guard(rules({"max_model_calls": 2}), run_ttl=10.0)
    guard.process(RunStart(run="p", ts=0.0))
    guard.process(RunStart(run="c", agent="child", parent="p", ts=0.0))
    guard.process(ModelStart(run="c", agent="child", id="1", model="m", ts=1.0))
    guard.process(ModelStart(run="other", model="m", ts=100.0))  # evicts the idle ones
    assert guard.get_run("c") is None
    guard.process(ModelStart(run="c", agent="child", id="2", model="m", ts=101.0))
    with pytest.raises(LoopGuardAbort):
        guard.process(ModelStart(run="c", agent="child", id="3", model="m", ts=102.0))


def test_a_recording_replays_the_nesting() -> None:
    events: list[Event] = [
        RunStart(run="p", ts=0.0),
        RunStart(run="c", agent="child", parent="p", ts=0.1),
        *[ModelStart(run="c", agent="child", id=str(n), model="m", ts=n + 1.0) for n in range(3)],
        RunEnd(run="c", agent="child", status="ok", ts=9.0),
    ]
    read = [from_dict(e.to_dict()) for e in events]
    assert read[1].parent == "p"
    results = replay_events(
        read, Guard(rules({"max_model_calls": 2}, child={"max_model_calls": 50}))
    )
    stopped = {r.run: r for r in results}["c"]
    assert stopped.verdict is not None
    assert stopped.verdict.evidence["enclosing_run"] == "p"


def test_a_sub_agent_spends_from_the_enclosing_run_budget_in_sqlite(tmp_path: Any) -> None:
    # The supervisor's agent budget ($2.50 a day in a SQLite ledger) pays for its sub-agent's
    # calls too: at $1 a call, two go out, and the ledger holds exactly $2 spent.
    from loopguard.ledger import open_ledger

    uri = f"sqlite:///{tmp_path}/ledger.db"
    budget = {"scope": "agent", "period": "day", "max_usd": 2.5}
    guard = Guard(
        rules(child={"max_model_calls": 50}, supervisor={"ledger": uri, "budgets": [budget]}),
        pricer=lambda *_: 1.0,
    )
    guard.process(RunStart(run="sup", agent="supervisor"))
    guard.process(RunStart(run="sub", agent="child", parent="sup"))
    call(guard, "sub", 1, "child")
    call(guard, "sub", 2, "child")
    with pytest.raises(LoopGuardAbort) as info:
        call(guard, "sub", 3, "child")
    assert info.value.verdict.evidence["limit"] == "budget.max_usd"
    assert info.value.verdict.evidence["enclosing_agent"] == "supervisor"
    guard.end_run("sub", "aborted")
    guard.end_run("sup", "aborted")  # stopped too: its budget is spent
    usage = open_ledger(uri).usage()
    assert [round(u.spent_usd, 6) for u in usage] == [2.0]
    assert [u.reserved_usd for u in usage] == [0.0]  # the refused call's hold given back
