"""The price table: packaged prices plus a policy's overrides, and model-id resolution.

Bedrock ids come in many forms; all resolve to one table entry:
  anthropic.claude-3-5-haiku-20241022-v1:0                       in-region (on-demand)
  us.anthropic.claude-3-5-haiku-20241022-v1:0                    geographic inference profile
  global.anthropic.claude-sonnet-4-5-20250929-v1:0               global inference profile
  arn:aws:bedrock:us-east-1::foundation-model/anthropic....      foundation-model ARN
  arn:aws:bedrock:us-east-1:123:inference-profile/us.anthropic... system inference-profile ARN
  arn:aws:bedrock:...:application-inference-profile/abc123        only via the policy's
                                                                  `model_aliases` (opaque id)
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from loopguard.errors import UnknownModel as UnknownModel  # also importable from here
from loopguard.pricing.spec import ModelEntry, PriceSpec

# Bedrock inference-profile scopes. "global." is the cheaper global endpoint; the others are
# geographic (priced like in-region calls).
PROFILE_PREFIXES = ("global", "us", "eu", "apac", "jp", "au", "ca", "us-gov")
_PREFIX_RE = re.compile(r"^(" + "|".join(re.escape(p) for p in PROFILE_PREFIXES) + r")\.(?=[a-z])")
# -v1:0, -v2:0, -v1, and provisioned-throughput context variants such as -v1:0:200k
_VERSION_RE = re.compile(r"-v\d+(?::\d+)?(?::\d+k)?$")
# Dated snapshots of an undated id: gpt-4o-2024-08-06 (OpenAI), claude-opus-5-5-20260922
_DATE_RE = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|20\d{6})$")


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens for one model on one endpoint. `cache_write` is the 5-minute
    cache write, `cache_write_1h` the 1-hour one."""

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None
    long_context: tuple[int, Price] | None = None  # (above_input_tokens, price above it)
    cache_write_1h: float | None = None

    @classmethod
    def from_spec(cls, spec: PriceSpec, multiplier: float = 1.0) -> Price:
        def m(v: float | None) -> float | None:
            return None if v is None else round(v * multiplier, 10)

        def m0(v: float) -> float:
            return round(v * multiplier, 10)

        tier = None
        if spec.long_context is not None:
            lc = spec.long_context
            tier = (
                lc.above_input_tokens,
                cls(
                    m0(lc.input),
                    m0(lc.output),
                    m(lc.cache_read),
                    m(lc.cache_write),
                    cache_write_1h=m(lc.cache_write_1h),
                ),
            )
        return cls(
            m0(spec.input),
            m0(spec.output),
            m(spec.cache_read),
            m(spec.cache_write),
            tier,
            m(spec.cache_write_1h),
        )

    def for_input(self, input_tokens: int) -> Price:
        """The tier that applies to a request with `input_tokens` (cache tokens included)."""
        if self.long_context is not None and input_tokens > self.long_context[0]:
            return self.long_context[1]
        return self

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "input_per_mtok": self.input,
            "output_per_mtok": self.output,
            "cache_read_per_mtok": self.cache_read,
            "cache_write_per_mtok": self.cache_write,
            "cache_write_1h_per_mtok": self.cache_write_1h,
        }
        if self.long_context is not None:
            above, tier = self.long_context
            d["long_context"] = {"above_input_tokens": above, **tier.to_dict()}
        return d


@dataclass(frozen=True, slots=True)
class Resolved:
    """A model id resolved to a price. `model` is the normalized id (profile scope kept)."""

    model: str
    price: Price
    entry: str  # the table (or override) id it resolved to
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a price comes from: the page it was checked against, when, and any caveat."""

    source: str
    checked: str | None
    note: str | None


def normalize(model: str, aliases: Mapping[str, str] | None = None) -> tuple[str | None, str]:
    """Split a model id into (profile scope or None, base id without version suffix).

    Application inference-profile ARNs are opaque: they resolve only through `aliases`.
    """
    s = model.strip()
    if aliases:
        s = aliases.get(s, aliases.get(s.lower(), s)).strip()
    if s.startswith("arn:"):
        resource = s.split(":", 5)[-1]  # e.g. foundation-model/anthropic.claude-...
        kind, _, rest = resource.partition("/")
        if kind == "application-inference-profile" or not rest:
            raise UnknownModel(
                f"{model!r} is an application inference-profile ARN; map it to the model it "
                f"serves with the policy key model_aliases, e.g. "
                f'model_aliases = {{"{model}" = "anthropic.claude-sonnet-4-5-20250929-v1:0"}}'
            )
        s = rest
    s = s.lower()
    scope = None
    m = _PREFIX_RE.match(s)
    if m:
        scope, s = m.group(1), s[m.end() :]
    return scope, _VERSION_RE.sub("", s)


class PriceTable:
    """Entries by id and alias. Overrides (a policy's `prices`) win over packaged entries."""

    def __init__(
        self,
        entries: Mapping[str, PriceSpec],
        names: Mapping[str, str] | None = None,
        aliases: Mapping[str, str] | None = None,
        origins: Mapping[str, Origin] | None = None,
    ) -> None:
        self._specs = {k.lower(): v for k, v in entries.items()}
        self._names = dict(names or {})
        self._aliases = {k.lower(): v.lower() for k, v in (aliases or {}).items()}
        self._origins = dict(origins or {})

    def with_overrides(self, overrides: Mapping[str, PriceSpec]) -> PriceTable:
        if not overrides:
            return self
        specs = dict(self._specs)
        origins = dict(self._origins)
        for key, spec in overrides.items():
            scope, base = normalize(key)
            entry = f"{scope}.{base}" if scope else base
            specs[entry] = spec
            origins[entry] = Origin("the policy's prices", None, None)
        return PriceTable(specs, self._names, self._aliases, origins)

    def origin(self, entry: str) -> Origin | None:
        """Where an entry's price comes from (source page and checked date, or the policy)."""
        return self._origins.get(entry)

    def aliases_of(self, entry: str) -> list[str]:
        return sorted(a for a, e in self._aliases.items() if e == entry)

    def ids(self) -> list[str]:
        return sorted(self._specs)

    def spec(self, entry: str) -> PriceSpec:
        return self._specs[entry]

    def name(self, entry: str) -> str | None:
        return self._names.get(entry)

    def resolve(self, model: str, aliases: Mapping[str, str] | None = None) -> Resolved:
        """The price of `model`; raises UnknownModel with a message naming what to do."""
        scope, base = normalize(model, aliases)
        full = f"{scope}.{base}" if scope else base
        # An override may name one profile exactly (priced as written, no multiplier).
        if scope and full in self._specs:
            return Resolved(full, Price.from_spec(self._specs[full]), full, self._names.get(full))
        entry = self._lookup(base)
        if entry is None:
            raise UnknownModel(
                f"no price for model {model!r} (looked up {base!r}); add it "
                f"under the policy key prices, or set fallback_price"
            )
        spec = self._specs[entry]
        multiplier = 1.0
        if spec.regional_multiplier and scope != "global":
            multiplier = spec.regional_multiplier
        model_id = f"{scope}.{entry}" if scope else entry
        return Resolved(model_id, Price.from_spec(spec, multiplier), entry, self._names.get(entry))

    def _lookup(self, base: str) -> str | None:
        for candidate in (base, _DATE_RE.sub("", base)):
            if candidate in self._specs:
                return candidate
            if candidate in self._aliases:
                return self._aliases[candidate]
        return None


@functools.cache
def packaged_table() -> PriceTable:
    """The table shipped in loopguard/data/prices.toml (validated once)."""
    text = resources.files("loopguard").joinpath("data", "prices.toml").read_text(encoding="utf-8")
    return table_from_toml(tomllib.loads(text), source="loopguard/data/prices.toml")


def table_from_toml(data: Mapping[str, Any], *, source: str) -> PriceTable:
    entries: dict[str, PriceSpec] = {}
    names: dict[str, str] = {}
    aliases: dict[str, str] = {}
    origins: dict[str, Origin] = {}
    for i, raw in enumerate(data.get("models", [])):
        try:
            entry = ModelEntry.model_validate(raw)
        except Exception as exc:  # noqa: BLE001 - re-raised with the entry named
            raise ValueError(f"{source}: models[{i}] ({raw.get('id')!r}): {exc}") from None
        key = entry.id.lower()
        if key in entries:
            raise ValueError(f"{source}: models[{i}]: duplicate id {entry.id!r}")
        entries[key] = PriceSpec.model_validate(
            entry.model_dump(include=set(PriceSpec.model_fields))
        )
        names[key] = entry.name
        origins[key] = Origin(entry.source, entry.checked, entry.note)
        for alias in entry.aliases:
            aliases[alias.lower()] = key
    return PriceTable(entries, names, aliases, origins)
