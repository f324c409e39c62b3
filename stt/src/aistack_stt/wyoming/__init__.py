"""Wyoming protocol server (Home Assistant's voice pipeline) beside the OpenAI HTTP API.

A thin adapter: events in, `TranscriptionRequest`s to the app's engine (a `Transcriber`),
events out. The framing is written here (events.py); the `wyoming` package is only a test
dependency. Its settings are the `wyoming` sub-tree of the settings tree (config.py).
"""

from ..config import WyomingSettings
from .handler import Services
from .server import WyomingServer

__all__ = ["Services", "WyomingServer", "WyomingSettings"]
