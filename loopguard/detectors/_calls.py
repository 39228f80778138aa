"""Pairing tool results with the call that produced them (a result event has no arguments)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from loopguard.events import ToolEnd, ToolError, ToolStart
from loopguard.normalize import canonical_args

_MAX_PENDING = 32


class PendingCalls:
    """Started tool calls not yet finished, keyed by the event id (else by tool name)."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending: OrderedDict[Any, tuple[str, int]] = OrderedDict()

    def start(self, event: ToolStart, step: int) -> str:
        """Remember the call; returns its canonical arguments."""
        args = canonical_args(event.args)
        key = event.id or event.tool
        self._pending.pop(key, None)
        self._pending[key] = (args, step)
        if len(self._pending) > _MAX_PENDING:
            self._pending.popitem(last=False)
        return args

    def finish(self, event: ToolEnd | ToolError, step: int) -> tuple[str, int]:
        """Canonical arguments and model step of the call `event` ends ("" if never seen)."""
        found = self._pending.pop(event.id or event.tool, None)
        if found is None and event.id is not None:
            found = self._pending.pop(event.tool, None)
        return found if found is not None else ("", step)
