"""Normalisation used by the repeat detectors."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from loopguard.normalize import (
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
