"""progress: alike tool calls that bring back almost nothing new to the run are a stall."""

from __future__ import annotations

import random

from _scenarios import Sim

from loopguard.detectors import _progress
from loopguard.detectors._progress import novelty
from loopguard.events import ToolEnd
from loopguard.policy import Policy
from loopguard.state import RunState
from loopguard.verdict import Action
from tests.detectors.conftest import feed, only

_PAGE = (
    "Here is a screenshot of the fund screener. You visited this page {ago} seconds ago. The "
    "viewport shows {pct}% of the webpage. Filters: Asset Class, Region, Morningstar Rating, "
    "Expense Ratio. The International Equity checkbox appears under Asset Class; the results "
    "table lists Vanguard Total International, Fidelity International Index and Schwab "
    "International Equity with their expense ratios and five-year returns."
)


def _delegations(instructions: list[str], replies: list[str]) -> list:
    s = Sim("t", "Find the cheapest international equity index fund.")
    for instruction, reply in zip(instructions, replies, strict=True):
        s.step("", [("WebSurfer", {"instruction": instruction}, reply)])
    return s.done("runaway", "").events


def test_reworded_delegations_with_the_same_page_back_are_stopped() -> None:
    instructions = [
        "Select 'International Equity' in the Asset Class filter.",
        "Make sure 'International Equity' under Asset Class is selected.",
        "Please ensure the International Equity filter has been properly applied.",
        "Check that the Asset Class filter shows International Equity selected.",
        "Select International Equity again in the filter panel.",
        "Apply the International Equity asset class filter.",
    ]
    replies = [_PAGE.format(ago=8 + i, pct=21 + 7 * i) for i in range(6)]
    verdicts, stop = feed(_delegations(instructions, replies), only("progress"))
    assert [v.action for v in verdicts] == [Action.WARN, Action.NUDGE]
    assert stop is not None and stop.detector == "progress"
    assert stop.step == 5  # the 4th alike reply (the 3rd stale one) ends call 4
    assert stop.evidence["steps"] == [2, 3, 4] and stop.evidence["start_step"] == 2
    assert all(share <= 0.1 for share in stop.evidence["new"])
    assert "Equity" not in stop.reason and "WebSurfer" not in stop.reason  # no content


def test_the_same_rich_result_for_different_arguments_is_stopped() -> None:
    page = "; ".join(
        f"invoice INV-{n} {name} total {n * 3}.50 EUR" for n, name in ((101, "acme"), (102, "beta"))
    )
    page += "; " + "; ".join(f"invoice INV-{n} vendor{n} paid" for n in range(103, 110))
    s = Sim("t", "List every invoice.")
    for offset in range(0, 120, 20):  # the backend ignores the offset
        s.step("Next page.", [("list_invoices", {"offset": offset, "limit": 20}, page)])
    _, stop = feed(s.done("runaway", "").events, only("progress"))
    assert stop is not None and stop.step == 5


def test_a_fan_out_with_short_answers_is_not_a_stall() -> None:
    s = Sim("t", "Ping every service.")
    for i in range(20):
        s.step("", [("http_get", {"url": f"https://svc{i}.internal/health"}, "200 OK")])
    verdicts, stop = feed(s.done("healthy", "").events, only("progress"))
    assert stop is None and verdicts == []


def test_a_batch_of_updates_returning_known_records_is_not_a_stall() -> None:
    s = Sim("t", "Upgrade the cabin of every reservation.")
    rng = random.Random(3)
    cities = ["JFK", "SFO", "LAX", "ORD", "ATL", "SEA", "BOS", "DEN", "MIA", "PHX"]
    names = ["Mia Li", "Omar Hassan", "Ana Silva", "Raj Patel", "Lena Kraus", "Yuki Sato"]
    records = []
    for i in range(8):  # records as a reservation system returns them: each its own trip
        a, b = rng.sample(cities, 2)
        people = rng.sample(names, 2)
        records.append(
            f'{{"reservation_id": "R{i:04d}", "origin": "{a}", "destination": "{b}", '
            f'"flights": [{{"flight_number": "HAT{rng.randint(100, 999)}", "price": '
            f'{rng.randint(90, 900)}}}], "passengers": {people}, "baggage": {rng.randint(0, 3)}, '
            f'"insurance": "{rng.choice(["yes", "no"])}"}}'
        )
    for i, record in enumerate(records):  # first the lookups: every record is seen once
        s.step("", [("get_reservation", {"id": f"R{i:04d}"}, record)])
    for i, record in enumerate(records):  # then the updates echo them back
        s.step("", [("update_cabin", {"id": f"R{i:04d}", "cabin": "business"}, record)])
    _, stop = feed(s.done("healthy", "").events, only("progress"))
    assert stop is None


def test_trying_different_fixes_between_the_same_failing_test_is_exploring() -> None:
    s = Sim("t", "Fix the test.")
    failure = "1 failed: test_total (expected 10.05, got 10.04)"
    for fix in ("use decimal", "round half up", "sum before tax", "integer cents", "quantize"):
        s.step("", [("edit_file", {"path": "src/a.py", "patch": fix}, "Edited src/a.py")])
        s.step("", [("run_tests", {"path": "tests/test_a.py"}, failure)])
    _, stop = feed(s.done("healthy", "").events, only("progress"))
    assert stop is None


def test_a_short_result_whose_number_moves_is_progress() -> None:
    s = Sim("t", "Wait for the export.")
    for pct in range(5, 100, 5):
        s.step("", [("job_status", {"job": "export"}, f"export: {pct}% done")])
    _, stop = feed(s.done("healthy", "").events, only("progress"))
    assert stop is None


def test_reworded_queries_with_the_same_empty_answer_are_stopped() -> None:
    s = Sim("t", "Will it rain in Lisbon tomorrow?")
    for query in (
        "Lisbon forecast tomorrow",
        "weather in Lisbon for tomorrow",
        "tomorrow's temperature Lisbon",
        "Lisbon weather forecast for tomorrow",
        "forecast Lisbon tomorrow rain",
    ):
        s.step("", [("weather_search", {"q": query}, "No results found.")])
    _, stop = feed(s.done("runaway", "").events, only("progress"))
    assert stop is not None


def test_novelty_is_measured_against_the_run_and_the_vocabulary_is_bounded(
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.setattr(_progress, "VOCABULARY", 50)
    state = RunState("r", None, Policy(), 0.0)
    first = novelty(state, ToolEnd(run="r", tool="t", output="The alpha, beta and gamma of 4411"))
    assert (first.new, first.total) == (4, 4)  # function words are not terms
    again = novelty(state, ToolEnd(run="r", tool="t", output="gamma beta alpha: 4411 delta"))
    assert (again.new, again.total) == (1, 5) and again.fraction == 0.2
    for i in range(200):
        novelty(state, ToolEnd(run="r", tool="t", output=f"item {i} word{i}x"))
    vocab = state.slots["_progress"]
    assert len(vocab.current) < 50 and len(vocab.previous) <= 51
