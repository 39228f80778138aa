"""The shape of a price, as written in prices.toml and in a policy's `prices` overrides."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveInt

_STRICT = ConfigDict(extra="forbid", frozen=True, strict=True)


class LongContextSpec(BaseModel):
    """Prices of a request whose input (cache tokens included) exceeds `above_input_tokens`."""

    model_config = _STRICT

    above_input_tokens: PositiveInt
    input: NonNegativeFloat
    output: NonNegativeFloat
    cache_read: NonNegativeFloat | None = None
    cache_write: NonNegativeFloat | None = None
    cache_write_1h: NonNegativeFloat | None = None


class PriceSpec(BaseModel):
    """USD per million tokens. A missing cache price means the model has none on that platform.
    `cache_write` is the 5-minute cache write, `cache_write_1h` the 1-hour one."""

    model_config = _STRICT

    input: NonNegativeFloat
    output: NonNegativeFloat
    cache_read: NonNegativeFloat | None = None
    cache_write: NonNegativeFloat | None = None
    cache_write_1h: NonNegativeFloat | None = None
    long_context: LongContextSpec | None = None
    regional_multiplier: float | None = Field(default=None, ge=1)
    """Bedrock only: factor for geographic and in-region ids (global. ids pay the listed price)."""


class ModelEntry(PriceSpec):
    """One entry of the packaged price table: a price plus where it comes from."""

    id: str
    name: str
    aliases: list[str] = Field(default_factory=list)
    source: str
    checked: str
    note: str | None = None
