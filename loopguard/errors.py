"""loopguard's exceptions, one hierarchy: catch `LoopGuardError` to catch them all.

This module imports nothing else of loopguard, so every part can raise from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loopguard.verdict import Verdict


class LoopGuardError(Exception):
    """Base of every exception loopguard raises."""


class ConfigError(LoopGuardError, ValueError):
    """A policy file or mapping that loopguard cannot accept.

    `errors` holds every problem found, each a ConfigError of its own (`source`, `line`, `key`,
    `reason`); the message is one `FILE:LINE: key.path: reason` line per problem. The
    attributes of the exception itself are those of the first problem.
    """

    def __init__(
        self,
        source: str,
        message: str,
        *,
        key: str | None = None,
        line: int | None = None,
        more: Sequence[ConfigError] = (),
    ) -> None:
        self.source, self.key, self.line, self.reason = source, key, line, message
        where = source if line is None else f"{source}:{line}"
        first = f"{where}: {key}: {message}" if key else f"{where}: {message}"
        self.errors: tuple[ConfigError, ...] = (self, *more)
        super().__init__("\n".join([first, *(str(e) for e in more)]))

    @classmethod
    def of(cls, errors: Sequence[ConfigError]) -> ConfigError:
        """One ConfigError reporting all of `errors` (at least one)."""
        first, *more = errors
        return cls(first.source, first.reason, key=first.key, line=first.line, more=more)


class EventFormatError(LoopGuardError, ValueError):
    """A recorded event does not match the JSONL contract; the message names the field."""


class LedgerUnavailable(LoopGuardError, RuntimeError):
    """The ledger's storage cannot be reached; the policy's on_ledger_error decides."""

    def __init__(self, message: str) -> None:
        from loopguard import _safe  # here: this module imports nothing of loopguard's at load

        super().__init__(_safe.uri(message))  # a URI's password never reaches logs or spans


class UnknownModel(LoopGuardError, LookupError):
    """No price for a model id; the message says how to add one."""


class LoopGuardAbort(LoopGuardError, RuntimeError):
    """Raised to stop a run. `verdict` says which detector fired, why, and the spend so far.

    A RuntimeError so that LangGraph's default retry policy does not retry it; every later
    model or tool start of the same run raises it again, so no retry wrapper or error handler
    can make another paid call go out.
    """

    def __init__(self, verdict: Verdict) -> None:
        from loopguard import _safe  # here: this module imports nothing of loopguard's at load

        self.verdict = verdict
        # Exception text ends up in logs and span statuses: names escaped and bounded.
        agent = "None" if verdict.agent is None else repr(_safe.name(verdict.agent))
        super().__init__(
            f"loopguard stopped run {_safe.name(verdict.run)} (agent {agent}) "
            f"at model call {verdict.step}: [{_safe.name(verdict.detector)}] "
            f"{_safe.text(verdict.reason)}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.verdict,))


__all__ = [
    "ConfigError",
    "EventFormatError",
    "LedgerUnavailable",
    "LoopGuardAbort",
    "LoopGuardError",
    "UnknownModel",
]
