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
    identifiers,
    normalize,
    normalize_light,
    similar,
    similar_among,
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
    normalize_light.cache_clear()  # type: ignore[attr-defined]
    big = "x" * 100_000
    assert normalize_light(big) == big
    assert normalize_light("short text") == "short text"
    assert normalize_light.cache_info().currsize == 1  # type: ignore[attr-defined]


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
