"""Read-aloud as a person uses it: a chat answer in Open WebUI, its speaker button clicked.

Open WebUI 0.12.4's read-aloud (ResponseMessage.svelte, `#speak-button-<message id>`) cuts the
answer into sentences, posts each to `/api/v1/audio/speech` (`{"input": sentence, "voice": ...}`),
and queues the audio it gets back as `blob:` URLs on the page's one `<audio id="audioElement">`
(utils/audio.ts, AudioQueue), which plays them one after another. What this helper reports is
what the user's side sees of that: the speech requests the page sent and their answers (from
the browser's network events), the blobs the page turned into `blob:` URLs, and the media
events of the page (`play`, `playing`, `ended`, `error`, caught on the document in the capture
phase by a script that runs before the page's own), plus AudioContext sources started, should a
later version play through Web Audio.

The browser is lan_browser.py's: Debian's chromium, optionally inside the LAN namespace and
trusting the stack's CA. The speaker click is the user's gesture; Chromium's autoplay rule is
relaxed anyway, since the audio starts after the speech request returns.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers.lan_browser import CHROMIUM_FLAGS, _browser_home, _launcher

SPEECH_PATH = "/api/v1/audio/speech"
READ_ALOUD_FLAGS = ["--autoplay-policy=no-user-gesture-required"]

# Runs in every document before the page's scripts: media events do not bubble, but a capture
# listener on the document sees them on their way to the element.
MEDIA_PROBE = """
(() => {
  const events = [];
  window.__aistackMediaEvents = events;
  for (const type of ['play', 'playing', 'ended', 'error']) {
    document.addEventListener(type, (event) => {
      const el = event.target;
      if (!(el instanceof HTMLMediaElement)) return;
      events.push({type, src: el.currentSrc || el.src || '', position: el.currentTime,
                   duration: Number.isFinite(el.duration) ? el.duration : -1,
                   error: el.error ? el.error.code : 0});
    }, true);
  }
  // The audio the page made playable: each blob: URL with the size and type of its blob.
  const blobs = [];
  window.__aistackBlobs = blobs;
  const createObjectURL = URL.createObjectURL;
  URL.createObjectURL = function (object) {
    const url = createObjectURL.call(URL, object);
    if (object instanceof Blob) blobs.push({url, size: object.size, type: object.type});
    return url;
  };
  const start = AudioScheduledSourceNode.prototype.start;
  AudioScheduledSourceNode.prototype.start = function (...args) {
    events.push({type: 'audiocontext-start', src: '', position: 0,
                 duration: this.buffer ? this.buffer.duration : -1, error: 0});
    return start.apply(this, args);
  };
})();
"""


# Whether every sentence's audio has played to its end, or the audio element failed.
_FINISHED = """expected => {
  const events = window.__aistackMediaEvents || [];
  const ended = events.filter(e => e.type === 'ended' && e.src.startsWith('blob:'));
  return ended.length >= expected || events.some(e => e.type === 'error');
}"""


@dataclass(frozen=True)
class SpeechCall:
    """One request the page made to Open WebUI's speech endpoint, and its answer."""

    input: str
    voice: str
    status: int
    content_type: str
    size: int  # bytes of the answer's body, as the browser received it


@dataclass
class ReadAloud:
    """What the user's side saw: the answer, the speech calls, the page's media events."""

    message: str
    calls: list[SpeechCall]
    media: list[dict]
    blobs: dict[str, dict]  # blob: URL -> {"size", "type"} of the audio behind it
    toasts: list[str]
    screenshot: Path
    console_errors: list[str] = field(default_factory=list)

    def played(self, kind: str) -> list[dict]:
        """Media events of one kind for the fetched audio (`blob:` URLs, not the page's
        silent clip that unlocks playback on the first gesture)."""
        return [e for e in self.media if e["type"] == kind and e["src"].startswith("blob:")]


def sentences(text: str) -> list[str]:
    """How Open WebUI 0.12.4 cuts a message for read-aloud (split on punctuation, its default):
    at `.`, `!` or `?` followed by white space, and at line breaks."""
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", text) if s.strip()]


def _collect_toasts(page, toasts: list[str]) -> None:
    for shown in page.locator("[data-sonner-toast]").all_inner_texts():
        if shown.strip() and shown.strip() not in toasts:
            toasts.append(shown.strip())


def read_answer_aloud(
    url: str,
    token: str,
    prompt: str,
    screenshot: Path,
    model: str,
    ca_file: Path | None = None,
    namespace: str | None = None,
    timeout_s: float = 180.0,
) -> ReadAloud:
    """Open Open WebUI at ``url`` signed in with ``token``, send ``prompt`` to ``model`` from
    the chat input, wait for the answer, click its read-aloud button and wait until every
    sentence's audio has been fetched and has played to its end (or failed)."""
    from playwright.sync_api import sync_playwright

    home = _browser_home(ca_file)
    env = {**os.environ, "HOME": str(home)}
    timeout_ms = timeout_s * 1000
    toasts: list[str] = []
    console_errors: list[str] = []
    responses = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=_launcher(home, namespace),
            args=[*CHROMIUM_FLAGS, *READ_ALOUD_FLAGS],
            env=env,
            headless=True,
        )
        try:
            context = browser.new_context()
            context.add_init_script(MEDIA_PROBE)
            page = context.new_page()
            page.set_default_timeout(timeout_ms)
            page.on("response", lambda r: responses.append(r) if SPEECH_PATH in r.url else None)
            page.on(
                "console", lambda m: console_errors.append(m.text) if m.type == "error" else None
            )
            # The session is in localStorage before any of the page's scripts run. (Set from a
            # loaded /auth page instead, it raced that page's own start: once, under load, the
            # app came up signed out and sent the browser back to /auth.)
            page.add_init_script(f"localStorage.setItem('token', {json.dumps(token)})")
            page.goto(f"{url}/?models={model}", wait_until="domcontentloaded")
            chat = page.locator("#chat-input")
            try:
                chat.wait_for(state="visible")
                # A first visit may open a "what's new" dialog over the chat; dismiss it.
                page.keyboard.press("Escape")
                chat.click()
                page.keyboard.type(prompt)
                page.keyboard.press("Enter")
                speak = page.locator('button[id^="speak-button-"]').last
                speak.wait_for(state="visible")
            except Exception as exc:
                page.screenshot(path=str(screenshot))
                _collect_toasts(page, toasts)
                body = page.locator("body").inner_text(timeout=5000)[:2000]
                raise AssertionError(
                    f"no answer with a read-aloud button at {page.url} (screenshot "
                    f"{screenshot}); toasts {toasts}; the page says: {body!r}"
                ) from exc
            message_id = (speak.get_attribute("id") or "").removeprefix("speak-button-")
            message = page.locator(f'[id="message-{message_id}"] #response-content-container')
            text = message.inner_text().strip()
            speak.hover()
            speak.click()
            # Done when each sentence's audio has ended, or anything failed (an error event,
            # a speech request refused); the page's toasts say why in the latter case.
            expected = len(sentences(text))
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                if page.evaluate(_FINISHED, expected) or any(not r.ok for r in responses):
                    break
                page.wait_for_timeout(250)  # lets Playwright deliver the page's events
            _collect_toasts(page, toasts)
            media = page.evaluate("window.__aistackMediaEvents || []")
            blobs = {b["url"]: b for b in page.evaluate("window.__aistackBlobs || []")}
            page.screenshot(path=str(screenshot))
            calls = []
            for response in responses:
                body = response.request.post_data_json or {}
                calls.append(
                    SpeechCall(
                        input=str(body.get("input", "")),
                        voice=str(body.get("voice", "")),
                        status=response.status,
                        content_type=response.headers.get("content-type", ""),
                        size=response.request.sizes()["responseBodySize"],
                    )
                )
            return ReadAloud(text, calls, media, blobs, toasts, screenshot, console_errors)
        finally:
            browser.close()
            shutil.rmtree(home, ignore_errors=True)
