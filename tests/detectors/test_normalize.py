"""Normalisation used by the repeat detectors."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from loopguard.normalize import (
    _MASKS,
    _NOISE,
    _STOPWORDS,
    _WORD,
    canonical_args,
    clip,
    content_words,
    digest,
    error_kind,
    identifiers,
    mask_volatile,
    normalize,
    normalize_light,
    same_call_result,
    similar,
    similar_among,
    terms,
    words,
)


def test_normalize_masks_noise_and_numbers() -> None:
    a = normalize(
        "Attempt 3 failed at 2025-01-02T10:00:01Z (request 3f2a9c1e-1111-2222-3333-444455556666)"
    )
    b = normalize(
        "attempt   4 FAILED at 2025-01-02T10:00:09Z (request 9f2a9c1e-1111-2222-3333-444455556666)"
    )
    assert a == b


def test_normalize_light_keeps_progress_numbers() -> None:
    assert normalize_light("Job: 45% at 10:00:01") != normalize_light("Job: 60% at 10:00:02")
    assert normalize_light("Job: 45% at 10:00:01") == normalize_light("job:  45% AT 10:00:02")


def test_canonical_args_sorts_keys_and_folds_strings() -> None:
    assert canonical_args({"a": 1, "b": " Hello  World"}) == canonical_args(
        {"b": "hello world", "a": 1}
    )
    assert canonical_args({"a": 1}) != canonical_args({"a": 2})
    assert canonical_args("  RAW  args ") == "raw args"
    assert canonical_args({"n": {"z": [1, None, True]}}) == "{n:{z:[1,none,true]}}"


def test_identifiers() -> None:
    found = identifiers("Read src/tax.py for test_vat, order 1001 (a@b.com) since 2025-01-02.")
    assert found == ("src/tax.py", "test_vat", "1001", "a@b.com", "2025-01-02")
    # in results, timestamps and request ids are noise: mask them first
    assert identifiers(
        normalize_light(
            "job 7 done at 2025-01-02T10:00:00Z, request 3f2a9c1e-1111-2222-3333-444455556666"
        )
    ) == ("7",)
    assert identifiers("payments on-call engineer") == ()


def test_content_words_drop_function_words() -> None:
    assert content_words("Let me check the weather in Paris again.") == {"weather", "paris"}


def test_clip_and_digest() -> None:
    assert clip("abcdef", 4) == "ab ef" and clip("abc", 4) == "abc"
    assert digest("x") == digest("x") and digest("x").startswith("sha256:")
    assert len(digest("x")) == len("sha256:") + 16


def test_long_texts_are_not_cached() -> None:
    normalize_light.cache_clear()
    big = "x" * 100_000
    assert normalize_light(big) == big
    assert normalize_light("short text") == "short text"
    assert normalize_light.cache_info().currsize == 1


_TEXT = st.text(alphabet="abzAZ_<>' -.,:1\t\né\u212a\u0663", max_size=40)


@settings(max_examples=300, deadline=None)
@given(_TEXT)
def test_words_are_what_the_word_pattern_finds(text: str) -> None:
    # words() splits instead of running the regex; the regex is the definition
    assert words(text) == _WORD.findall(text)
    expected = {
        w for w in _WORD.findall(normalize_light(text)) if len(w) > 1 and w not in _STOPWORDS
    }
    assert content_words(text) == expected


def test_content_words_mask_noise_only_when_there_is_a_digit() -> None:
    assert content_words("Request 3f2a9c1e-1111-2222-3333-444455556666 failed") == {
        "request",
        "<uuid>",
        "failed",
    }
    assert content_words("deadbeef feed") == {"deadbeef", "feed"}


@settings(max_examples=100, deadline=None)
@given(
    st.text(alphabet="ab c", max_size=12),
    st.lists(st.text(alphabet="ab c", max_size=12), min_size=1, max_size=6),
    st.sampled_from([0.5, 0.8, 1.0]),
)
def test_similar_among_is_similar_to_each(a: str, others: list[str], cutoff: float) -> None:
    expected = [(i, similar(a, b, cutoff)) for i, b in enumerate(others)]
    assert sorted(similar_among(a, others, cutoff)) == [(i, s) for i, s in expected if s]


def test_mask_volatile_masks_noise_beside_unchanged_text_only_in_long_results() -> None:
    page = "The fund screener lists " + "index funds with their expense ratios " * 4
    a = mask_volatile(f"You visited this page 8 seconds ago. {page} The viewport shows 21%.")
    b = mask_volatile(f"You visited this page 9 seconds ago. {page} The viewport shows 28%.")
    assert a == b and "<ago>" in a and "<n>" in a
    # a short result keeps its numbers: here they are the substance
    assert mask_volatile("export: 45% done") != mask_volatile("export: 60% done")
    assert mask_volatile("RUNNING (elapsed 30s)") != mask_volatile("RUNNING (elapsed 60s)")
    # relative times are masked in short results too
    assert mask_volatile("updated 3 minutes ago") == mask_volatile("updated 5 minutes ago")


def test_same_call_result_masks_generated_ids() -> None:
    a = same_call_result("Deployment dpl-7hq2k9x4 started for checkout 2.4.1")
    b = same_call_result("Deployment dpl-m3k8w2z9 started for checkout 2.4.1")
    assert a == b
    # ids of the agent's own items, numbers and words are kept
    assert same_call_result("order 50311 shipped") != same_call_result("order 50312 shipped")
    assert same_call_result("job-7f3a queued") != same_call_result("job-9c2b queued")


def test_terms_are_content_words_and_identifiers() -> None:
    found = terms("The Alpha and beta-gamma of order 4411: src/a.py, tomorrow's run")
    assert found == {"alpha", "beta", "gamma", "order", "4411", "src/a.py", "tomorrow", "run"}


def test_error_kind() -> None:
    assert error_kind("Traceback (most recent call last):\n  File x") == "a traceback"
    assert error_kind("HTTP/1.1 503 Service Unavailable") == "an HTTP error"
    assert error_kind("<title>502 Bad Gateway</title>") == "an HTTP error"
    assert error_kind("sh: 1: jq: command not found") == "a shell error"
    assert error_kind("x\n" * 200 + "exit code: 1") == "a non-zero exit code"
    assert error_kind("Error: flight not available") == "an error message"
    for fine in ("exit code: 0", "Error handling guide", "Found 3 results", "1 failed: test_a"):
        assert error_kind(fine) is None, fine


_ERRORS = {
    "a traceback": ["Traceback (most recent call last):"],
    "an HTTP error": [
        f"HTTP/1.1 {status}"
        for status in (
            "404 Not Found",
            "400 Bad Request",
            "401 Unauthorized",
            "401 unauthorised",
            "403 Forbidden",
            "500 Internal Server Error",
            "502 Bad Gateway",
            "503 Service Unavailable",
            "504 Gateway Timeout",
            "504 Gateway Time-out",
            "429 Too Many Requests",
            "409 Conflict",
            "405 Method Not Allowed",
            "408 Request Timeout",
        )
    ]
    + ["Status: 404 not found", "error 502 bad gateway", "<h1>503 Service Unavailable</h1>"],
    "a shell error": [
        "bash: jq: command not found",
        "cat: x: No such file or directory",
        "rm: Permission denied",
    ],
    "a non-zero exit code": [
        "exit code 2",
        "Exited with status: 1",
        "exit status=127",
        "Command returned non-zero exit status 1.",
    ],
    "an error message": ["Error: no flights", "FATAL! disk full", "Exception 500 raised"],
}


def test_error_kind_finds_every_pattern_at_the_head_and_the_tail() -> None:
    # The words looked for before the regex must cover every one of its patterns.
    for kind, texts in _ERRORS.items():
        for text in texts:
            assert error_kind(text) == kind, text
            if kind != "an error message":  # that one is read at the start only
                assert error_kind("ok\n" * 100 + text) == kind, text


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789abcdefxyz:-.tTzZ+ \u0663\u0660", max_size=60))
def test_noise_masks_as_the_regex_alone_does(text: str) -> None:
    light = " ".join(text.lower().split())
    assert normalize_light(text) == _NOISE.sub(lambda m: _MASKS[m.lastindex or 0] or "", light)


def test_noise_masks_each_kind_alone() -> None:
    # One mask per text: each must pass the shape test before the regex on its own.
    for text, masked in (
        ("req f47ac10b-58cc-4372-a567-0e02b2c3d479", "req <uuid>"),
        ("at 2024-01-05T10:20:30Z", "at <ts>"),
        ("on 2024-01-06", "on <ts>"),
        ("at 12:01:07", "at <ts>"),
        ("epoch 1767000000.5", "epoch <ts>"),
        ("id ab12cd34", "id <id>"),
        ("on \u0662\u0660\u0662\u0664-\u0660\u0661-\u0660\u0661", "on <ts>"),  # Arabic digits
    ):
        assert normalize_light(text) == masked, text
