"""What a detector is: a small strategy, `(run state, event) -> Verdict | None`."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Protocol

if TYPE_CHECKING:
    from loopguard.events import Event
    from loopguard.state import RunState
    from loopguard.verdict import Verdict


class Detector(Protocol):
    """A detector looks at the events it subscribes to and may return a verdict.

    It keeps what it needs in `state.slot(self.name, factory)`, bounded by a window. On start
    events (`ModelStart`, `ToolStart`) it is called *before* the call goes out and before the
    guard counts it, so an abort there means the call never happens.
    """

    name: ClassVar[str]
    events: ClassVar[tuple[type[Event], ...]]

    def __call__(self, state: RunState, event: Event) -> Verdict | None: ...
