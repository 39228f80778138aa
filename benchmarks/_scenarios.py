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

    def done(self, kind: str, what: str, *, onset: int | None = None, period: int = 1) -> Scenario:
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


__all__ = ["HEALTHY", "MODEL", "RUNAWAY", "Fail", "Scenario", "Sim", "all_scenarios", "long_run"]
