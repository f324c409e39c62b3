"""Fixtures of the generator tests (defined in generator_support.py)."""

from generator_support import ws

__all__ = ["ws"]
