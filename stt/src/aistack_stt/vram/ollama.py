"""Talking to the Ollama on the same GPU: which models it holds, and asking it to let one go.

Two calls of Ollama's HTTP API: `GET /api/ps` lists the loaded models with `size_vram` (bytes
on the GPU) and `expires_at`; `POST /api/generate` with no prompt and `keep_alive: 0` unloads
a model (Ollama lets running requests finish first). Standard library only: the STT container
carries no HTTP client package for this.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Protocol


class OllamaUnavailable(RuntimeError):
    """Ollama did not answer, or answered something else than its API."""


@dataclass(frozen=True)
class OllamaModel:
    name: str
    size_vram: int  # bytes on the GPU
    expires_at: str = ""  # ISO time; the soonest is the least recently used


class OllamaClient(Protocol):
    url: str

    def loaded(self) -> list[OllamaModel]: ...

    def unload(self, name: str) -> None: ...


class HttpOllamaClient:
    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                payload = json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            raise OllamaUnavailable(f"{method} {self.url}{path} answered {exc.code}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise OllamaUnavailable(f"{method} {self.url}{path} failed: {reason}") from None
        if not isinstance(payload, dict):
            raise OllamaUnavailable(f"{method} {self.url}{path} did not answer a JSON object")
        return payload

    def loaded(self) -> list[OllamaModel]:
        models = self._call("GET", "/api/ps").get("models") or []
        return [
            OllamaModel(
                name=str(m.get("name") or m.get("model")),
                size_vram=int(m.get("size_vram") or 0),
                expires_at=str(m.get("expires_at") or ""),
            )
            for m in models
            if isinstance(m, dict)
        ]

    def unload(self, name: str) -> None:
        self._call("POST", "/api/generate", {"model": name, "keep_alive": 0, "stream": False})
