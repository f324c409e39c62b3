"""Piper voices named by their hub name (`en_US-lessac-medium`), fetched once and then kept.

Piper's voices live on the Hugging Face hub in `rhasspy/piper-voices`, one file pair per voice
at `<lang>/<lang_REGION>/<name>/<quality>/<voice>.onnx` (and `.onnx.json`). A voice named this
way is looked up in the voice directory first; only when it is not there (or was fetched at
another revision than the pinned one) is it fetched, at the pinned revision, through
huggingface_hub, which honours HF_ENDPOINT (a mirror) and HF_HUB_OFFLINE. Beside the pair a
`<voice>.onnx.revision` file records the revision it came from; a pair put there by hand (no
such file) is used as it is, so an offline host can be seeded by copying two files.

Who may cause a fetch is the operator's choice: the voice the server starts with is fetched at
start (a failure stops the server with one line); a voice a request names only when
`tts.client_voices` is `hub` (tts/service.py), never otherwise.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

log = logging.getLogger("aistack_stt.tts")

REPO = "rhasspy/piper-voices"
# LANG_REGION-NAME-QUALITY, as Piper names its voices (NAME may hold underscores).
_VOICE_NAME = re.compile(r"^([a-z]{2,3})_([A-Z]{2})-([A-Za-z0-9_]+)-(x_low|low|medium|high)$")
SUFFIXES = (".onnx", ".onnx.json")


class VoiceFetchError(Exception):
    """A voice could not be fetched; `missing` when the hub answered that it has no such voice
    (at that revision), else the hub could not be reached or is switched off."""

    def __init__(self, message: str, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


def is_voice_name(text: str) -> bool:
    return bool(_VOICE_NAME.match(text))


def hub_path(name: str) -> str:
    """Where the repository keeps a voice, without the suffix: en/en_US/joe/medium/en_US-..."""
    match = _VOICE_NAME.match(name)
    if match is None:
        raise ValueError(f"{name!r} is not a Piper voice name (LANG_REGION-NAME-QUALITY)")
    lang, region, speaker, quality = match.groups()
    return f"{lang}/{lang}_{region}/{speaker}/{quality}/{name}"


class HubVoices:
    """The voice directory and the pinned revision voices are fetched at."""

    def __init__(self, voice_dir: Path, revision: str) -> None:
        self.voice_dir, self.revision = voice_dir, revision

    def _pin(self, name: str) -> Path:
        return self.voice_dir / f"{name}.onnx.revision"

    def local(self, name: str) -> Path | None:
        """The voice's .onnx in the voice directory, if it is there at the pinned revision (or
        was put there by hand); None when it has to be fetched."""
        model = self.voice_dir / f"{name}.onnx"
        if not all((self.voice_dir / f"{name}{s}").is_file() for s in SUFFIXES):
            return None
        pin = self._pin(name)
        if pin.is_file() and pin.read_text(encoding="utf-8").strip() != self.revision:
            return None  # fetched at another revision: the operator moved the pin
        return model

    def get(self, name: str) -> Path:
        """The voice's .onnx: from the voice directory, else fetched into it (blocking: the
        caller runs this at start or in a thread)."""
        return self.local(name) or self.fetch(name)

    def fetch(self, name: str) -> Path:
        """Fetch the voice's two files at the pinned revision into the voice directory; the
        pair replaces an older one only once both files are complete."""
        from huggingface_hub import constants, hf_hub_download

        where = f"{constants.ENDPOINT}/{REPO} at revision {self.revision}"
        staging = self.voice_dir / ".fetching"
        try:
            self.voice_dir.mkdir(parents=True, exist_ok=True)
            got = [
                hf_hub_download(
                    REPO, hub_path(name) + suffix, revision=self.revision, local_dir=staging
                )
                for suffix in SUFFIXES
            ]
            for path, suffix in zip(got, SUFFIXES, strict=True):
                os.replace(path, self.voice_dir / f"{name}{suffix}")
            self._pin(name).write_text(self.revision + "\n", encoding="utf-8")
        except Exception as exc:  # huggingface_hub and httpx raise assorted types
            raise _explain(exc, name, where, self.voice_dir) from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        log.info("voice %s fetched from %s into %s", name, where, self.voice_dir)
        return self.voice_dir / f"{name}.onnx"


def _explain(exc: Exception, name: str, where: str, voice_dir: Path) -> VoiceFetchError:
    from huggingface_hub import constants

    kind = type(exc).__name__
    if kind in ("RepositoryNotFoundError", "RevisionNotFoundError", "EntryNotFoundError",
                "RemoteEntryNotFoundError"):  # fmt: skip
        return VoiceFetchError(
            f"tts voice {name}: {where} has no such voice ({kind}); check the name and the "
            "revision (Piper's voices are listed in the repository's voices.json)",
            missing=True,
        )
    if isinstance(exc, PermissionError):
        reason = f"{voice_dir} is not writable ({exc})"
    elif constants.HF_HUB_OFFLINE:
        reason = "the hub is switched off (HF_HUB_OFFLINE)"
    else:
        cause = exc.__cause__ or exc  # huggingface_hub wraps the connection's own error
        reason = f"{where} did not answer ({type(cause).__name__}: {cause})"
    return VoiceFetchError(
        f"tts voice {name} is not in {voice_dir} and could not be fetched: {reason}. Copy "
        f"{name}.onnx and {name}.onnx.json there, or check HF_ENDPOINT and HF_HUB_OFFLINE"
    )
