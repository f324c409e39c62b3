"""Live transcription over WebSockets.

One `LiveSession` (session.py: VAD, partials, finals) emits typed events (events.py); one
receive loop (loop.py) drives it; two thin protocol adapters translate messages in and out:
the aistack protocol (`WS /v1/audio/stream`, aistack_protocol.py) and OpenAI's realtime
transcription (`WS /v1/realtime`, openai_realtime.py). router.py mounts both.
"""

from .events import Event, Final, FinalSegment, Partial, SpeechStarted, SpeechStopped
from .options import OptionError, StreamOptions, parse_options
from .router import LiveRouter, SessionCounter, create_live_router
from .session import LiveSession

__all__ = [
    "Event",
    "Final",
    "FinalSegment",
    "LiveRouter",
    "LiveSession",
    "OptionError",
    "Partial",
    "SessionCounter",
    "SpeechStarted",
    "SpeechStopped",
    "StreamOptions",
    "create_live_router",
    "parse_options",
]
