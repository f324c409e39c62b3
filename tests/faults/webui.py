"""The faults stack as its users reach it: through the front door, trusting the stack's CA,
with the administrator's password and the STT key that `make apply` keeps in `.aistack/`."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
from openai import OpenAI

from tests.helpers.speech import synthesize_wav

from .layout import AI, DOOR_PORT, DOOR_STT_PORT, WEB

SENTENCE = "please turn on the kitchen lights"
ADMIN_EMAIL = "admin@aistack.lan"
DOOR = f"https://127.0.0.1:{DOOR_PORT}"


def paths(checkout) -> dict[str, Path]:
    state = checkout.path / ".aistack"
    return {
        "ca": state / "front-door" / "ca.crt",
        "password": state / f"open-webui-admin-{WEB}.password",
        "stt_key": state / "secrets" / f"stt_api_key-{AI}",
    }


def door(checkout) -> ssl.SSLContext:
    """Trust in the stack's CA, as a device that installed it has (hostname not checked:
    the door is reached on 127.0.0.1, which the certificate need not name)."""
    context = ssl.create_default_context(cafile=str(paths(checkout)["ca"]))
    context.check_hostname = False
    return context


def admin_password(checkout) -> str:
    return paths(checkout)["password"].read_text().strip()


def stt_key(checkout) -> str:
    return paths(checkout)["stt_key"].read_text().split()[0]


def sign_in(checkout, email: str, password: str) -> httpx.Response:
    return httpx.post(
        f"{DOOR}/api/v1/auths/signin", json={"email": email, "password": password},
        verify=door(checkout), timeout=60,
    )  # fmt: skip


def admin_token(checkout) -> str:
    signed = sign_in(checkout, ADMIN_EMAIL, admin_password(checkout))
    assert signed.status_code == 200, signed.text
    return signed.json()["token"]


def call(checkout, method: str, path: str, token: str, **kwargs) -> httpx.Response:
    return httpx.request(
        method, f"{DOOR}{path}", headers={"Authorization": f"Bearer {token}"},
        verify=door(checkout), timeout=60, **kwargs,
    )  # fmt: skip


def new_chat(checkout, token: str, title: str) -> str:
    made = call(checkout, "POST", "/api/v1/chats/new", token,
                json={"chat": {"title": title, "messages": []}})  # fmt: skip
    assert made.status_code == 200, made.text
    return made.json()["id"]


def chat_title(checkout, token: str, chat_id: str) -> str | None:
    found = call(checkout, "GET", f"/api/v1/chats/{chat_id}", token)
    return found.json().get("title") if found.status_code == 200 else None


def webui_version(checkout) -> str:
    answer = httpx.get(f"{DOOR}/api/version", verify=door(checkout), timeout=60)
    answer.raise_for_status()
    return answer.json()["version"]


def words(text: str) -> list[str]:
    return "".join(c.lower() if c.isalnum() or c.isspace() else " " for c in text).split()


def transcribe_through_the_door(checkout, key: str) -> str:
    """What the official `openai` client hears through the door's STT port with `key`."""
    with httpx.Client(verify=door(checkout), timeout=180) as http:
        client = OpenAI(base_url=f"https://127.0.0.1:{DOOR_STT_PORT}/v1", api_key=key,
                        http_client=http, max_retries=0)  # fmt: skip
        heard = client.audio.transcriptions.create(
            model="whisper-1", file=("command.wav", synthesize_wav(SENTENCE), "audio/wav")
        )
    return heard.text
