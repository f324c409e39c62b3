"""A browser on the LAN: Debian's chromium in its own network namespace, driven by Playwright.

The namespace is joined to the host by a veth pair and routes everything through it, so the
browser reaches the stack the way a laptop on the LAN does: through the host's addresses and
the front door, never through the Incus bridge. It trusts the stack's local CA the way a user
would after following docs/operations.md (an NSS database in its HOME, `certutil -A -t C,,`),
and its microphone is a spoken WAV file (Chromium's fake capture device).

Needs root (ip netns), `chromium` and `certutil` (libnss3-tools) from Debian, and the
`playwright` package from PyPI; the browser is Debian's, never a downloaded one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.netns import veth_namespace

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]


@dataclass(frozen=True)
class LanNamespace:
    name: str
    host_ip: str
    client_ip: str


@contextlib.contextmanager
def lan_namespace(
    name: str = "aistack-door-lan",
    host_ip: str = "10.160.13.1",
    client_ip: str = "10.160.13.2",
    links: tuple[str, str] = ("vd-host", "vd-lan"),
) -> Iterator[LanNamespace]:
    """A namespace whose only link is a veth to the host; its default route is the host.
    A second LAN machine takes another name, /30 and pair of `links`."""
    host_if, lan_if = links
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    subprocess.run(["ip", "link", "del", host_if], capture_output=True)
    with veth_namespace(
        name, (host_if, lan_if), (host_ip, client_ip), 30, default_route=True
    ):
        yield LanNamespace(name, host_ip, client_ip)


@dataclass
class VoiceAttempt:
    """What the page showed after the microphone was clicked (and confirmed, if it could be)."""

    secure_context: bool
    recording_started: bool
    chat_input: str
    toasts: list[str]
    screenshot: Path
    # The page's own error when it could not even show the chat: Open WebUI 0.12 calls
    # crypto.randomUUID, which browsers define only in secure contexts, so on plain HTTP
    # at a LAN address its chat page (a model selected) ends in "500: Internal Error".
    page_error: str = ""


def _browser_home(ca_file: Path | None) -> Path:
    home = Path(tempfile.mkdtemp(prefix="aistack-browser-"))
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    subprocess.run(["certutil", "-N", "--empty-password", "-d", f"sql:{nssdb}"], check=True,
                   capture_output=True)
    if ca_file is not None:
        subprocess.run(
            ["certutil", "-A", "-n", "aistack local CA", "-t", "C,,", "-i", str(ca_file),
             "-d", f"sql:{nssdb}"],
            check=True, capture_output=True,
        )
    return home


def _launcher(home: Path, namespace: str | None) -> str:
    """The executable Playwright starts: chromium itself, or chromium inside the namespace."""
    if namespace is None:
        return CHROMIUM
    wrapper = home / "chromium-in-lan"
    wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {namespace} {CHROMIUM} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def speak_into_open_webui(
    url: str,
    token: str,
    wav: Path,
    screenshot: Path,
    ca_file: Path | None = None,
    namespace: str | None = None,
    record_seconds: float = 8.0,
    timeout_s: float = 180.0,
) -> VoiceAttempt:
    """Open Open WebUI at ``url`` signed in with ``token``, click the microphone, let the WAV
    play, confirm the recording and return what the chat input then holds."""
    from playwright.sync_api import sync_playwright

    home = _browser_home(ca_file)
    env = {**os.environ, "HOME": str(home)}
    args = [*CHROMIUM_FLAGS, f"--use-file-for-fake-audio-capture={wav}%noloop"]
    timeout_ms = timeout_s * 1000
    toasts: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=_launcher(home, namespace), args=args, env=env, headless=True
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(timeout_ms)
            page.goto(url + "/auth", wait_until="domcontentloaded")
            page.evaluate("token => localStorage.setItem('token', token)", token)
            page.goto(url + "/", wait_until="domcontentloaded")
            secure = bool(page.evaluate("window.isSecureContext"))
            button = page.locator("#voice-input-button")
            failed = page.get_by_text("500: Internal Error", exact=True)
            try:
                button.or_(failed).first.wait_for(state="visible")
                if not secure and not button.is_visible() and failed.is_visible():
                    page.screenshot(path=str(screenshot))
                    error = failed.inner_text().strip()
                    return VoiceAttempt(secure, False, "", toasts, screenshot, error)
            except Exception as exc:
                # Say what the page showed instead: the screenshot, where it ended up, its text.
                page.screenshot(path=str(screenshot))
                body = page.locator("body").inner_text(timeout=5000)[:2000]
                raise AssertionError(
                    f"no microphone button at {page.url} (screenshot {screenshot}); "
                    f"the page says: {body!r}"
                ) from exc
            # A first visit may open a "what's new" dialog over the chat; dismiss it.
            page.keyboard.press("Escape")
            button.click()
            # Either the recording starts (its confirm button shows) or Open WebUI says why
            # not in a toast, which fades after a few seconds: collect toasts while waiting.
            confirm = page.locator("#confirm-recording-button")
            toast = page.locator("[data-sonner-toast]")
            started = False
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not started:
                started = confirm.is_visible()
                for shown in toast.all_inner_texts():
                    if shown.strip() and shown.strip() not in toasts:
                        toasts.append(shown.strip())
                if any("microphone" in t.lower() for t in toasts):
                    break
                time.sleep(0.25)
            text = ""
            if started:
                time.sleep(record_seconds)
                confirm.click()
                chat = page.locator("#chat-input")
                deadline = time.monotonic() + timeout_s
                while time.monotonic() < deadline:
                    text = chat.inner_text().strip()
                    if text:
                        break
                    time.sleep(1)
            page.screenshot(path=str(screenshot))
            return VoiceAttempt(secure, started, text, toasts, screenshot)
        finally:
            browser.close()
            shutil.rmtree(home, ignore_errors=True)
