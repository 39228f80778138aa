"""Budgets beyond one run: what a budget covers (scope) and for how long (period).

A budget's ledger key names its scope, the label and value that select it, and its window:
  loopguard:budget:global:hour=2026-11-29T13
  loopguard:budget:agent=support:day=2026-11-29
  loopguard:budget:tenant:tenant_id=acme:day=2026-11-29     (label tenant_id, the string "acme")
  loopguard:budget:tenant:user_id=~42:day=2026-11-29        (the number 42: "~" + its JSON)
  loopguard:budget:tenant:user_id:day=2026-11-29            (runs without the label)
  loopguard:budget:conversation:thread_id=thread-42:total
Names and values are percent-escaped (every character but letters, digits, "_", "." and "-"),
so no value can forge a separator, and two different label/value pairs never share a key.
A new hour, day or month (UTC) is simply a new key; old keys expire on their own.
"""

from __future__ import annotations

import calendar
import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from loopguard.ledger.base import NANO, TRIP_PREFIX, Claim, usd_to_nano

PREFIX = "loopguard:budget:"
Scope = Literal["global", "agent", "tenant", "conversation"]
Period = Literal["run", "hour", "day", "month", "total"]
# Ledgers keep amounts as integers (nano-USD, tokens) that Redis's Lua compares as doubles:
# exact up to 2**53, so limits stay below it.
MAX_USD = 9_000_000.0
MAX_TOKENS = 10**15
_KEEP = {"run": 86_400, "hour": 86_400, "day": 2 * 86_400, "month": 35 * 86_400}


class BudgetSpec(BaseModel):
    """One budget: a dollar and/or token limit on a scope over a period (UTC windows)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    scope: Scope = "global"
    period: Period = "day"
    max_usd: float | None = Field(None, gt=0, allow_inf_nan=False, strict=True)
    max_tokens: int | None = Field(None, gt=0, strict=True)
    key: str | None = None
    """The run label that names the scope's value: for `tenant` required (the metadata key
    holding your tenant id); for `conversation` it defaults to LangGraph's `thread_id`."""
    name: str | None = None
    """Shown in verdicts; defaults to `<scope>/<period>`."""
    trip: bool = False
    """Once exhausted (a call refused on it), trip the budget's key for the rest of its window:
    every later call under it is refused, even one small enough to fit, until the window ends
    or `loopguard budget untrip` lifts it. The trip shows in `loopguard budget show`."""

    @field_validator("max_usd")
    @classmethod
    def _usd_in_range(cls, v: float | None) -> float | None:
        if v is not None and v > MAX_USD:
            raise ValueError(
                f"at most {MAX_USD:,.0f} dollars (ledgers count exact nano-dollars up to "
                f"2**53 = ${2**53 / NANO:,.0f}); split a larger budget by period or scope"
            )
        return v

    @field_validator("max_tokens")
    @classmethod
    def _tokens_in_range(cls, v: int | None) -> int | None:
        if v is not None and v > MAX_TOKENS:
            raise ValueError(f"at most {MAX_TOKENS:,} tokens (ledgers count exactly up to it)")
        return v

    @model_validator(mode="after")
    def _check(self) -> BudgetSpec:
        if self.max_usd is None and self.max_tokens is None:
            raise ValueError("a budget needs max_usd, max_tokens or both")
        if self.scope == "tenant" and not self.key:
            raise ValueError("a tenant budget needs key = <the metadata key of your tenant id>")
        if self.key and self.scope not in ("tenant", "conversation"):
            raise ValueError(f"key applies to tenant and conversation budgets, not {self.scope}")
        return self

    @property
    def label(self) -> str:
        return self.name or f"{self.scope}/{self.period}"

    def scope_part(self, agent: str | None, meta: dict[str, Any]) -> str:
        """The key's scope segment(s): which agent, tenant or conversation it counts."""
        if self.scope == "global":
            return "global"
        if self.scope == "agent":
            return "agent" if agent is None else f"agent={escape(agent)}"
        label = self.key or "thread_id"
        value = meta.get(label)
        if value is None or value == "":
            # runs without the label share one bucket of their own (a cap is never skipped)
            return f"{self.scope}:{escape(label)}"
        return f"{self.scope}:{escape(label)}={escape(value)}"

    def ledger_key(self, *, run: str, agent: str | None, meta: dict[str, Any], ts: float) -> str:
        return f"{PREFIX}{self.scope_part(agent, meta)}:{window(self.period, ts, run)}"

    def claim(self, key: str, usd: float, tokens: int, ts: float, *, up: bool) -> Claim:
        return Claim(
            key,
            usd_to_nano(usd, up=up),
            tokens,
            None if self.max_usd is None else usd_to_nano(self.max_usd),
            self.max_tokens,
            expire_at=expire_at(self.period, ts),
            trip_until=window_end(self.period, ts) if self.trip else None,
        )


def escape(value: Any) -> str:
    """A label name or value as a key segment: a string percent-escaped, anything else "~" and
    its JSON (so the number 42 and the string "42" differ)."""
    if isinstance(value, str):
        return quote(value, safe="").replace("~", "%7E")
    return "~" + quote(json.dumps(value, sort_keys=True, default=str), safe="")


def window(period: str, ts: float, run: str) -> str:
    t = datetime.fromtimestamp(ts, UTC)
    if period == "hour":
        return f"hour={t:%Y-%m-%dT%H}"
    if period == "day":
        return f"day={t:%Y-%m-%d}"
    if period == "month":
        return f"month={t:%Y-%m}"
    if period == "run":
        return f"run={escape(run)}"
    return "total"


def agent_trip_key(agent: str) -> str:
    return f"{TRIP_PREFIX}agent={escape(agent)}"


def tenant_trip_key(label: str, value: Any) -> str:
    return f"{TRIP_PREFIX}tenant:{escape(label)}={escape(value)}"


def trip_keys(specs: Sequence[BudgetSpec], agent: str | None, meta: dict[str, Any]) -> list[str]:
    """The kill switches a call checks: its agent's, and its tenant's under each label that
    the policy's tenant budgets use."""
    keys = [] if agent is None else [agent_trip_key(agent)]
    for label in sorted({s.key for s in specs if s.scope == "tenant" and s.key}):
        value = meta.get(label)
        if value is not None and value != "":
            keys.append(tenant_trip_key(label, value))
    return keys


def window_end(period: str, ts: float) -> float:
    """When the window holding `ts` ends (a run's: a day on; math.inf for `total`)."""
    if period == "total":
        return math.inf
    if period == "run":
        return ts + _KEEP["run"]
    return _end(period, ts)


def expire_at(period: str, ts: float) -> float | None:
    """When a window's key can be dropped: a while after the window ends (None = never)."""
    if period == "total":
        return None
    return (ts if period == "run" else _end(period, ts)) + _KEEP[period]


def _end(period: str, ts: float) -> float:
    t = datetime.fromtimestamp(ts, UTC)
    if period == "hour":
        end = t.replace(minute=0, second=0, microsecond=0).timestamp() + 3600
    elif period == "day":
        end = t.replace(hour=0, minute=0, second=0, microsecond=0).timestamp() + 86_400
    elif period == "month":
        days = calendar.monthrange(t.year, t.month)[1]
        end = (
            t.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp() + days * 86_400
        )
    else:
        raise ValueError(f"period {period!r} has no calendar window")
    return end
