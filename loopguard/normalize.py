"""Text normalization for the repeat detectors.

Two strengths, because numbers mean different things in different places:

- `normalize(text)`: for what the model *says* and error messages. Case and whitespace are
  folded, and timestamps, UUIDs, long hex ids and every number become placeholders, so
  "Attempt 3 failed at 12:01:07" and "attempt 4 failed at 12:01:09" compare equal.
- `normalize_light(text)`: for tool results. Only noise that changes on every call (timestamps,
  UUIDs, hex ids such as request ids) is masked; other numbers are kept, because a number that
  changes in a result ("45% done" -> "60% done") is progress, not a repeat.

`mask_volatile(text)`: for comparing tool results and measuring what is new in them (the
progress signal, `loopguard/detectors/_progress.py`). On top of `normalize_light` it masks what
a page or a service changes on every call without saying anything new: relative times ("8
seconds ago"), generated ids that mix letters and digits ("dpl-7hq2k9x4"), and, in results of
`LONG_RESULT_WORDS` words or more, durations, percentages and counters ("viewport shows 21%",
"about 2,000 results"). In a short result those are kept: there a number that moves ("45% done"
-> "60% done", "elapsed 30s") is the substance of the result, not noise beside it.

`identifiers(text)` lists the tokens that name *what* a call is about: numbers, ids, paths,
snake_case names, addresses (an order number, a page, a job id, `src/tax.py`, `test_vat`). Two
steps with different identifiers are different work, however alike their words; plain words
may be rephrased.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, cast

from rapidfuzz.distance import Indel
from rapidfuzz.process import extract, extractOne

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class CachedText(Protocol[T_co]):
    """A function of a text with `functools.lru_cache`'s controls (`cache_clear`, `cache_info`)."""

    cache_clear: Callable[[], None]
    cache_info: Callable[[], functools._CacheInfo]

    def __call__(self, text: str, /) -> T_co: ...


# One pass for everything that changes on every call anyway. The text is already lower case.
_NOISE = re.compile(
    r"\b(?=[\da-f])(?:"  # every mask starts a word with a hex digit: other places fail fast
    r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b)"  # 1: UUID
    r"|(\d{4}-\d{2}-\d{2}(?:[t ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:z|[+-]\d{2}:?\d{2})?)?\b"
    r"|\d{1,2}:\d{2}:\d{2}(?:\.\d+)?\b"
    r"|1[5-9]\d{8}(?:\.\d+)?\b)"  # 2: timestamp (ISO date/time, clock time, epoch 2017..2033)
    # 3: a hex id, at least 8 hex characters with a digit ("deadbeef" stays, "ab12cd34" goes)
    r"|((?=[0-9a-f]*\d)[0-9a-f]{8,}\b))"
)
_MASKS = (None, "<uuid>", "<ts>", "<id>")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_DIGIT = re.compile(r"\d")
# Identifiers are tokens with a digit, an underscore, a slash, an @ or an inner dot: 42,
# job-7f3a, src/tax.py, test_vat, a@b.com. Found by splitting (C speed) rather than by a regex
# that must look inside every word. The delimiters are ASCII, so bytes.translate of the UTF-8
# text (several times faster than str.translate) leaves other characters intact.
_DELIMITER_BYTES = bytes(32 if chr(c) in "\"'`(){}[],;=<>|" else c for c in range(256))
_EDGE_PUNCTUATION = ".:-#!?%$*"


# Every mask holds 8 hex digits in a row (a UUID, a hex id, an epoch), 4 digits and a dash (a
# date) or a colon, 2 digits and a colon (a clock time). In ASCII text these are looked for in
# its shape (hex digits as "x"), several times faster than the regex, which only the few texts
# holding one then meet. (The regex's \d also matches other scripts' digits.)
_HEX_SHAPE = bytes(
    120 if chr(c) in "0123456789abcdef" else c if c in b":-" else 32 for c in range(256)
)


def _mask_noise(text: str) -> str:
    if not _DIGIT.search(text):  # every mask needs a digit; most prose has none
        return text
    if text.isascii():
        shape = text.encode().translate(_HEX_SHAPE)
        if b"xxxxxxxx" not in shape and b"xxxx-" not in shape and b":xx:" not in shape:
            return text
    return _NOISE.sub(lambda m: _MASKS[m.lastindex or 0] or "", text)


_CACHE_CHARS = 4096


def _cached(func: Callable[[str], T]) -> CachedText[T]:
    """Cache `func` for texts up to 4 KiB. The same tool output is looked at by several
    detectors (and again in the next prompt), and Python caches str hashes, so a hit costs one
    dict lookup; longer texts are not kept, so each cache holds at most 512 x 4 KiB."""
    cached = functools.lru_cache(maxsize=512)(func)

    @functools.wraps(func)
    def call(text: str) -> T:
        return cached(text) if len(text) <= _CACHE_CHARS else func(text)

    # The wrapper is the plain function (no call through a class on the hot path), given the
    # cache's controls once, here.
    wrapper = cast("CachedText[T]", call)
    wrapper.cache_clear = cached.cache_clear
    wrapper.cache_info = cached.cache_info
    return wrapper


@_cached
def normalize(text: str) -> str:
    """Fold case and whitespace; mask timestamps, UUIDs, hex ids and numbers."""
    light = normalize_light(text)
    return _NUMBER.sub("#", light) if _DIGIT.search(light) else light


@_cached
def normalize_light(text: str) -> str:
    """Fold case and whitespace; mask timestamps, UUIDs and hex ids; keep other numbers."""
    return _mask_noise(" ".join(text.lower().split()))


# Volatile parts of a result (on lower-case, space-folded text): relative times always; in long
# results also durations, percentages and counters beside unchanged text.
_RELATIVE_TIME = re.compile(
    r"\b\d+(?:\.\d+)?\s*(?:ms|milliseconds?|s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?"
    r"|days?|weeks?|months?|years?) ago\b"
)
_LONG_ONLY = re.compile(
    r"\b\d[\d,]*(?:\.\d+)?(?:\s*(?:%|(?:ms|s|secs?|seconds?|mins?|minutes?|h|hrs?|hours?)\b)"
    r"|(?=\s+(?:results|items|matches|hits|views|visits|times|of \d)\b))"
)
# A generated id: 6+ letters and digits with at least two of each ("7hq2k9x4", "zfa04y"), the
# kind a service makes up for each call (a deployment, a ticket, a request). Tokens with two
# digits are found by the pattern; the letters are counted only for those.
_SHAPE = bytes(48 if 48 <= c <= 57 else 97 if 97 <= c <= 122 else 32 for c in range(256))
_TWO_DIGITS = re.compile(r"(?<![a-z0-9])[a-z]*\d[a-z]*\d[a-z0-9]*(?![a-z0-9])")


def _generated_id(found: re.Match[str]) -> str:
    token = found.group()
    if len(token) < 6 or sum(c.isalpha() for c in token) < 2:
        return token
    return "<id>"


LONG_RESULT_WORDS = 30
"""Results with at least this many words have their durations, percentages and counters masked."""


@_cached  # a result is masked for its hash (`same_call_result`) and for its terms
def mask_volatile(text: str) -> str:
    """`normalize_light`, then relative times masked; durations, percentages and counters too in
    results of `LONG_RESULT_WORDS` words or more."""
    light = normalize_light(text)
    if not _DIGIT.search(light):
        return light
    if " ago" in light:
        light = _RELATIVE_TIME.sub("<ago>", light)
    if light.count(" ") + 1 >= LONG_RESULT_WORDS:
        light = _LONG_ONLY.sub("<n>", light)
    return light


def same_call_result(text: str) -> str:
    """What two results of the *same call* are compared by: `mask_volatile`, and generated ids
    masked. The arguments already say what the call is about; an id the service made up for
    this call (a new deployment, a new ticket) is no progress when nothing else changed. Not
    cached: each result is compared once (`detectors/_calls.py` shares it), and the masks it
    builds on are."""
    masked = mask_volatile(text)
    # A generated id has a letter next to a digit somewhere: most results have none. Found by
    # mapping digits to "0" and letters to "a" (bytes.translate, several times a regex's speed).
    shape = masked.encode("utf-8", "surrogatepass").translate(_SHAPE)
    if b"a0" in shape or b"0a" in shape:
        return _TWO_DIGITS.sub(_generated_id, masked)
    return masked


@_cached
def identifiers(text: str) -> tuple[str, ...]:
    """Identifier-like tokens of `text` (with a digit, `_`, `/`, `@` or an inner dot), in order.
    Pass results through `normalize_light` first to leave out timestamps and request ids."""
    found = []
    raw = text.lower().encode("utf-8", "surrogatepass").translate(_DELIMITER_BYTES)
    for token in raw.decode("utf-8", "surrogatepass").split():
        if token.isalpha():
            continue
        token = token.strip(_EDGE_PUNCTUATION)
        if token and not token.replace("-", "").replace("'", "").isalpha():
            found.append(token)  # not a plain (hyphenated) word
    return tuple(found)


# Tool output that is an error although the tool returned normally: a shell's or an HTTP
# client's failure printed as the result. Looked for at the head and the tail of the output.
_ERROR_OUTPUT = re.compile(
    r"(?P<traceback>traceback \(most recent call last\))"
    r"|(?P<http>(?:^|[\n>]|http/[\d.]+ |status:? |error:? )[45]\d\d (?:not found|bad request"
    r"|unauthori[sz]ed|forbidden|internal server error|bad gateway|service unavailable"
    r"|gateway time-?out|too many requests|conflict|method not allowed|request time-?out)\b)"
    r"|(?P<shell>\bcommand not found\b|\bno such file or directory\b|\bpermission denied\b)"
    r"|(?P<exit>\b(?:exit(?:ed)?(?: with)? (?:code|status)|returned non-zero exit status)"
    r"[:= ]*[1-9]\d*\b)"
    r"|(?P<message>^(?:error|fatal|exception)(?::|!| \d{3}\b))"
)
# A whole word each pattern above needs (found by bytes.translate and split, several times
# faster than a substring test for each): a text with none of them is no error, and most
# results are told so without the regex. Keep in step with the patterns.
_ERROR_WORDS = frozenset(
    b"recent found request requests unauthorized unauthorised forbidden error gateway"
    b" unavailable conflict allowed directory denied exit exited fatal exception".split()
)
_LETTER_BYTES = bytes(c if 97 <= c <= 122 else 32 for c in range(256))


def _may_be_error(text: str) -> bool:
    """Whether lower-case `text` holds a word an error pattern needs."""
    found = text.encode("utf-8", "surrogatepass").translate(_LETTER_BYTES).split()
    return not _ERROR_WORDS.isdisjoint(found)


_ERROR_KINDS = {
    "traceback": "a traceback",
    "http": "an HTTP error",
    "shell": "a shell error",
    "exit": "a non-zero exit code",
    "message": "an error message",
}


def error_kind(text: str) -> str | None:
    """What kind of error `text` (a tool's normal output) reports, or None: "a traceback", "an
    HTTP error", "a shell error", "a non-zero exit code" or "an error message". Only the head
    (200 characters) and the tail (200) are read: an error is announced there, and a result
    that merely mentions one in its body is not an error."""
    found = None
    head = text[:200].lstrip().lower()
    if _may_be_error(head):  # most results are not: no regex
        found = _ERROR_OUTPUT.search(head)
    if found is None and len(text) > 200:
        tail = text[-200:].lower()
        if _may_be_error(tail):
            found = _ERROR_OUTPUT.search(tail)
    return None if found is None else _ERROR_KINDS[found.lastgroup or "message"]


def canonical_args(args: dict[str, Any] | str) -> str:
    """Tool arguments as one canonical string: keys sorted, strings folded (case, whitespace).

    Numbers and ids are kept: they say which item a call works on. Unparsable arguments (a
    string) are folded the same way.
    """
    if isinstance(args, str):
        return _fold_text(args)
    last = _last_args  # several detectors canonicalise the same event's arguments in a row
    if last[0] is args:
        return last[1]
    result = _canon(args)
    globals()["_last_args"] = (args, result)
    return result


_last_args: tuple[object, str] = (None, "")


def _fold_text(text: str) -> str:
    return " ".join(text.lower().split())


def _canon(value: Any) -> str:
    # JSON-like, built by hand: json.dumps(sort_keys=True) costs several times more, and this
    # runs for every tool call.
    if isinstance(value, str):
        return '"' + _fold_text(value) + '"'
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_canon(value[k])}" for k in sorted(value, key=str)) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_canon(v) for v in value) + "]"
    return str(value).lower() if isinstance(value, bool) or value is None else str(value)


@_cached
def digest(text: str) -> str:
    """A stable short hash: 'sha256:' and the first 16 hex digits."""
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


# Function words and the filler agents put around a repeated action ("let me try again"):
# dropping them lets a rephrased thought match the thought it repeats.
_STOPWORDS = frozenset(
    """
a an the and or but if then so of to in on at by for from with about into over as is are was
were be been being am do does did done have has had having i me my we our you your it its this
that these those there here what which who whom how why when where will would shall should can
could may might must not no nor just now again also still yet very too more most once once more
let lets let's try trying tried retry check checking look looking see seeing going go get getting
need needs want okay ok well sure please one another same first next time step use using call
calling ill i'll i'm im ive i've we'll we're
""".split()
)
# Words are letters only: numbers and ids are compared exactly, as identifiers, not as words.
_WORD = re.compile(r"[a-z_<>]+(?:'[a-z]+)?")
# The same words found by bytes.translate and split, several times faster than the regex: every
# byte that cannot be in a word (UTF-8 encodes other characters as bytes >= 0x80) becomes a
# space. Only a run holding an apostrophe needs the regex.
_WORD_BYTES = bytes(c if chr(c) in "abcdefghijklmnopqrstuvwxyz_<>'" else 32 for c in range(256))
# Single letters are no content words either.
_NOT_CONTENT = _STOPWORDS | frozenset("abcdefghijklmnopqrstuvwxyz_<>")


def words(text: str) -> list[str]:
    """The words of `text` (already lower case, e.g. from `normalize_light`), in order."""
    found = text.encode("utf-8", "surrogatepass").translate(_WORD_BYTES).decode().split()
    if "'" in text:
        found = [w for run in found for w in ((run,) if "'" not in run else _WORD.findall(run))]
    return found


def content_words(text: str) -> set[str]:
    """The distinct content words of `text`, without function words."""
    raw = text.lower().encode("utf-8", "surrogatepass")
    # Masks need a digit, and most answers have none: then the words are read straight from the
    # lowered text (this test costs less than the regex in `normalize_light`).
    if raw.isascii() and len(raw.translate(None, b"0123456789")) == len(raw):
        found = words(raw.decode()) if b"'" in raw else raw.translate(_WORD_BYTES).decode().split()
    else:
        found = words(normalize_light(text))
    return set(found).difference(_NOT_CONTENT)


def terms(text: str) -> frozenset[str]:
    """What a tool result says, for the progress signal: its distinct content words (three
    letters or more, function words dropped) and identifiers, volatile parts masked."""
    raw = mask_volatile(text).encode("utf-8", "surrogatepass").translate(_DELIMITER_BYTES)
    tokens = set(raw.decode("utf-8", "surrogatepass").split())
    # Plain words first, in one comprehension; the few other tokens one by one (cheaper than
    # finding words and identifiers in two passes).
    found = {t for t in tokens if t.isalpha() and len(t) > 2}
    for token in tokens.difference(found):
        if token.isalpha():
            continue  # a word of one or two letters
        token = token.strip(_EDGE_PUNCTUATION)
        if token.isalpha():
            if len(token) > 2:
                found.add(token)
        elif token and not token.replace("-", "").replace("'", "").isalpha():
            found.add(token)  # an identifier
        else:  # a hyphenated word or one with an apostrophe: its words
            found.update(w for w in _WORD.findall(token) if len(w) > 2)
    found.difference_update(_NOT_CONTENT)
    return frozenset(found)


def similar(a: str, b: str, cutoff: float) -> float:
    """rapidfuzz's Indel similarity (0..1) of `a` and `b` if at least `cutoff`, else 0."""
    if a == b:
        return 1.0
    return Indel.normalized_similarity(a, b, score_cutoff=cutoff)


def similar_among(a: str, others: list[str], cutoff: float) -> list[tuple[int, float]]:
    """(i, `similar(a, others[i], cutoff)`) for each of `others` at least `cutoff` alike to `a`,
    computed in C."""
    if len(others) == 1:
        score = similar(a, others[0], cutoff)
        return [(0, score)] if score else []
    # Usually none is: extractOne says so at half the cost of extract.
    if extractOne(a, others, scorer=Indel.normalized_similarity, score_cutoff=cutoff) is None:
        return []
    return [
        (i, 1.0 if a == b else score)
        for b, score, i in extract(
            a, others, scorer=Indel.normalized_similarity, score_cutoff=cutoff, limit=None
        )
    ]


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, keeping its head and its tail."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return text[:half] + " " + text[-half:]
