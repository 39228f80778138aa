"""What a detector is: a small strategy, `(run state, event) -> Verdict | None`, and how the
registry knows it: its policy section, its config class and how it is built."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

if TYPE_CHECKING:
    from pydantic import BaseModel

    from loopguard.events import Event, Usage
    from loopguard.policy import Policy
    from loopguard.state import RunState
    from loopguard.verdict import Verdict

Pricer = Callable[["Policy", str, "Usage"], "float | None"]
"""`(policy, model, usage) -> USD`, or None when the model has no price."""


EventT_contra = TypeVar("EventT_contra", bound="Event", contravariant=True)


class Detector(Protocol[EventT_contra]):
    """A detector looks at the events it subscribes to and may return a verdict.

    Its type parameter is what `__call__` accepts: the union of its `events` (`Detector[Event]`
    for one that takes any). The guard calls it only with those, so it holds `Detector[Any]`.

    It keeps what it needs in `state.slot(self.name, factory)`, bounded by a window. On start
    events (`ModelStart`, `ToolStart`) it is called *before* the call goes out and before the
    guard counts it, so an abort there means the call never happens.

    A detector of `Token` events gets every streamed chunk, unless it sets the class attribute
    `token_pieces = True`: then it may get a call's text in pieces of several chunks (see
    `Guard.token_piece`), which makes streaming cheaper.
    """

    name: ClassVar[str]

    @property
    def events(self) -> tuple[type[Event], ...]:
        """The event types it is called for (a class attribute, or set per instance)."""
        ...

    def __call__(self, state: RunState, event: EventT_contra) -> Verdict | None: ...


@dataclass(frozen=True, slots=True)
class Context:
    """What the guard gives every detector it builds, beside the policy: its own parts."""

    pricer: Pricer


@dataclass(frozen=True, slots=True)
class Registered:
    """One line of the registry: a detector, the policy section that configures it (a field of
    `Policy` of type `config`, a table in the policy file), and how it is built.

    `build(section, policy, context)` returns the detector, or None when the policy switches
    it off; by default `detector(section)` when the section's `enabled` is true. A detector
    without a section (`section=None`) reads top-level policy keys. `last` detectors run after
    all others and after the guard's own (the money check reserves budget, so it must only
    see calls nothing else refused)."""

    detector: type[Any]
    section: str | None = None
    config: type[BaseModel] | None = None
    build: Callable[[Any, Policy, Context], Detector[Any] | None] | None = None
    last: bool = False

    def from_policy(self, policy: Policy, context: Context) -> Detector[Any] | None:
        section = getattr(policy, self.section) if self.section is not None else None
        if self.build is not None:
            return self.build(section, policy, context)
        if getattr(section, "enabled", True):
            detector: Detector[Any] = self.detector(section)
            return detector
        return None


__all__ = ["Context", "Detector", "Pricer", "Registered"]
