"""aistack-stt: OpenAI-compatible speech-to-text on faster-whisper."""

__version__ = "0.1.0"
