"""Policies: what a guarded run may do, per agent.

A `Policy` is a pydantic model with `extra="forbid"`, so a misspelt key is an error, not a
silently ignored setting. A `PolicySet` holds a default policy and per-agent overrides; an
override only names the keys it changes, the rest come from the default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    ValidationError,
    field_validator,
    model_validator,
)

from loopguard.detectors.cycle import CycleConfig  # runaway detectors (issue 3)
from loopguard.detectors.growth import GrowthConfig  # runaway detectors (issue 3)
from loopguard.detectors.progress import ProgressConfig  # stalls (issue 15)
from loopguard.detectors.repeated_errors import ErrorsConfig  # runaway detectors (issue 3)
from loopguard.detectors.similarity import SimilarityConfig  # runaway detectors (issue 3)
from loopguard.detectors.stream import StreamConfig  # runaway detectors (issue 3)
from loopguard.detectors.tool_repeat import ToolRepeatConfig  # runaway detectors (issue 3)
from loopguard.detectors.velocity import VelocityConfig  # runaway detectors (issue 3)
from loopguard.ledger.spec import BudgetSpec  # money (issue 4)
from loopguard.pricing.spec import PriceSpec  # money (issue 4)

_STRICT = ConfigDict(extra="forbid", frozen=True, validate_default=True, strict=True)


class Policy(BaseModel):
    """Limits and detector settings for one agent. Every limit is optional (None = no limit)."""

    model_config = _STRICT

    mode: Literal["enforce", "shadow"] = "enforce"
    """`enforce` stops runs; `shadow` evaluates everything and only reports would-be aborts."""

    # --- run limits: a hard stop at max_*, a warning at warn_* (default: warn_ratio of max) ---
    max_model_calls: NonNegativeInt | None = 150
    warn_model_calls: NonNegativeInt | None = None
    max_tool_calls: NonNegativeInt | None = 300
    warn_tool_calls: NonNegativeInt | None = None
    max_calls_per_tool: dict[str, NonNegativeInt] = Field(default_factory=dict)
    """Per tool name, e.g. `{web_search = 10}`; warned at warn_ratio of each."""
    max_seconds: NonNegativeFloat | None = None
    warn_seconds: NonNegativeFloat | None = None
    max_tokens: NonNegativeInt | None = None
    """Input plus output tokens over the whole run (cache tokens are part of input)."""
    warn_tokens: NonNegativeInt | None = None
    warn_ratio: float = Field(0.8, gt=0, le=1)
    """Where a limit without its own warn_* starts warning, as a fraction of the limit."""

    # --- runaway detectors (issue 3): one section per detector, added here ---
    # Each is a table in the policy file ([similarity], [agents.x.cycle], ...); the knobs are
    # documented on the config classes and in docs/detectors.md.
    similarity: SimilarityConfig = Field(default_factory=SimilarityConfig)
    """Near-duplicate model calls, judged on what each call adds and returns."""
    tool_repeat: ToolRepeatConfig = Field(default_factory=ToolRepeatConfig)
    """The same tool call returning the same result; polling has its own looser cap."""
    cycle: CycleConfig = Field(default_factory=CycleConfig)
    """Tool-call cycles (A,B,A,B; A,B,C,A,B,C; ...) with the same results."""
    errors: ErrorsConfig = Field(default_factory=ErrorsConfig)
    """The same tool failing with the same error again and again."""
    velocity: VelocityConfig = Field(default_factory=VelocityConfig)
    """Tokens and dollars per minute, and bursts."""
    growth: GrowthConfig = Field(default_factory=GrowthConfig)
    """Outputs growing step after step."""
    stream: StreamConfig = Field(default_factory=StreamConfig)
    """A streamed answer repeating itself; a cap on one answer's output tokens."""
    progress: ProgressConfig = Field(default_factory=ProgressConfig)
    """Alike tool calls that bring back almost nothing new to the run (stalls)."""

    # --- money (issue 4): max_cost_usd, budgets, prices, ledger, added here ---
    # (models in loopguard/pricing/spec.py and loopguard/ledger/spec.py; docs/money.md)
    max_cost_usd: NonNegativeFloat | None = None
    """Dollars per run, checked before each model call against its projected cost."""
    warn_cost_usd: NonNegativeFloat | None = None
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
    """Where budgets live: memory://, sqlite:///path.db, redis://host:port/db, rediss://..."""
    on_ledger_error: Literal["closed", "open"] = "closed"
    """Ledger unreachable: `closed` refuses paid calls; `open` counts locally and warns."""
    reservation_ttl: float = Field(600.0, gt=0)
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

    @model_validator(mode="after")
    def _money_checks(self) -> Policy:
        hard, soft = self.max_cost_usd, self.warn_cost_usd
        if hard is not None and soft is not None and soft > hard:
            raise ValueError(f"warn_cost_usd ({soft}) must not be above max_cost_usd ({hard})")
        return self

    @field_validator("ledger")
    @classmethod
    def _known_ledger(cls, uri: str) -> str:
        from loopguard.ledger import check_uri

        return check_uri(uri)  # a ledger that cannot be opened is a config error

    # --- telemetry (issue 5): content capture, added here ---
    capture_content: bool = False
    """Export prompt and completion text, tool arguments and tool results on telemetry spans
    (also switched on by OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true)."""

    @model_validator(mode="after")
    def _warn_below_max(self) -> Policy:
        for name in ("model_calls", "tool_calls", "seconds", "tokens"):
            hard, soft = getattr(self, f"max_{name}"), getattr(self, f"warn_{name}")
            if hard is not None and soft is not None and soft > hard:
                raise ValueError(f"warn_{name} ({soft}) must not be above max_{name} ({hard})")
        return self

    def warn_at(self, name: str) -> float | None:
        """The warning threshold of limit `name` (e.g. "model_calls")."""
        soft = getattr(self, f"warn_{name}")
        if soft is not None:
            return soft
        hard = getattr(self, f"max_{name}")
        return None if hard is None else hard * self.warn_ratio

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
            return Policy.model_validate(merge_override(self.model_dump(), overrides))
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
