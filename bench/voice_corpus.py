"""The voice test corpus: spoken commands and sentences, silence, noise and hum, made on demand.

Nothing here is committed as audio: every clip is synthesized with espeak-ng (several voices
and speeds) and sox (noise colours, hum, clicks, mixes) into a directory, as 16 kHz mono WAV.
Two benchmarks read it: bench/stt_silence.py (which decoding defaults keep the words and
drop invented ones) and bench/voice_path.py (words and latency through Open WebUI).

Each clip has the words it holds (`""` for clips with no speech); `kind` groups them:
`command` (a short voice command), `sentence` (a longer one), `noisy` (speech with noise
under it), `silence` and `noise` (no speech at all).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

COMMANDS = (
    "Stop.",
    "Lights off.",
    "Next song.",
    "What time is it?",
    "Turn on the kitchen lights.",
    "Set a timer for ten minutes.",
    "Call mom.",
    "Play some jazz in the living room.",
    "How cold is it outside today?",
    "Add milk and eggs to the shopping list.",
    "Open the garage door.",
    "Remind me to water the plants at six.",
)
SENTENCES = (
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Please summarize the last three emails from the accounting department.",
    "Write a short poem about autumn leaves falling in a quiet park.",
    "Translate the following paragraph into German and keep the tone formal.",
)
# (espeak-ng voice, words per minute): male and female variants, slow to fast.
VOICES = (("en-us", 150), ("en-gb+f3", 130), ("en-us+m3", 175), ("en+f4", 160))
# Noise that holds no speech: colour and amplitude (sox `synth ... vol`).
NOISES = tuple(
    (colour, level)
    for colour in ("whitenoise", "pinknoise", "brownnoise")
    for level in (0.01, 0.05, 0.2, 0.6)
)


@dataclass(frozen=True)
class Clip:
    name: str
    kind: str  # command | sentence | noisy | silence | noise
    text: str  # the words spoken; "" where nobody speaks
    path: Path


def need(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise SystemExit(f"{tool} is not installed; apt-get install {tool}")
    return found


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


def speak(text: str, voice: str, speed: int, out: Path) -> Path:
    raw = out.with_suffix(".raw.wav")
    _run(need("espeak-ng"), "-v", voice, "-s", str(speed), "-w", str(raw), text)
    # Half a second of room before and after, as a person pressing a button leaves.
    _run(need("sox"), str(raw), "-r", "16000", "-c", "1", "-b", "16", str(out), "pad", "0.5", "0.5")
    raw.unlink()
    return out


def synth(out: Path, seconds: float, *effect: str) -> Path:
    _run(
        need("sox"),
        "-n",
        "-r",
        "16000",
        "-c",
        "1",
        "-b",
        "16",
        str(out),
        "synth",
        str(seconds),
        *effect,
    )
    return out


def mix(speech: Path, noise_colour: str, level: float, out: Path) -> Path:
    noise = out.with_suffix(".noise.wav")
    seconds = float(
        subprocess.run(
            [need("soxi"), "-D", str(speech)], check=True, capture_output=True, text=True
        ).stdout
    )
    synth(noise, seconds, noise_colour, "vol", str(level))
    _run(need("sox"), "-m", str(speech), str(noise), str(out))
    noise.unlink()
    return out


def build(directory: Path, voices: int = len(VOICES)) -> list[Clip]:
    """Write the corpus into `directory` (reused when already there) and describe it."""
    directory.mkdir(parents=True, exist_ok=True)
    clips: list[Clip] = []

    def add(name: str, kind: str, text: str, make) -> None:
        """The clip `name`, made by `make(path)` unless its file is already there."""
        path = directory / f"{name}.wav"
        if not path.exists():
            make(path)
        clips.append(Clip(name, kind, text, path))

    for v, (voice, speed) in enumerate(VOICES[:voices]):
        # Commands numbered with two digits (command-0-07), sentences with one.
        for kind, texts, digits in (("command", COMMANDS, 2), ("sentence", SENTENCES, 1)):
            for i, text in enumerate(texts):
                add(f"{kind}-{v}-{i:0{digits}d}", kind, text,
                    lambda p, t=text, vo=voice, s=speed: speak(t, vo, s, p))  # fmt: skip
    # Speech with noise under it: the first voice's sentences and some commands.
    for colour, level in (("pinknoise", 0.05), ("whitenoise", 0.05), ("brownnoise", 0.2)):
        for clip in [c for c in clips if c.name.startswith(("sentence-0-", "command-0-0"))]:
            add(f"noisy-{colour}-{level}-{clip.name}", "noisy", clip.text,
                lambda p, c=clip, co=colour, lv=level: mix(c.path, co, lv, p))  # fmt: skip
    for seconds in (0.5, 2, 12, 45):
        add(f"silence-{seconds}s", "silence", "",
            lambda p, s=seconds: synth(p, s, "sine", "0", "vol", "0"))  # fmt: skip
    for colour, level in NOISES:
        add(f"noise-{colour}-{level}", "noise", "",
            lambda p, c=colour, lv=level: synth(p, 4, c, "vol", str(lv)))  # fmt: skip
    for level in (0.05, 0.3):
        add(f"noise-hum50-{level}", "noise", "",
            lambda p, lv=level: synth(p, 4, "sine", "50", "vol", str(lv)))  # fmt: skip
    # A click of the mic: 2 s of silence with a 5 ms full-scale square burst in the middle.
    add("noise-click", "noise", "", _click)
    return clips


def _click(out: Path) -> Path:
    half = out.with_suffix(".half.wav")
    burst = out.with_suffix(".burst.wav")
    synth(half, 1.0, "sine", "0", "vol", "0")
    synth(burst, 0.005, "square", "1000", "vol", "0.9")
    _run(need("sox"), str(half), str(burst), str(half), str(out))
    half.unlink()
    burst.unlink()
    return out


def words(text: str) -> list[str]:
    """Lower-case words without punctuation; numbers spelled as Whisper tends to write them."""
    text = text.lower().replace("10", "ten").replace("6", "six").replace("3", "three")
    return re.findall(r"[a-z0-9']+", text)


def wer(reference: str, hypothesis: str) -> tuple[int, int]:
    """(word edits, reference words): summed over a corpus these give its WER."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[len(hyp)], len(ref)
