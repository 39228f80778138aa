"""Agent runs, as the events loopguard sees: runaway loops and healthy runs that look dangerous.

Each scenario is a realistic event sequence of one agent run (prompts that grow step by step,
answers with tool calls, tool results, token usage, streamed chunks where the agent streams),
built by a small simulator. A runaway scenario marks the model call where its loop starts
(`onset`) and the loop's period in model calls, so a benchmark can say how late a stop was.
Shared by benchmarks/detection.py and the regression test tests/detectors/test_benchmark.py.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from loopguard.events import (
    Event,
    Message,
    ModelEnd,
    ModelStart,
    RunEnd,
    RunStart,
    Token,
    ToolCall,
    ToolEnd,
    ToolFailed,
    ToolStart,
    Usage,
)
from loopguard.tokens import estimate_input_tokens, estimate_text_tokens

MODEL = "anthropic.claude-3-5-sonnet-20241022-v2:0"
TOOL_SCHEMA_TOKENS = 1200  # tool definitions sent with every prompt
T0 = 1_767_000_000.0
LOOP = 30  # model calls a runaway loop gets in a scenario; a real one goes on until stopped
SYSTEM = (
    "You are a careful assistant for ACME Corp's operations team. Use the tools to answer; "
    "cite what you found; finish with a short summary."
)


@dataclass(frozen=True, slots=True)
class Fail:
    """A tool call that raises (the tool_error event)."""

    error: str


@dataclass(slots=True)
class Scenario:
    name: str
    kind: str  # "runaway" | "healthy"
    what: str
    events: list[Event]
    onset: int | None = None  # model call where the loop starts (runaway only)
    period: int = 1  # model calls per repetition of the loop

    @property
    def second_repetition(self) -> int | None:
        """The model call that completes the loop's second repetition."""
        return None if self.onset is None else self.onset + 3 * self.period - 1

    @property
    def deadline(self) -> int | None:
        """The latest model call at which a stop still meets "within 3 calls after the second
        repetition"."""
        rep = self.second_repetition
        return None if rep is None else rep + 3

    @property
    def model_calls(self) -> int:
        return sum(1 for e in self.events if type(e) is ModelStart)


class Sim:
    """Builds the events of one agent run, step by step."""

    def __init__(self, name: str, task: str, *, seconds: float = 4.0, system: str = SYSTEM) -> None:
        self.run = f"bench-{name}"
        self.agent = name
        self.messages = [Message("system", system), Message("user", task)]
        self.ts = T0
        self.seconds = seconds
        self.calls = 0
        self.events: list[Event] = [RunStart(run=self.run, agent=self.agent, ts=self.ts, name=name)]

    def _emit(self, event: Event) -> None:
        self.events.append(event)

    def step(
        self,
        text: str = "",
        calls: Sequence[tuple[str, dict[str, Any] | str, str | Fail]] = (),
        *,
        stream: Iterable[str] | None = None,
        seconds: float | None = None,
        output_tokens: int | None = None,
        input_tokens: int | None = None,
        user: str | None = None,
    ) -> None:
        """One model call, its answer (streamed when `stream` is given), and its tool calls."""
        if user is not None:
            self.messages.append(Message("user", user))
        self.calls += 1
        base = dict(run=self.run, agent=self.agent)
        self._emit(
            ModelStart(
                **base,
                ts=self.ts,
                model=MODEL,
                messages=list(self.messages),
                max_tokens=8192,
                id=f"{self.run}-m{self.calls}",
            )
        )
        if stream is not None:
            chunks = list(stream)
            text = "".join(chunks)
            for chunk in chunks:
                self.ts += 0.015
                self._emit(Token(**base, ts=self.ts, text=chunk, id=f"{self.run}-m{self.calls}"))
        call_text = " ".join(json.dumps(a) if isinstance(a, dict) else a for _, a, _ in calls)
        usage = Usage(
            input_tokens=input_tokens or TOOL_SCHEMA_TOKENS + estimate_input_tokens(self.messages),
            output_tokens=output_tokens or 12 + estimate_text_tokens(text + call_text),
        )
        self.ts += self.seconds if seconds is None else seconds
        self._emit(
            ModelEnd(
                **base,
                ts=self.ts,
                model=MODEL,
                text=text,
                usage=usage,
                tool_calls=[ToolCall(n, a) for n, a, _ in calls],
                id=f"{self.run}-m{self.calls}",
            )
        )
        self.messages.append(
            Message("assistant", text, [{"name": n, "args": a} for n, a, _ in calls] or None)
        )
        for i, (name, args, result) in enumerate(calls):
            tid = f"{self.run}-t{self.calls}.{i}"
            self._emit(ToolStart(**base, ts=self.ts, tool=name, args=args, id=tid))
            self.ts += 0.4
            if isinstance(result, Fail):
                self._emit(ToolFailed(**base, ts=self.ts, tool=name, error=result.error, id=tid))
                self.messages.append(Message("tool", f"Error: {result.error}"))
            else:
                self._emit(ToolEnd(**base, ts=self.ts, tool=name, output=result, id=tid))
                self.messages.append(Message("tool", result))

    def done(
        self,
        kind: str,
        what: str,
        *,
        onset: int | None = None,
        period: int = 1,
    ) -> Scenario:
        self.ts += 0.1
        self._emit(RunEnd(run=self.run, agent=self.agent, ts=self.ts, status="ok"))
        return Scenario(self.agent, kind, what, self.events, onset, period)


def _chunks(text: str, size: int = 14) -> list[str]:
    """Split like a model stream: a few words per chunk."""
    return [text[i : i + size] for i in range(0, len(text), size)]


_TOPICS = [
    "solid-state batteries",
    "sodium-ion cathodes",
    "grid storage tariffs",
    "lithium recycling",
    "cobalt supply",
    "thermal runaway tests",
    "BMS firmware",
    "cell balancing",
    "charging curves",
    "warranty claims",
    "fleet telemetry",
    "supplier audits",
    "electrolyte additives",
    "anode swelling",
    "pack cooling",
    "state-of-health models",
    "second-life packs",
    "fire codes",
    "shipping rules",
    "raw material hedging",
]
_WORDS = (
    "analysis shows growth decline supplier contract region pilot cost margin risk audit "
    "yield defect capacity demand forecast quarterly customer plant shipment inventory "
    "pricing volume delay approval safety standard revision vendor backlog review"
).split()


_SYLLABLES = "ka ro mi ten vel dor sa lin quo ber nix tal em fu gor pa si vo".split()


def _prose(rng: random.Random, n: int) -> str:
    """Business prose in which about one word in five is a name (a supplier, a site, a
    product), as in real text: a healthy run's results keep bringing names it has not seen."""
    return (
        " ".join(
            rng.choice(_WORDS)
            if rng.random() > 0.2
            else "".join(rng.choice(_SYLLABLES) for _ in range(3)).capitalize()
            for _ in range(n)
        ).capitalize()
        + "."
    )


# --- runaway scenarios ------------------------------------------------------------------------


def exact_repeat() -> Scenario:
    s = Sim("exact-repeat", "What was ACME's Q3 2024 revenue?")
    s.step(
        "I'll search the finance wiki.",
        [
            (
                "wiki_search",
                {"query": "ACME revenue 2023"},
                "FY2023 revenue: $41.2M (annual report).",
            )
        ],
    )
    for _ in range(LOOP):  # onset: call 2
        s.step(
            "Let me search for the Q3 2024 figure.",
            [("wiki_search", {"query": "ACME Q3 2024 revenue"}, "No documents matched.")],
        )
    return s.done("runaway", "same search, same empty result", onset=2)


def paraphrased_repeat() -> Scenario:
    s = Sim("paraphrased-repeat", "Find the owner of the billing-service on-call rota.")
    s.step(
        "Checking the service catalogue.",
        [
            (
                "catalog_lookup",
                {"service": "billing-service"},
                "billing-service: team=payments, tier=1",
            )
        ],
    )
    thoughts = [
        "I should look up who is on call for payments.",
        "Let me find the payments on-call person.",
        "Now I need the on-call engineer for payments.",
        "I'll look for who is on call in payments.",
        "Let me check the payments on-call engineer again.",
        "I need to find the on-call person for payments.",
    ]
    queries = [
        "payments on-call",
        "on-call payments",
        "Payments on call",
        "payments  oncall",
        "on call payments",
        "payments on-call engineer",
    ]
    for i in range(LOOP):  # onset: call 2; the words change, the step does not
        s.step(
            thoughts[i % 6],
            [
                (
                    "directory_search",
                    {"q": queries[i % 6]},
                    "0 results. Try a person's name or an email address.",
                )
            ],
        )
    return s.done("runaway", "rephrased thoughts and queries, same result", onset=2)


def ping_pong() -> Scenario:
    s = Sim("ping-pong", "Why does the nightly export fail?")
    s.step(
        "Start with the job config.",
        [
            (
                "read_file",
                {"path": "jobs/export.yaml"},
                "schedule: '0 2 * * *'\ntarget: s3://acme-exports",
            )
        ],
    )
    for _ in range(LOOP // 2):  # onset: call 2, A,B,A,B
        s.step(
            "Let me check the log.",
            [
                (
                    "read_file",
                    {"path": "logs/export.log"},
                    "ERROR AccessDenied: s3://acme-exports/nightly",
                )
            ],
        )
        s.step(
            "Let me look at the IAM policy.",
            [
                (
                    "read_file",
                    {"path": "iam/export-role.json"},
                    '{"Effect": "Allow", "Action": "s3:GetObject"}',
                )
            ],
        )
    return s.done("runaway", "A,B,A,B between two files that do not change", onset=2, period=2)


def three_cycle() -> Scenario:
    s = Sim("three-cycle", "Summarise the latest incident postmortem.")
    for _ in range(LOOP // 3):  # onset: call 1, A,B,C
        s.step(
            "Search for it.",
            [
                (
                    "search",
                    {"q": "latest incident postmortem"},
                    "1. INC-2291 postmortem (draft) /wiki/inc-2291",
                )
            ],
        )
        s.step(
            "Open it.",
            [
                (
                    "open_page",
                    {"url": "/wiki/inc-2291"},
                    "This page is a draft. Content is restricted.",
                )
            ],
        )
        s.step(
            "It is a draft; maybe there is a newer one.",
            [
                (
                    "list_pages",
                    {"space": "incidents", "sort": "recent"},
                    "inc-2291 (draft), inc-2290, inc-2289",
                )
            ],
        )
    return s.done("runaway", "search -> open -> list, round and round", onset=1, period=3)


def near_cycle() -> Scenario:
    s = Sim("near-identical-cycle", "Make the failing unit test pass.")
    s.step(
        "Run the tests first.",
        [
            (
                "run_tests",
                {"path": "tests/test_tax.py"},
                "1 failed: test_rounding (expected 10.05, got 10.04)",
            )
        ],
    )
    for i in range(LOOP // 2):  # onset: call 2; edit -> test, arguments reworded, results identical
        s.step(
            "Patch the rounding.",
            [
                (
                    "edit_file",
                    {
                        "path": "src/tax.py",
                        "patch": ["use round(x, 2)", "use  round(x,2)", "Use round(x, 2)"][i % 3],
                    },
                    "Edited src/tax.py",
                )
            ],
        )
        s.step(
            "Re-run the test.",
            [
                (
                    "run_tests",
                    {"path": "tests/test_tax.py"},
                    "1 failed: test_rounding (expected 10.05, got 10.04)",
                )
            ],
        )
    return s.done("runaway", "edit/test ping-pong, edits reworded, same failure", onset=2, period=2)


def retry_storm() -> Scenario:
    s = Sim("retry-storm", "Export all open invoices to the ledger API.")
    s.step("Fetch the invoices.", [("list_invoices", {"status": "open"}, "42 open invoices.")])
    for i in range(LOOP):  # onset: call 2; the model tweaks the batch size, the API keeps refusing
        s.step(
            "Upload the batch.",
            [
                (
                    "ledger_upload",
                    {"batch_size": 50 - 5 * (i % 4)},
                    Fail(
                        f"429 Too Many Requests: rate limit exceeded, retry "
                        f"after {30 + i}s (request {1000 + i})"
                    ),
                )
            ],
        )
    return s.done("runaway", "the same 429 error, again and again", onset=2)


def identical_error() -> Scenario:
    s = Sim("identical-error", "Create the Q4 forecast sheet.")
    for _ in range(LOOP):  # onset: call 1
        s.step(
            "Create the sheet.",
            [
                (
                    "create_sheet",
                    {"title": "Q4 forecast", "folder": "finance"},
                    Fail("PermissionError: folder 'finance' is read-only"),
                )
            ],
        )
    return s.done("runaway", "the same call failing the same way", onset=1)


def duplicate_creation() -> Scenario:
    s = Sim("duplicate-creation", "Open a ticket for the broken VPN.")
    rng = random.Random(8)
    for _ in range(LOOP):  # onset: call 1; each result carries a fresh UUID: still no progress
        s.step(
            "Open the ticket.",
            [
                (
                    "create_ticket",
                    {"title": "VPN down", "priority": "high"},
                    f"Created ticket {uuid.UUID(int=rng.getrandbits(128))}",
                )
            ],
        )
    return s.done("runaway", "creates the same ticket again and again (new id each time)", onset=1)


def stuck_poll() -> Scenario:
    s = Sim("stuck-poll", "Wait for the data backfill to finish, then report.", seconds=3.0)
    s.step("Start the backfill.", [("start_job", {"name": "backfill"}, "job_id=job-58c1 queued")])
    for _ in range(LOOP):  # onset: call 2; the job never moves
        s.step(
            "Check the job.",
            [("job_status", {"job_id": "job-58c1"}, "job-58c1: QUEUED (waiting for a worker)")],
        )
    return s.done("runaway", "polls a job whose status never changes", onset=2)


def monologue() -> Scenario:
    s = Sim("monologue", "Draft the release notes for v2.3.")
    s.step(
        "I need the changelog first.",
        [("read_file", {"path": "CHANGELOG.md"}, "## v2.3\n- faster sync\n- new export format")],
    )
    for i in range(LOOP):  # onset: call 2; an outer loop says "continue", the model stalls
        s.step(
            [
                "I need more information about the release before I can write the notes.",
                "Before writing the release notes I need more information about the release.",
                "I need more information about this release to write the notes.",
            ][i % 3],
            user="Continue.",
        )
    return s.done("runaway", "stalls with the same answer to 'continue'", onset=2)


def empty_answers() -> Scenario:
    s = Sim("empty-answers", "Classify the attached support email.")
    s.step("Reading it.", [("read_email", {"id": "msg-20931"}, "Subject: refund\nBody: ...")])
    for _ in range(LOOP):  # onset: call 2
        s.step("", user="Please answer.", output_tokens=1)
    return s.done("runaway", "empty answers to every re-prompt", onset=2)


def velocity_burst() -> Scenario:
    s = Sim("velocity-burst", "Answer questions about the 600-page supplier contract.", seconds=2.0)
    rng = random.Random(7)
    s.step(
        "Load the contract.", [("load_document", {"id": "contract-77"}, "Loaded (148,000 tokens).")]
    )
    for i in range(LOOP):  # onset: call 2; a bug re-sends the whole contract on every sub-question
        s.step(
            _prose(rng, 30),
            [("ask_clause", {"question": f"clause {i + 1} obligations"}, _prose(rng, 40))],
            input_tokens=150_000 + 500 * i,
            output_tokens=300,
        )
    return s.done("runaway", "150k-token prompts every 2 seconds", onset=2)


def snowball() -> Scenario:
    s = Sim("snowball", "Write a market overview, improving it each step.")
    rng = random.Random(3)
    size = 500
    for i in range(LOOP):  # onset: call 1; each step re-emits everything so far, and more
        text = " ".join(_prose(rng, 12) for _ in range(size // 20))
        s.step(
            text, [("save_draft", {"version": i + 1}, f"Saved draft v{i + 1}.")], output_tokens=size
        )
        size = min(8000, int(size * 1.7))  # up to the call's max_tokens
    return s.done("runaway", "each answer rewrites and extends the last one", onset=1)


def streamed_repetition() -> Scenario:
    s = Sim("streamed-repetition", "Explain why the cache hit rate dropped.")
    s.step(
        "Get the metrics.",
        [
            (
                "metrics",
                {"name": "cache_hit_rate", "range": "7d"},
                "7d: 0.91 -> 0.62 since deploy 4411",
            )
        ],
    )
    intro = (
        "The hit rate fell right after deploy 4411, which changed the cache key to include "
        "the request id. "
    )
    loop = (
        "Because the key now includes the request id, every request misses the cache and "
        "goes to the database, which lowers the hit rate. "
    )
    s.step(stream=_chunks(intro + loop * 40))  # onset: call 2; the model repeats one sentence
    return s.done("runaway", "a streamed answer repeating one sentence", onset=2)


def streamed_list_loop() -> Scenario:
    s = Sim("streamed-list-loop", "List the steps to rotate the API keys.")
    items = [
        "Create a new key in the admin console.",
        "Update the key in the secrets vault.",
        "Restart the API gateway pods.",
    ]
    text = "Steps:\n" + "".join(f"- {items[i % 3]}\n" for i in range(60))
    s.step(stream=_chunks(text))  # onset: call 1
    return s.done("runaway", "a streamed list going round its three items", onset=1)


# --- real loops (issue 15): each case with a healthy twin that looks alike --------------------
# Seen on public trajectories (Who&When's Magentic-One runs, tau-bench): loops are reworded,
# their results carry noise (relative times, scroll positions, fresh ids), and what they share
# is that the agent learns nothing new.

_FUND_FACTS = [
    ("The screener lists {a}, {b} and {c} as index funds.", "Index funds shown: {c}, {a}, {b}."),
    (
        "The Asset Class filter offers Domestic Equity, International Equity and Bonds.",
        "Under Asset Class there are checkboxes for Bonds, Domestic Equity and International "
        "Equity.",
    ),
    (
        "International Equity appears ticked, but the results table has not refreshed.",
        "The International Equity box seems selected; the table below looks unchanged.",
    ),
    (
        "Each row shows the expense ratio, the five-year return and the Morningstar rating.",
        "Columns: Morningstar rating, five-year return, expense ratio.",
    ),
]
_FUNDS = ("Vanguard Total International", "Fidelity International Index", "Schwab Intl Equity")


def _page_description(rng: random.Random, visit: int) -> str:
    """The same page, described afresh by a web agent: model-written, reordered, with the
    relative time, the viewport and a counter that change on every visit."""
    funds = list(_FUNDS)
    rng.shuffle(funds)
    facts = [rng.choice(pair).format(a=funds[0], b=funds[1], c=funds[2]) for pair in _FUND_FACTS]
    rng.shuffle(facts)
    return (
        f"I clicked 'International Equity'. Here is a screenshot of [Fund Screener - Find "
        f"Index Funds](https://funds.example.com/screener). You visited this page {6 + visit * 3} "
        f"seconds ago. The viewport shows {18 + 7 * (visit % 5)}% of the webpage, and is "
        f"positioned {rng.choice(['at the top of', 'near the top of'])} the page. "
        + " ".join(facts)
        + f" The page reports {2_100 + 17 * visit:,} matching funds."
    )


def reworded_delegation() -> Scenario:
    s = Sim("reworded-delegation", "Which international equity index fund is the cheapest?")
    rng = random.Random(15)
    s.step(
        "Ask the web agent to open the screener.",
        [
            (
                "WebSurfer",
                {"instruction": "Open the fund screener at funds.example.com."},
                "I typed 'funds.example.com/screener' into the address bar. The page 'Fund "
                "Screener' loaded with filters for asset class, region and rating.",
            )
        ],
    )
    instructions = [
        "Select 'International Equity' in the Asset Class filter.",
        "Make sure 'International Equity' under Asset Class is selected.",
        "Please ensure the International Equity filter has been properly applied.",
        "Check that the filter for International Equity is applied and report the funds.",
        "Verify the Asset Class filter is set to International Equity.",
    ]
    for i in range(LOOP):  # onset: call 2; reworded instructions, the same page described anew
        s.step(
            "Delegate to WebSurfer.",
            [("WebSurfer", {"instruction": instructions[i % 5]}, _page_description(rng, i))],
        )
    return s.done("runaway", "reworded delegations, the same page described anew", onset=2)


def delegated_browsing() -> Scenario:
    s = Sim("delegated-browsing", "Compare the expense ratios of three international funds.")
    rng = random.Random(16)
    for i, fund in enumerate(_FUNDS * 3):
        ratio = f"0.{rng.randint(5, 40):02d}%"
        s.step(
            "Delegate to WebSurfer.",
            [
                (
                    "WebSurfer",
                    {"instruction": f"Open the page of {fund} and report its expense ratio."},
                    f"I clicked '{fund}'. Here is a screenshot of [{fund} - Overview]"
                    f"(https://funds.example.com/fund/{1000 + i}). The viewport shows "
                    f"{20 + i}% of the webpage. Expense ratio {ratio}; holdings " + _prose(rng, 30),
                )
            ],
        )
    s.step("The cheapest is the one with the lowest expense ratio above.")
    return s.done("healthy", "similar delegations, each page new")


def _records(start: int) -> str:
    rows = [
        f'{{"id": "cust-{n}", "name": "{name}", "plan": "{plan}", "seats": {seats}}}'
        for n, name, plan, seats in (
            (start + k, f"Customer {chr(65 + k % 26)}{k}", ("team", "pro", "free")[k % 3], k % 9)
            for k in range(20)
        )
    ]
    return "[" + ", ".join(rows) + "]"


def ignored_offset() -> Scenario:
    s = Sim("ignored-offset", "Export every customer on the pro plan.")
    page = _records(4100)
    for i in range(LOOP):  # onset: call 1; the backend ignores the offset
        s.step(
            "Next page of customers.",
            [("list_customers", {"offset": 20 * i, "limit": 20}, page)],
        )
    return s.done("runaway", "a listing that ignores its offset: the same page every time", onset=1)


def offset_paging() -> Scenario:
    s = Sim("offset-paging", "Export every customer on the pro plan.")
    for i in range(14):
        s.step(
            "Next page of customers.",
            [("list_customers", {"offset": 20 * i, "limit": 20}, _records(4100 + 20 * i))],
        )
    s.step("Exported 280 customers; 93 are on the pro plan.")
    return s.done("healthy", "the same listing call with the next offset, new records each time")


def deploy_health_cycle() -> Scenario:
    s = Sim("deploy-health-cycle", "Deploy checkout 2.4.1 and make sure it is healthy.")
    rng = random.Random(17)
    for _ in range(LOOP // 2):  # onset: call 1; deploy -> check, a fresh deployment id each time
        dep = "dpl-" + "".join(rng.choice("abcdefghjkmnpqrstuvwxyz23456789") for _ in range(8))
        s.step(
            "Deploy it.",
            [
                (
                    "deploy",
                    {"service": "checkout", "version": "2.4.1"},
                    f"Deployment {dep} started for checkout 2.4.1 (3 replicas).",
                )
            ],
        )
        s.step(
            "Check its health.",
            [
                (
                    "check_health",
                    {"service": "checkout"},
                    "checkout: UNHEALTHY, 0/3 replicas ready (CrashLoopBackOff: missing "
                    "env STRIPE_KEY)",
                )
            ],
        )
    return s.done(
        "runaway", "deploy -> unhealthy -> deploy again, a new id each time", onset=1, period=2
    )


def staged_rollout() -> Scenario:
    s = Sim("staged-rollout", "Roll checkout 2.4.1 out in stages and watch its health.")
    rng = random.Random(18)
    for stage, ready in (("canary", 1), ("25%", 3), ("50%", 6), ("100%", 12)):
        dep = "dpl-" + "".join(rng.choice("abcdefghjkmnpqrstuvwxyz23456789") for _ in range(8))
        s.step(
            f"Deploy the {stage} stage.",
            [
                (
                    "deploy",
                    {"service": "checkout", "version": "2.4.1", "stage": stage},
                    f"Deployment {dep} started for checkout 2.4.1 ({stage}).",
                )
            ],
        )
        for wait in range(2):
            s.step(
                "Check its health.",
                [
                    (
                        "check_health",
                        {"service": "checkout"},
                        f"checkout: {'HEALTHY' if wait else 'STARTING'}, "
                        f"{ready - 1 + wait}/{ready} replicas ready",
                    )
                ],
            )
    s.step("Rolled out to 100%; all 12 replicas healthy.")
    return s.done("healthy", "deploy -> check cycles whose health moves each time")


_MIGRATE_TRACE = (
    "Traceback (most recent call last):\n"
    '  File "manage.py", line 22, in <module>\n'
    "    execute_from_command_line(sys.argv)\n"
    '  File "django/db/backends/postgresql/base.py", line 269, in get_new_connection\n'
    "django.db.utils.OperationalError: could not connect to server: Connection refused\n"
    '\tIs the server running on host "db" (172.18.0.{n}) and accepting TCP/IP connections '
    "on port 5432?\n"
)


def error_output() -> Scenario:
    s = Sim("error-output", "Apply the pending database migrations.")
    s.step("Look at the settings.", [("shell", {"cmd": "cat .env"}, "DB_HOST=db\nDB_PORT=5432")])
    variants = [
        "python manage.py migrate",
        "python manage.py migrate --database default",
        "python3 manage.py migrate",
        "python manage.py migrate --noinput",
    ]
    for i in range(LOOP):  # onset: call 2; the shell returns normally, with a traceback
        s.step(
            "Run the migrations.",
            [("shell", {"cmd": variants[i % 4]}, _MIGRATE_TRACE.format(n=2 + i % 3))],
        )
    return s.done("runaway", "a shell tool printing the same traceback every time", onset=2)


def shell_recovers() -> Scenario:
    s = Sim("shell-recovers", "Pretty-print the deployment manifest's image names.")
    s.step(
        "Try jq.", [("shell", {"cmd": "jq '.images' deploy.json"}, "bash: jq: command not found")]
    )
    s.step(
        "Install it.",
        [("shell", {"cmd": "apt-get install -y jq"}, "Setting up jq (1.6-2.1) ...\nDone.")],
    )
    s.step(
        "Try again.",
        [("shell", {"cmd": "jq '.images' deploy.json"}, '["checkout:2.4.1", "cart:1.9.0"]')],
    )
    s.step("Run the tests.", [("shell", {"cmd": "pytest -q"}, "3 failed, 41 passed\nexit code: 1")])
    s.step("Fix and rerun.", [("shell", {"cmd": "pytest -q -x"}, "44 passed\nexit code: 0")])
    s.step("The images are checkout:2.4.1 and cart:1.9.0; tests pass.")
    return s.done("healthy", "errors printed as output, each followed by a fix that works")


def reworded_empty_search() -> Scenario:
    s = Sim("reworded-empty-search", "Will it rain in Lisbon tomorrow?")
    queries = [
        "Lisbon forecast tomorrow",
        "weather in Lisbon for tomorrow",
        "tomorrow's temperature Lisbon",
        "Lisbon weather forecast for tomorrow",
        "rain Lisbon tomorrow forecast",
        "forecast for Lisbon, tomorrow",
    ]
    for i in range(LOOP):  # onset: call 1; reworded queries, the same empty answer
        s.step(
            "Search the weather.",
            [("weather_search", {"q": queries[i % 6]}, "No results found.")],
        )
    return s.done("runaway", "reworded queries, the same empty answer", onset=1)


def reworded_search_answers() -> Scenario:
    s = Sim("reworded-search-answers", "Find a hotel in Lisbon for next weekend.")
    rng = random.Random(19)
    for area in ("Alfama", "Baixa", "Chiado", "Belem", "Principe Real", "Cais do Sodre"):
        hotels = ", ".join(
            f"{''.join(rng.choice(_SYLLABLES) for _ in range(3)).capitalize()} Hotel "
            f"({rng.randint(90, 320)} EUR)"
            for _ in range(3)
        )
        s.step(
            "Search hotels.",
            [("hotel_search", {"q": f"Lisbon hotels {area} next weekend"}, hotels)],
        )
    s.step("Booked the best-rated one in Chiado.")
    return s.done("healthy", "similar queries, each with new answers")


def _site_page(rng: random.Random, name: str, part: int) -> str:
    return f"[{name}] part {part}: " + " ".join(_prose(rng, 20) for _ in range(3))


def long_stall() -> Scenario:
    s = Sim("long-stall", "Find the 2023 emissions figure in the ACME sustainability report.")
    rng = random.Random(20)
    for i in range(4):  # real research first: new pages
        s.step(
            "Browse.",
            [
                (
                    "visit_url",
                    {"url": f"https://acme.example.com/esg/{i}"},
                    _site_page(rng, "esg", i),
                )
            ],
        )
    seen = [_site_page(random.Random(21 + k), "report", k) for k in range(3)]
    actions = [
        ("scroll_down", {}),
        ("scroll_up", {}),
        ("visit_url", {"url": "https://acme.example.com/esg/report"}),
        ("find_on_page", {"text": "emissions 2023"}),
        ("find_on_page", {"text": "2023 emissions"}),
    ]
    for i in range(LOOP):  # onset: call 5; browsing on, the same three screens come back
        tool, args = actions[i % 5]
        visit = seen[i % 3] + f" You visited this page {3 + i} minutes ago; scrolled {10 + i}%."
        s.step("Look again.", [(tool, args, visit)])
    return s.done("runaway", "browsing on, the same three screens come back", onset=5, period=3)


def long_browsing() -> Scenario:
    s = Sim("long-browsing", "Collect every emissions figure in ACME's reports since 2015.")
    rng = random.Random(22)
    actions = [("scroll_down", {}), ("visit_url", None), ("find_on_page", None)]
    for i in range(36):
        tool, args = actions[i % 3]
        if args is None:
            args = (
                {"url": f"https://acme.example.com/esg/{2015 + i // 3}"}
                if tool == "visit_url"
                else {"text": f"emissions {2015 + i // 3}"}
            )
        s.step("Browse.", [(tool, args, _site_page(rng, f"report-{i // 3}", i))])
    s.step("Collected twelve years of emissions figures.")
    return s.done("healthy", "36 browsing steps, each page new")


_REPORT = (
    "Revenue grew in every region, led by the industrial segment; operating costs rose with "
    "freight and energy prices, and the board kept the dividend unchanged. "
)


def _report_part(rng: random.Random, part: int) -> str:
    """One long page of a report (~3,400 tokens), new words on every page."""
    return f"https://archive.example.com/report/part-{part}\n" + " ".join(
        _prose(rng, 25) for _ in range(60)
    )


def _read_part(s: Sim, rng: random.Random, part: int) -> None:
    s.step(
        f"Reading part {part} of the report before I answer.",
        [
            (
                "fetch_page",
                {"url": f"https://archive.example.com/report/part-{part}"},
                _report_part(rng, part),
            )
        ],
    )


def snowball_real_pace() -> Scenario:
    s = Sim("snowball-real-pace", "Summarise the annual report.", seconds=4.0)
    rng = random.Random(23)
    for part in range(1, LOOP + 1):  # onset: call 1; every page read stays in the context
        _read_part(s, rng, part)
    # Every call is new work, with no repetition to count: the loop is the read whose result
    # every later call re-bills; its third occurrence is model call 3.
    return s.done("runaway", "reads one long page after another at 4 s a call", onset=1)


def five_long_reads() -> Scenario:
    s = Sim("five-long-reads", "Summarise the annual report.", seconds=4.0)
    rng = random.Random(25)
    for part in range(1, 6):  # the snowball's first five calls, then an answer
        _read_part(s, rng, part)
    s.step("Summary: " + _prose(rng, 60))
    return s.done("healthy", "reads five long pages in full, then answers")


def large_prompt_reader() -> Scenario:
    # An agent with many tools and a long system prompt (~35,000 tokens) reading twelve long
    # pages in a row: the reading never comes to twice the prompt (2.2x at the end).
    rng = random.Random(26)
    handbook = " ".join(_prose(rng, 25) for _ in range(600))
    s = Sim("large-prompt-reader", "Summarise the annual report.", system=SYSTEM + handbook)
    for part in range(1, 13):
        _read_part(s, rng, part)
    s.step("Summary: " + _prose(rng, 60))
    return s.done("healthy", "a 35k-token prompt, then twelve long pages in full")


def summarising_reader() -> Scenario:
    s = Sim("summarising-reader", "Summarise the annual report.", seconds=4.0)
    rng = random.Random(24)
    notes = ""
    for part in range(1, 21):  # long pages at the same pace, but the context stays bounded
        page = " ".join(_prose(rng, 25) for _ in range(60))
        s.messages = [*s.messages[:2], Message("assistant", "Notes so far: " + notes)]
        s.step(
            f"Reading part {part}.",
            [("fetch_page", {"url": f"https://archive.example.com/report/part-{part}"}, page)],
        )
        notes = _prose(rng, 40)
    s.step("Summary: " + notes)
    return s.done("healthy", "long pages at 4 s a call, the context summarised each step")


ISSUE_15: list[tuple[Callable[[], Scenario], Callable[[], Scenario]]] = [
    (reworded_delegation, delegated_browsing),
    (ignored_offset, offset_paging),
    (deploy_health_cycle, staged_rollout),
    (error_output, shell_recovers),
    (reworded_empty_search, reworded_search_answers),
    (long_stall, long_browsing),
    (snowball_real_pace, summarising_reader),
]
"""The seven cases of issue 15: a runaway and its healthy twin each."""

RUNAWAY: list[Callable[[], Scenario]] = [
    exact_repeat,
    paraphrased_repeat,
    ping_pong,
    three_cycle,
    near_cycle,
    retry_storm,
    identical_error,
    duplicate_creation,
    stuck_poll,
    monologue,
    empty_answers,
    velocity_burst,
    snowball,
    streamed_repetition,
    streamed_list_loop,
    *(runaway for runaway, _ in ISSUE_15),
]


# --- healthy scenarios ------------------------------------------------------------------------


def batch_orders() -> Scenario:
    s = Sim("batch-orders", "Check each of the 30 delayed orders and flag the ones to refund.")
    rng = random.Random(11)
    for i in range(30):
        oid = 50_311 + i * 7
        days = rng.randint(2, 19)
        s.step(
            f"Checking order {oid}.",
            [
                (
                    "get_order",
                    {"order_id": oid},
                    f"Order {oid}: status=delayed, {days} days late, "
                    f"total ${rng.randint(20, 900)}.{rng.randint(0, 99):02d}",
                )
            ],
        )
    s.step("Flagged the orders over 14 days late for refund.")
    return s.done("healthy", "30 near-identical steps over different orders")


def batch_translate() -> Scenario:
    s = Sim("batch-translate", "Translate the 25 product blurbs into German.")
    rng = random.Random(5)
    for i in range(25):
        blurb = _prose(rng, 18)
        s.step(
            "Next blurb.",
            [
                ("get_blurb", {"sku": f"SKU-{rng.choice('ABCDEFGH')}{i}"}, blurb),
                ("save_translation", {"sku": f"item-{i}", "text": blurb[::-1]}, "saved"),
            ],
        )
    return s.done("healthy", "batch translation, same tools every step")


def poll_until_done() -> Scenario:
    s = Sim("poll-job", "Run the nightly reconciliation and report the totals.", seconds=2.0)
    s.step("Start it.", [("start_job", {"name": "reconcile"}, "job_id=job-7f3a queued")])
    for i in range(22):  # gemini-cli's rule stops this at the 5th identical call
        pct = min(99, 4 * i + 3)
        s.step(
            "Still running; check again.",
            [
                (
                    "job_status",
                    {"job_id": "job-7f3a"},
                    f"job-7f3a: RUNNING {pct}% (elapsed {30 * (i + 1)}s)",
                )
            ],
        )
    s.step("Done.", [("job_status", {"job_id": "job-7f3a"}, "job-7f3a: SUCCEEDED, 18,204 rows")])
    s.step("Reconciliation finished: 18,204 rows matched.")
    return s.done("healthy", "polls a long job 23 times; progress each time")


def research_run() -> Scenario:
    s = Sim("research-run", "Write a briefing on battery supply-chain risks for 2025.")
    rng = random.Random(2)
    for i in range(40):  # a long run whose prompt grows to ~25k tokens
        topic = _TOPICS[i % len(_TOPICS)] + (" outlook" if i >= len(_TOPICS) else "")
        s.step(
            f"Next: {topic}.",
            [("web_search", {"q": f"{topic} 2025"}, " ".join(_prose(rng, 25) for _ in range(4)))],
        )
    s.step("Briefing: " + " ".join(_prose(rng, 20) for _ in range(10)))
    return s.done("healthy", "40-step research run, context grows every step")


def transient_error() -> Scenario:
    s = Sim("transient-error", "Fetch the exchange rates and convert the invoice.")
    s.step("Get rates.", [("fx_rates", {"base": "EUR"}, Fail("503 Service Unavailable"))])
    s.step("Retry once.", [("fx_rates", {"base": "EUR"}, "EUR/USD 1.0842, EUR/GBP 0.8561")])
    s.step("Convert.", [("convert", {"amount": 1200, "rate": 1.0842}, "1301.04")])
    s.step("The invoice is USD 1,301.04.")
    return s.done("healthy", "one transient error, one retry, success")


def changing_file() -> Scenario:
    s = Sim("changing-file", "Wait for the build to finish and tell me if it passed.", seconds=5.0)
    stages = [
        "Resolving dependencies",
        "Compiling core",
        "Compiling api",
        "Compiling web",
        "Running unit tests",
        "Running integration tests",
        "Packaging",
        "Uploading artifacts",
    ]
    log: list[str] = []
    for i, stage in enumerate(stages):
        log.append(f"[{i:02d}:{17 + i:02d}:05] {stage}...")
        s.step(
            "Read the build log.",
            [("read_file", {"path": "build/output.log"}, "\n".join(log[-5:]))],
        )
    log.append("BUILD SUCCESSFUL in 4m 12s")
    s.step(
        "Read the build log.", [("read_file", {"path": "build/output.log"}, "\n".join(log[-5:]))]
    )
    s.step("The build passed.")
    return s.done("healthy", "reads the same file while it changes")


def pagination() -> Scenario:
    s = Sim("pagination", "Collect all audit events of user u-4471 this month.")
    rng = random.Random(9)
    for page in range(1, 16):
        rows = "; ".join(
            f"{rng.choice(['login', 'export', 'delete', 'share'])} doc-{rng.randint(100, 999)}"
            for _ in range(5)
        )
        s.step("Next page.", [("audit_log", {"user": "u-4471", "page": page}, rows)])
    s.step("Collected 75 audit events.")
    return s.done("healthy", "the same call with the next page number, 15 times")


def batch_with_failures() -> Scenario:
    s = Sim("batch-with-failures", "Download the 20 vendor certificates.")
    for i in range(20):
        result: str | Fail = Fail("404 Not Found") if i % 5 == 3 else f"cert-{i}.pem ({2 + i} KB)"
        s.step(
            f"Vendor {i + 1}.",
            [("download", {"url": f"https://vendor{i + 1}.example/cert"}, result)],
        )
    return s.done("healthy", "a batch in which some items fail with the same error")


def edit_test_progress() -> Scenario:
    s = Sim("edit-test-progress", "Fix the failing tests in the tax module.")
    failing = ["test_rounding", "test_vat", "test_exempt", "test_zero_rated"]
    for i in range(4):
        s.step(
            f"Fix {failing[i]}.",
            [
                (
                    "edit_file",
                    {"path": "src/tax.py", "patch": f"handle case {failing[i]}"},
                    "Edited src/tax.py",
                )
            ],
        )
        left = failing[i + 1 :]
        s.step(
            "Run the tests.",
            [
                (
                    "run_tests",
                    {"path": "tests/test_tax.py"},
                    f"{len(left)} failed: {', '.join(left)}" if left else "all 31 passed",
                )
            ],
        )
    s.step("All tax tests pass.")
    return s.done("healthy", "edit/test ping-pong that makes progress each round")


def debug_same_failure() -> Scenario:
    s = Sim("debug-same-failure", "Fix the rounding bug in the invoice total.")
    fixes = [
        "use Decimal and quantize to cents",
        "round half up instead of half even",
        "sum the line items before applying the tax",
        "convert prices from floats to ints",
        "apply the discount after rounding each line",
    ]
    failure = "1 failed: test_invoice_total (expected 10.05, got 10.04)"
    s.step("Reproduce it.", [("run_tests", {"path": "tests/test_invoice.py"}, failure)])
    for fix in fixes:  # different attempts, the same failure each time: exploring, not looping
        s.step(
            f"Try: {fix}.",
            [("edit_file", {"path": "src/invoice.py", "patch": fix}, "Edited src/invoice.py")],
        )
        s.step("Run the test.", [("run_tests", {"path": "tests/test_invoice.py"}, failure)])
    s.step(
        "Try: keep cents as integers end to end.",
        [
            (
                "edit_file",
                {"path": "src/invoice.py", "patch": "keep integer cents everywhere"},
                "Edited src/invoice.py",
            )
        ],
    )
    s.step("Run the test.", [("run_tests", {"path": "tests/test_invoice.py"}, "all 14 passed")])
    s.step("Fixed: totals are kept in integer cents.")
    return s.done("healthy", "five different fixes, the same failing test after each")


def scroll_page() -> Scenario:
    s = Sim("scroll-page", "Find the pricing table on the vendor's long page.")
    rng = random.Random(12)
    s.step("Open it.", [("open_url", {"url": "https://vendor.example/plans"}, _prose(rng, 30))])
    for _ in range(14):  # the same call, a new part of the page each time
        s.step("Scroll on.", [("scroll", {"direction": "down"}, _prose(rng, 30))])
    s.step("Found it.", [("extract_table", {"selector": "#pricing"}, "Basic $10, Pro $25")])
    return s.done("healthy", "the same scroll call 14 times, new content each time")


def steady_big_context() -> Scenario:
    s = Sim("steady-big-context", "Review the monorepo for deprecated API use.", seconds=6.0)
    rng = random.Random(4)
    for i in range(30):  # 40k-token prompts (cached repo map) every 6 s: ~400k tokens/min
        s.step(
            _prose(rng, 20),
            [("grep", {"pattern": f"deprecated_call_{i}"}, _prose(rng, 30))],
            input_tokens=40_000 + 300 * i,
            output_tokens=350,
        )
    return s.done("healthy", "big prompts at a steady pace")


def long_document() -> Scenario:
    s = Sim("long-document", "Write the 12-section operations handbook.")
    rng = random.Random(6)
    for i in range(12):
        text = f"## Section {i + 1}\n" + " ".join(_prose(rng, 15) for _ in range(60))
        s.step(
            text,
            [("save_section", {"n": i + 1}, "saved")],
            output_tokens=1400 + rng.randint(-200, 200),
        )
    return s.done("healthy", "long outputs of steady size")


def chat_session() -> Scenario:
    s = Sim("chat-session", "Hi! A few questions about my account.")
    qa = [
        ("What's my plan?", "You are on the Team plan."),
        ("How many seats do I have?", "You have 12 seats, 9 in use."),
        ("Can I add 3 more?", "Yes; 3 seats would bring you to 15."),
        ("What would that cost?", "Each seat is $12/month, so $36 more a month."),
        ("OK, do it.", "Done: 3 seats added."),
        ("Thanks!", "You're welcome!"),
    ]
    s.step("Hello! Ask away.")
    for q, a in qa:
        s.step(a, user=q)
    return s.done("healthy", "a multi-turn chat with short answers")


def streamed_long_list() -> Scenario:
    s = Sim("streamed-long-list", "List every endpoint and the check to run on it.")
    lines = [
        f"{i}. Verify that GET /api/v1/resources/{i} returns 200 and a valid ETag"
        for i in range(1, 81)
    ]
    s.step(stream=_chunks("Here is the checklist:\n" + "\n".join(lines) + "\n"))
    return s.done("healthy", "80 near-identical numbered list items, streamed")


def streamed_code_table() -> Scenario:
    s = Sim("streamed-code-and-table", "Give me the config for the 40 shards and a summary table.")
    code = (
        "```yaml\nshards:\n"
        + "".join("  - replicas: 3\n    storage: 100Gi\n    zone: a\n" for _ in range(40))
        + "```\n"
    )
    table = "| shard | replicas | zone |\n|---|---|---|\n" + "".join(
        "| s | 3 | a |\n" for _ in range(40)
    )
    rule = "=" * 400 + "\n" + "." * 300 + "\n"
    s.step(stream=_chunks("Config:\n" + code + table + rule + "All shards use the same layout.\n"))
    return s.done("healthy", "repetitive code block, table and separator runs, streamed")


HEALTHY: list[Callable[[], Scenario]] = [
    batch_orders,
    batch_translate,
    poll_until_done,
    research_run,
    transient_error,
    changing_file,
    pagination,
    batch_with_failures,
    edit_test_progress,
    debug_same_failure,
    scroll_page,
    steady_big_context,
    long_document,
    chat_session,
    streamed_long_list,
    streamed_code_table,
    *(twin for _, twin in ISSUE_15),
    five_long_reads,
    large_prompt_reader,
]


def all_scenarios() -> list[Scenario]:
    return [make() for make in RUNAWAY + HEALTHY]


def long_run(steps: int, name: str = "long") -> list[Event]:
    """A healthy run of `steps` model calls (for measuring per-event cost as runs grow)."""
    s = Sim(f"{name}-{steps}", "Process the work queue.")
    rng = random.Random(steps)
    for i in range(steps):
        s.step(f"Item {i}.", [("process_item", {"item": i}, f"item {i}: {_prose(rng, 8)}")])
    return s.done("healthy", f"{steps} steps").events


__all__ = [
    "HEALTHY",
    "ISSUE_15",
    "MODEL",
    "RUNAWAY",
    "Fail",
    "Scenario",
    "Sim",
    "all_scenarios",
    "long_run",
]
