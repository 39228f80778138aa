"""Adapters that turn what a framework reports into loopguard events."""
