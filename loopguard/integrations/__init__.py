"""Adapters that turn what a framework reports into loopguard events."""

from loopguard.integrations._options import AdapterOptions

__all__ = ["AdapterOptions"]
