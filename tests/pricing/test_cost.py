"""Cost of every Bedrock Claude id, in every id form, against figures computed by hand.

The usage of each check: 10,000 input tokens of which 4,000 are cache reads and 2,000 cache
writes (so 4,000 uncached), and 1,000 output tokens; "plain" is 10,000 in / 1,000 out with no
cache. Each expected figure below was computed by hand from the provider's price page, e.g.
Claude 3.5 Haiku: 4000*0.80 + 4000*0.08 + 2000*1.00 + 1000*4 = 9,520 micro-USD = $0.00952.
"""

from __future__ import annotations

import pytest

from loopguard.events import Usage
from loopguard.pricing import cost_usd, packaged_table, worst_case_usage

CACHED = Usage(
    input_tokens=10_000, output_tokens=1_000, cache_read_tokens=4_000, cache_write_tokens=2_000
)
PLAIN = Usage(input_tokens=10_000, output_tokens=1_000)

# base id -> (cached, plain) in USD at the listed (global / in-region) price, and for the 4.5
# generation (cached, plain) at the 10% dearer geographic and in-region endpoints.
BEDROCK = {
    # no prompt caching on Bedrock: reported cache tokens are billed at the input price
    "anthropic.claude-3-haiku-20240307": (0.00375, 0.00375, None),
    "anthropic.claude-3-sonnet-20240229": (0.045, 0.045, None),
    "anthropic.claude-3-opus-20240229": (0.225, 0.225, None),
    "anthropic.claude-3-5-sonnet-20240620": (0.045, 0.045, None),
    "anthropic.claude-3-5-haiku-20241022": (0.00952, 0.012, None),
    "anthropic.claude-3-5-sonnet-20241022": (0.0357, 0.045, None),
    "anthropic.claude-3-7-sonnet-20250219": (0.0357, 0.045, None),
    "anthropic.claude-sonnet-4-20250514": (0.0357, 0.045, None),
    "anthropic.claude-opus-4-20250514": (0.1785, 0.225, None),
    "anthropic.claude-opus-4-1-20250805": (0.1785, 0.225, None),
    # 4000*1 + 4000*0.10 + 2000*1.25 + 1000*5 = 11,900 ; regional x1.1 = 13,090
    "anthropic.claude-haiku-4-5-20251001": (0.0119, 0.015, (0.01309, 0.0165)),
    "anthropic.claude-sonnet-4-5-20250929": (0.0357, 0.045, (0.03927, 0.0495)),
    # 4000*5 + 4000*0.5 + 2000*6.25 + 1000*25 = 59,500 ; regional 65,450
    "anthropic.claude-opus-4-5-20251101": (0.0595, 0.075, (0.06545, 0.0825)),
    # Bedrock ids without a date: anthropic.claude-opus-4-6-v1, anthropic.claude-sonnet-4-6
    "anthropic.claude-opus-4-6": (0.0595, 0.075, (0.06545, 0.0825)),
    "anthropic.claude-sonnet-4-6": (0.0357, 0.045, (0.03927, 0.0495)),
    "anthropic.claude-opus-4-7": (0.0595, 0.075, (0.06545, 0.0825)),
}
GEOGRAPHIC = ("us.", "eu.", "apac.", "jp.")


def _cases():
    for base, (cached, plain, regional) in BEDROCK.items():
        forms = {"": regional, "global.": None}
        forms.update({p: regional for p in GEOGRAPHIC})
        for prefix, dearer in forms.items():
            for suffix in ("", "-v1", "-v1:0"):
                want = dearer or (cached, plain)
                yield pytest.param(prefix + base + suffix, *want, id=prefix + base + suffix)


@pytest.mark.parametrize(("model", "cached", "plain"), list(_cases()))
def test_bedrock_cost_by_hand(model: str, cached: float, plain: float) -> None:
    price = packaged_table().resolve(model).price
    assert cost_usd(price, CACHED) == pytest.approx(cached, rel=1e-9)
    assert cost_usd(price, PLAIN) == pytest.approx(plain, rel=1e-9)


@pytest.mark.parametrize(
    ("model", "cached"),
    [
        # 4000*0.25 + 4000*0.03 + 2000*0.30 + 1000*1.25 = 2,970
        ("claude-3-haiku-20240307", 0.00297),
        ("claude-3-5-haiku-latest", 0.00952),
        ("claude-3-5-sonnet-20241022", 0.0357),
        ("claude-sonnet-4-5", 0.0357),
        ("claude-opus-4-1-20250805", 0.1785),
        ("claude-opus-4-5", 0.0595),
        ("claude-haiku-4-5", 0.0119),
        ("claude-3-opus-20240229", 0.1785),
        ("claude-opus-4-6", 0.0595),
        ("claude-sonnet-4-6", 0.0357),
        ("claude-opus-4-7", 0.0595),
        ("claude-opus-4-8", 0.0595),
        ("claude-opus-5", 0.0595),
        # 4000*2 + 4000*0.20 + 2000*2.50 + 1000*10 = 23,800
        ("claude-sonnet-5", 0.0238),
        # 4000*2 + 4000*0.10 + 2000*2.50 + 1000*10 = 23,400
        ("claude-sonnet-5-5", 0.0234),
        # 4000*4 + 4000*0.20 + 2000*5 + 1000*20 = 46,800
        ("claude-opus-5-5", 0.0468),
        # 4000*0.10 + 4000*0.01 + 2000*0.125 + 1000*0.50 = 1,190
        ("claude-haiku-5-5", 0.00119),
    ],
)
def test_anthropic_api_cost_by_hand(model: str, cached: float) -> None:
    assert cost_usd(packaged_table().resolve(model).price, CACHED) == pytest.approx(cached)


def test_openai_cached_input() -> None:
    # gpt-4o: 6000*2.50 + 4000*1.25 + 1000*10 (no cache writes reported) = 30,000
    usage = Usage(input_tokens=10_000, output_tokens=1_000, cache_read_tokens=4_000)
    price = packaged_table().resolve("gpt-4o-2024-08-06").price
    assert cost_usd(price, usage) == pytest.approx(0.030)


@pytest.mark.parametrize(
    ("model", "want"),
    [
        # 150000*6 + 100000*0.60 + 50000*7.50 + 2000*22.50 = 1,380,000 micro-USD
        ("anthropic.claude-sonnet-4-20250514-v1:0", 1.38),
        ("global.anthropic.claude-sonnet-4-5-20250929-v1:0", 1.38),
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", 1.518),
        ("claude-sonnet-4-5-20250929", 1.38),
    ],
)
def test_long_context_tier_bills_the_whole_request(model: str, want: float) -> None:
    usage = Usage(
        input_tokens=300_000,
        output_tokens=2_000,
        cache_read_tokens=100_000,
        cache_write_tokens=50_000,
    )
    assert cost_usd(packaged_table().resolve(model).price, usage) == pytest.approx(want)


def test_long_context_threshold_is_strictly_above_200k() -> None:
    price = packaged_table().resolve("anthropic.claude-sonnet-4-20250514-v1:0").price
    at = Usage(input_tokens=200_000)
    over = Usage(input_tokens=200_001)
    assert cost_usd(price, at) == pytest.approx(0.6)  # 200000 * 3
    assert cost_usd(price, over) == pytest.approx(1.200006)  # 200001 * 6


def test_cache_tokens_never_billed_twice() -> None:
    # all input was cache reads: only the read price applies (3.7 Sonnet: 0.30/MTok)
    price = packaged_table().resolve("us.anthropic.claude-3-7-sonnet-20250219-v1:0").price
    usage = Usage(input_tokens=1_000_000, cache_read_tokens=1_000_000)
    assert cost_usd(price, usage) == pytest.approx(0.30)


def test_projection_bounds_the_real_cost() -> None:
    price = packaged_table().resolve("anthropic.claude-3-5-haiku-20241022-v1:0").price
    # every input token at the dearest input-side rate (cache write 1.00), output at 4.00
    assert cost_usd(price, worst_case_usage(10_000, 1_000)) == pytest.approx(0.014)
    assert cost_usd(price, worst_case_usage(10_000, 1_000)) >= cost_usd(price, CACHED)
    assert cost_usd(price, worst_case_usage(10_000, 1_000)) >= cost_usd(price, PLAIN)


# Of the 2,000 cache writes, 1,500 with the 1-hour TTL (usage reports them apart).
CACHED_1H = Usage(
    input_tokens=10_000,
    output_tokens=1_000,
    cache_read_tokens=4_000,
    cache_write_tokens=2_000,
    cache_write_1h_tokens=1_500,
)


@pytest.mark.parametrize(
    ("model", "want"),
    [
        # 4000*3 + 4000*0.30 + 500*3.75 + 1500*6 + 1000*15 = 39,075 (5-minute rate: 35,700)
        ("claude-sonnet-4-6", 0.039075),
        # 4000*5 + 4000*0.5 + 500*6.25 + 1500*10 + 1000*25 = 65,125
        ("global.anthropic.claude-opus-4-6-v1", 0.065125),
        # the same at the 10% dearer geographic endpoint
        ("us.anthropic.claude-opus-4-6-v1", 0.0716375),
        # 4000*1 + 4000*0.10 + 500*1.25 + 1500*2 + 1000*5 = 13,025
        ("claude-haiku-4-5-20251001", 0.013025),
    ],
)
def test_one_hour_cache_writes_are_billed_at_their_own_rate(model: str, want: float) -> None:
    price = packaged_table().resolve(model).price
    assert cost_usd(price, CACHED_1H) == pytest.approx(want, rel=1e-9)
    assert cost_usd(price, CACHED_1H) > cost_usd(price, CACHED)


def test_one_hour_writes_without_a_one_hour_price_cost_at_least_the_five_minute_rate() -> None:
    # Bedrock Claude 3.5 Haiku lists no 1-hour price: 4000*0.8 + 4000*0.08 + 2000*1 + 1000*4
    price = packaged_table().resolve("anthropic.claude-3-5-haiku-20241022-v1:0").price
    assert price.cache_write_1h is None
    assert cost_usd(price, CACHED_1H) == pytest.approx(0.00952)


def test_projection_prices_input_at_the_one_hour_write_rate() -> None:
    # Sonnet 4.6: 10,000 input at 6.00 (1-hour write, the dearest input-side rate) + 1,000 * 15
    price = packaged_table().resolve("claude-sonnet-4-6").price
    assert cost_usd(price, worst_case_usage(10_000, 1_000)) == pytest.approx(0.075)
    assert cost_usd(price, worst_case_usage(10_000, 1_000)) >= cost_usd(price, CACHED_1H)


def test_haiku_5_5_bills_a_prompt_over_100k_at_the_long_prompt_tier() -> None:
    price = packaged_table().resolve("claude-haiku-5-5").price
    # up to 100,000 prompt tokens: 100000*0.10 + 1000*0.50 = 10,500
    assert cost_usd(price, Usage(100_000, 1_000)) == pytest.approx(0.0105)
    # above: every token at the tier, output too: 100001*0.50 + 1000*2.50 = 52,500.5
    assert cost_usd(price, Usage(100_001, 1_000)) == pytest.approx(0.0525005)
    # on Bedrock's geographic endpoints 10% more
    us = packaged_table().resolve("us.anthropic.claude-haiku-5-5").price
    assert cost_usd(us, Usage(100_001, 1_000)) == pytest.approx(0.05775055)
