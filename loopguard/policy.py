"""Policies: what a guarded run may do, per agent.

A `Policy` is a pydantic model with `extra="forbid"`, so a misspelt key is an error, not a
silently ignored setting. A `PolicySet` holds a default policy and per-agent overrides; an
override only names the keys it changes, the rest come from the default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from loopguard.detectors import REGISTRY
from loopguard.detectors.limits import LimitsConfig
from loopguard.ledger.spec import BudgetSpec
from loopguard.pricing.spec import PriceSpec, Usd

_STRICT = ConfigDict(extra="forbid", frozen=True, validate_default=True, strict=True)
# The run limits' keys, accepted at the top level of a policy too (how they were first written).
_LIMIT_KEYS = frozenset(LimitsConfig.model_fields)


def _limit(key: str) -> property:
    """`policy.<key>`, read from its `limits` section."""
    return property(lambda self: getattr(self.limits, key))


class Policy(BaseModel):
    """Limits and detector settings for one agent. Every limit is optional (None = no limit).

    Besides the keys below, a policy has one section per detector of
    `loopguard.detectors.REGISTRY` (`limits`, `similarity`, `cycle`, ...), each a table in the
    policy file; the knobs are documented on the config classes and in docs/detectors.md.
    """

    model_config = _STRICT

    mode: Literal["enforce", "shadow"] = "enforce"
    """`enforce` stops runs; `shadow` evaluates everything and only reports would-be aborts."""

    # One field per detector section, from the registry: adding a detector adds its section.
    for _entry in REGISTRY:
        if _entry.section is not None and _entry.config is not None:
            __annotations__[_entry.section] = _entry.config
            vars()[_entry.section] = Field(
                default_factory=_entry.config, description=_entry.config.__doc__
            )
    del _entry

    warn_ratio: float = Field(0.8, gt=0, le=1)
    """Where a limit without its own warn_* starts warning, as a fraction of the limit."""

    # The run limits read as before too (`policy.max_model_calls` is `policy.limits....`).
    for _key in _LIMIT_KEYS:
        vars()[_key] = _limit(_key)
    del _key

    # --- money: max_cost_usd, budgets, prices, ledger ---
    # (models in loopguard/pricing/spec.py and loopguard/ledger/spec.py; docs/money.md)
    max_cost_usd: Usd | None = None
    """Dollars per run, checked before each model call against its projected cost."""
    warn_cost_usd: Usd | None = None
    unknown_model: Literal["warn", "block"] | None = None
    """A model without a price: `block` (refused before the call) or `warn` (warned once; its
    calls are not costed, so dollar caps cannot count them). Unset: `block` under any dollar
    cap (max_cost_usd, or a budget with max_usd), else `warn`. See `unknown_model_action`."""
    fallback_price: PriceSpec | None = None
    """Price for models missing from the table (USD per million tokens)."""
    prices: dict[str, PriceSpec] = Field(default_factory=dict)
    """Override or add prices, by model id: `{"my-model" = {input = 1.0, output = 2.0}}`."""
    model_aliases: dict[str, str] = Field(default_factory=dict)
    """Model ids to price as another, e.g. an application inference-profile ARN to its model."""
    output_estimate_tokens: int = Field(4096, gt=0)
    """Projected output of a call without max_tokens (the cost check before the call)."""
    budgets: list[BudgetSpec] = Field(default_factory=list)
    """Budgets beyond one run: per conversation, agent, tenant or global; per run, hour, day,
    month or in total; in dollars and/or tokens. Kept in `ledger`."""
    ledger: str = "memory://"
    """Where budgets live: memory://, sqlite:///path.db, redis://host:port/db, rediss://...,
    redis+cluster://host:port (docs/money.md)."""
    on_ledger_error: Literal["closed", "open"] = "closed"
    """Ledger unreachable: `closed` refuses paid calls; `open` counts locally and warns."""
    reservation_ttl: float = Field(600.0, gt=0, allow_inf_nan=False)
    """Seconds a reservation is held; longer than your slowest model call."""

    @property
    def unknown_model_action(self) -> Literal["warn", "block"]:
        """What happens to a call the guard cannot price: the policy's `unknown_model`, or, when
        unset, `block` under any dollar cap (a cap must not be switched off silently)."""
        if self.unknown_model is not None:
            return self.unknown_model
        return "block" if self.has_dollar_cap else "warn"

    @property
    def has_dollar_cap(self) -> bool:
        """Whether any hard dollar limit applies: max_cost_usd, or a budget with max_usd."""
        return self.max_cost_usd is not None or any(b.max_usd is not None for b in self.budgets)

    if TYPE_CHECKING:
        # The detector sections above are made from the registry, out of a type checker's
        # sight: it sees them as Any.
        def __getattr__(self, name: str) -> Any: ...

    @model_validator(mode="before")
    @classmethod
    def _limits_at_top_level(cls, data: Any) -> Any:
        """`max_model_calls = 5` at the top level is `limits.max_model_calls = 5` (and wins
        over it: an agent override or `merged()` names it at the top level)."""
        if not isinstance(data, Mapping) or _LIMIT_KEYS.isdisjoint(data):
            return data
        data = dict(data)
        limits = data.get("limits")
        moved = dict(limits) if isinstance(limits, Mapping) else {}
        for key in _LIMIT_KEYS.intersection(data):
            moved[key] = data.pop(key)
        data["limits"] = moved if limits is None or isinstance(limits, Mapping) else limits
        return data

    @model_validator(mode="after")
    def _warn_below_max(self) -> Policy:
        self.limits.check()
        return self

    @model_validator(mode="after")
    def _money_checks(self) -> Policy:
        hard, soft = self.max_cost_usd, self.warn_cost_usd
        if hard is not None and soft is not None and soft > hard:
            raise ValueError(f"warn_cost_usd ({soft}) must not be above max_cost_usd ({hard})")
        from loopguard.ledger import check_budgets

        check_budgets(self.ledger, self.budgets)  # e.g. a sharded Redis Cluster's limits
        return self

    @field_validator("ledger")
    @classmethod
    def _known_ledger(cls, uri: str) -> str:
        from loopguard.ledger import check_uri

        return check_uri(uri)  # a ledger that cannot be opened is a config error

    # --- telemetry: content capture ---
    capture_content: bool = False
    """Export prompt and completion text, tool arguments and tool results on telemetry spans
    (also switched on by OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true)."""

    @model_serializer(mode="wrap")
    def _limits_written_at_top_level(self, handler: SerializerFunctionWrapHandler) -> Any:
        """Dumped as policies are written (`policy show`, overrides): limits at the top level."""
        data = handler(self)
        if isinstance(data, dict) and isinstance(data.get("limits"), dict):
            limits, mode, ratio = data.pop("limits"), data.pop("mode"), data.pop("warn_ratio")
            data = {"mode": mode, **limits, "warn_ratio": ratio, **data}
        return data

    @staticmethod
    def key_path(loc: tuple[str, ...], written: Mapping[str, Any]) -> tuple[str, ...]:
        """The key path of a validation error as the user wrote it: a run limit given at the
        top level (not in a `[limits]` table) is named without `limits.`."""
        if loc[:1] == ("limits",) and not isinstance(written.get("limits"), Mapping):
            return loc[1:]
        return loc

    @staticmethod
    def limits_at_top_level(data: Mapping[str, Any]) -> dict[str, Any]:
        """`data` with a `[limits]` table's keys written at the top level, as policies are
        merged (an agent's `max_model_calls` then replaces the default's however either
        was written)."""
        out = dict(data)
        limits = out.get("limits")
        if isinstance(limits, Mapping):
            known = {k: v for k, v in limits.items() if k in _LIMIT_KEYS}
            rest = {k: v for k, v in limits.items() if k not in _LIMIT_KEYS}
            out.update(known)
            if rest:  # unknown keys stay where they were written, for the error to name them
                out["limits"] = rest
            else:
                del out["limits"]
        return out

    @classmethod
    def accepted_keys(cls) -> list[str]:
        """The keys a policy table accepts: its fields and the run limits' old top-level keys."""
        return sorted({*cls.model_fields, *_LIMIT_KEYS})

    def warn_at(self, name: str) -> float | None:
        """The warning threshold of limit `name` ("model_calls", ..., or "cost_usd")."""
        if name == "cost_usd":
            soft, hard = self.warn_cost_usd, self.max_cost_usd
            if soft is not None:
                return soft
            return None if hard is None else hard * self.warn_ratio
        threshold: float | None = self.limits.warn_at(name, self.warn_ratio)
        return threshold

    def __init__(self, **data: Any) -> None:
        # The same ConfigError, in the same format, as a policy file gets.
        try:
            super().__init__(**data)
        except ValidationError as exc:
            from loopguard.config import validation_error

            raise validation_error(exc, Policy, "Policy(...)") from None

    # Only a direct call goes through the __init__ above: pydantic skips an __init__ marked as
    # its own, so model_validate (policy files, whose errors loopguard.config reports with their
    # lines) still raises ValidationError.
    __init__.__dict__["__pydantic_base_init__"] = True

    def merged(self, overrides: Mapping[str, Any]) -> Policy:
        """A copy with `overrides` (nested dicts allowed) applied as an agent's section is
        applied over the default (a lowered limit takes its inherited thresholds down)."""
        from loopguard.config import merge_override, validation_error

        try:
            flat = Policy.limits_at_top_level(overrides)
            return Policy.model_validate(merge_override(self.model_dump(), flat))
        except ValidationError as exc:
            raise validation_error(exc, Policy, "Policy.merged(...)") from None


class PolicySet(BaseModel):
    """A default policy plus per-agent overrides."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default: Policy = Field(default_factory=Policy)
    agents: dict[str, Policy] = Field(default_factory=dict)
    source: str | None = Field(default=None, exclude=True)
    """Where it was loaded from, for messages."""

    def for_agent(self, agent: str | None) -> Policy:
        if agent is not None:
            found = self.agents.get(agent)
            if found is not None:
                return found
        return self.default

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None) -> PolicySet:
        """Top-level keys are the default policy; `agents.<name>` tables override it."""
        from loopguard.config import policy_set_from_mapping

        return policy_set_from_mapping(data, source=source or "<dict>")

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> PolicySet:
        """Load from `path`, else `$LOOPGUARD_CONFIG`, else the nearest loopguard.toml,
        loopguard.yaml or pyproject.toml with [tool.loopguard] from the working directory up to
        the repository root; the built-in default when none exists (logged as a warning)."""
        from loopguard.config import load_policy_set

        return load_policy_set(path)
