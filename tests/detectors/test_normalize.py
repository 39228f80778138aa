"""Normalisation used by the repeat detectors."""

from __future__ import annotations

from loopguard.normalize import (
    canonical_args, clip, content_words, digest, identifiers, normalize, normalize_light,
)


def test_normalize_masks_noise_and_numbers() -> None:
    a = normalize("Attempt 3 failed at 2025-01-02T10:00:01Z (request 3f2a9c1e-1111-2222-3333-"
                  "444455556666)")
    b = normalize("attempt   4 FAILED at 2025-01-02T10:00:09Z (request 9f2a9c1e-1111-2222-3333-"
                  "444455556666)")
    assert a == b


def test_normalize_light_keeps_progress_numbers() -> None:
    assert normalize_light("Job: 45% at 10:00:01") != normalize_light("Job: 60% at 10:00:02")
    assert normalize_light("Job: 45% at 10:00:01") == normalize_light("job:  45% AT 10:00:02")


def test_canonical_args_sorts_keys_and_folds_strings() -> None:
    assert canonical_args({"a": 1, "b": " Hello  World"}) == canonical_args({"b": "hello world",
                                                                             "a": 1})
    assert canonical_args({"a": 1}) != canonical_args({"a": 2})
    assert canonical_args("  RAW  args ") == "raw args"
    assert canonical_args({"n": {"z": [1, None, True]}}) == "{n:{z:[1,none,true]}}"


def test_identifiers() -> None:
    found = identifiers("Read src/tax.py for test_vat, order 1001 (a@b.com) since 2025-01-02.")
    assert found == ("src/tax.py", "test_vat", "1001", "a@b.com", "2025-01-02")
    # in results, timestamps and request ids are noise: mask them first
    assert identifiers(normalize_light("job 7 done at 2025-01-02T10:00:00Z, request "
                                       "3f2a9c1e-1111-2222-3333-444455556666")) == ("7",)
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
