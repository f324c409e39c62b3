"""Wyoming protocol server (Home Assistant's voice pipeline) beside the OpenAI HTTP API.

A thin adapter: events in, `TranscriptionRequest`s to the app's engine, events out. The
framing is written here (events.py); the `wyoming` package is only a test dependency.
"""

from .handler import Services
from .server import WyomingServer
from .settings import WyomingSettings

__all__ = ["Services", "WyomingServer", "WyomingSettings"]
