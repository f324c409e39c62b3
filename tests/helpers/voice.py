"""Open WebUI's voice input, driven through its HTTP API the way the web client does it.

The first account created on a fresh Open WebUI becomes its admin; the helper creates it (or
signs in when it already exists), then posts audio to `/api/v1/audio/transcriptions`, which
Open WebUI forwards to the speech-to-text service it was wired to. Used by the role's tests
and by the end-to-end test of the whole stack.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

DEFAULT_ADMIN = ("Aistack Admin", "admin@aistack.test", "aistack-test-password-1")


class OpenWebUIError(RuntimeError):
    """Open WebUI answered a request with an error; the message carries its answer."""


@dataclass
class OpenWebUI:
    base_url: str
    timeout: float = 180.0
    token: str | None = None

    def _url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path

    def _headers(self) -> dict[str, str]:
        if self.token is None:
            raise OpenWebUIError("not signed in: call sign_in_as_admin() first")
        return {"Authorization": f"Bearer {self.token}"}

    @staticmethod
    def _check(response: httpx.Response, what: str) -> dict:
        if response.status_code != 200:
            raise OpenWebUIError(f"{what}: HTTP {response.status_code}: {response.text[:500]}")
        return response.json()

    def health(self) -> bool:
        try:
            return httpx.get(self._url("/health"), timeout=10).status_code == 200
        except httpx.HTTPError:
            return False

    def sign_in_as_admin(
        self,
        name: str = DEFAULT_ADMIN[0],
        email: str = DEFAULT_ADMIN[1],
        password: str = DEFAULT_ADMIN[2],
    ) -> str:
        """Sign up the first (admin) account, or sign in when it exists; returns the token."""
        with httpx.Client(timeout=self.timeout) as client:
            r = client.post(
                self._url("/api/v1/auths/signup"),
                json={"name": name, "email": email, "password": password},
            )
            if r.status_code != 200:
                r = client.post(
                    self._url("/api/v1/auths/signin"), json={"email": email, "password": password}
                )
            body = self._check(r, f"signing up or in as {email}")
        if body.get("role") != "admin":
            raise OpenWebUIError(
                f"{email} is signed in as {body.get('role')!r}, not admin: "
                "another account was created first on this Open WebUI"
            )
        self.token = body["token"]
        return self.token

    def audio_config(self) -> dict:
        """The effective audio settings Open WebUI reports (`{"stt": {...}, "tts": {...}}`)."""
        r = httpx.get(self._url("/api/v1/audio/config"), headers=self._headers(), timeout=30)
        return self._check(r, "reading the audio config")

    def update_audio_config(self, stt: dict) -> dict:
        """Change STT settings through the admin API, as an admin would in the settings page."""
        current = self.audio_config()
        body = {"tts": current["tts"], "stt": {**current["stt"], **stt}}
        r = httpx.post(
            self._url("/api/v1/audio/config/update"), json=body, headers=self._headers(),
            timeout=30,
        )
        return self._check(r, "updating the audio config")

    def transcribe(self, wav: bytes, filename: str = "speech.wav") -> str:
        """The text Open WebUI returns for the audio, as its microphone button receives it."""
        r = httpx.post(
            self._url("/api/v1/audio/transcriptions"),
            files={"file": (filename, wav, "audio/wav")},
            headers=self._headers(),
            timeout=self.timeout,
        )
        return self._check(r, "transcribing through Open WebUI")["text"]

    def speak(self, text: str) -> bytes:
        """The audio Open WebUI's read-aloud button fetches for `text` (`/api/v1/audio/speech`,
        forwarded to the text-to-speech service it was wired to), in its configured voice."""
        voice = self.audio_config()["tts"].get("VOICE") or "default"
        r = httpx.post(
            self._url("/api/v1/audio/speech"),
            json={"input": text, "voice": voice},
            headers=self._headers(),
            timeout=self.timeout,
        )
        if r.status_code != 200:
            raise OpenWebUIError(
                f"reading aloud through Open WebUI: HTTP {r.status_code}: {r.text[:500]}"
            )
        return r.content
