"""The shape of a price, as written in prices.toml and in a policy's `prices` overrides."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PositiveInt

_STRICT = ConfigDict(extra="forbid", frozen=True, strict=True)

# Dollars, or dollars per million tokens: `inf` or `nan` would make every cap pass or fail.
Usd = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class LongContextSpec(BaseModel):
    """Prices of a request whose input (cache tokens included) exceeds `above_input_tokens`."""

    model_config = _STRICT

    above_input_tokens: PositiveInt
    input: Usd
    output: Usd
    cache_read: Usd | None = None
    cache_write: Usd | None = None
    cache_write_1h: Usd | None = None


class PriceSpec(BaseModel):
    """USD per million tokens. A missing cache price means the model has none on that platform.
    `cache_write` is the 5-minute cache write, `cache_write_1h` the 1-hour one."""

    model_config = _STRICT

    input: Usd
    output: Usd
    cache_read: Usd | None = None
    cache_write: Usd | None = None
    cache_write_1h: Usd | None = None
    long_context: LongContextSpec | None = None
    regional_multiplier: float | None = Field(default=None, ge=1, allow_inf_nan=False)
    """Bedrock only: factor for geographic and in-region ids (global. ids pay the listed price)."""


class ModelEntry(PriceSpec):
    """One entry of the packaged price table: a price plus where it comes from."""

    id: str
    name: str
    aliases: list[str] = Field(default_factory=list)
    source: str
    checked: str
    note: str | None = None
