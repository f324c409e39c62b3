"""The household's words: names and phrases every transcription is primed with.

Whisper reads up to 223 tokens of "previous text" before the audio (the prompt; faster-
whisper's `initial_prompt` and `hotwords` both end up there), and spells names it finds
there far more often than names it has never seen. Three sources fill it, in this order:

1. names from Home Assistant (hass_names.py), fetched in the background;
2. the server-wide vocabulary (`--vocabulary "Zorblat lamp, Quimby heater"`);
3. the request's own `hotwords` and `prompt` (HTTP form fields, live start messages, the
   realtime session's `input_audio_transcription.prompt`).

The request's own text is kept whole and goes last, nearest the audio; the server's
vocabulary next; Home Assistant's names fill what room is left, whole names only, so the
decoder never has to cut the prompt in the middle of a name. `VocabularyPrompt` is a
`Transcriber` (engine.py) that rewrites each request's `prompt` this way before the
engine sees it, so every protocol gets the same words without knowing about them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from .engine import SegmentCallback, Transcriber, TranscriptionRequest, TranscriptionResult

log = logging.getLogger("aistack_stt.vocabulary")

# Whisper's decoder takes max_length // 2 - 1 = 223 tokens of previous text.
PROMPT_TOKENS = 223
# Without the model's tokenizer: a conservative count (made-up names split into short
# pieces; English text averages about 4 characters a token).
CHARS_PER_TOKEN = 2.5
MAX_TERM_CHARS = 100

TokenCounter = Callable[[str], int]


def estimate_tokens(text: str) -> int:
    return int(len(text) / CHARS_PER_TOKEN) + 1


def parse_terms(text: str | Iterable[str] | None) -> tuple[str, ...]:
    """Comma-separated names (or a list of them), trimmed, without repeats (any case)."""
    if text is None:
        return ()
    items = text.split(",") if isinstance(text, str) else text
    seen: set[str] = set()
    terms = []
    for item in items:
        term = " ".join(str(item).split())
        if term and len(term) <= MAX_TERM_CHARS and term.casefold() not in seen:
            seen.add(term.casefold())
            terms.append(term)
    return tuple(terms)


def _listing(terms: Sequence[str]) -> str:
    return ", ".join(terms) + "." if terms else ""


class Vocabulary:
    """Builds the prompt of each request from the server's words and the request's own."""

    def __init__(
        self,
        terms: Iterable[str] = (),
        names: Callable[[], Sequence[str]] | None = None,
        count: TokenCounter | None = None,
        budget: int = PROMPT_TOKENS,
    ) -> None:
        self.terms = parse_terms(terms)
        self._names = names or (lambda: ())
        self._count = count or estimate_tokens
        self.budget = budget
        self._costs: dict[str, int] = {}

    def count(self, text: str) -> int:
        if not text:
            return 0
        try:
            return self._count(text)
        except Exception:  # a tokenizer that fails must not fail the transcription
            return estimate_tokens(text)

    def cost(self, term: str) -> int:
        """Tokens `term` takes in a listing, with its comma (counted once per term)."""
        cost = self._costs.get(term)
        if cost is None:
            if len(self._costs) > 8192:
                self._costs.clear()
            cost = self._costs[term] = self.count(term) + 1
        return cost

    def fit(self, terms: Sequence[str], room: int) -> list[str]:
        """The leading terms whose listing fits in `room` tokens (whole terms only)."""
        chosen: list[str] = []
        used = 1  # the closing full stop
        for term in terms:
            used += self.cost(term)
            if used > room:
                break
            chosen.append(term)
        return chosen

    def prompt_for(self, prompt: str | None, hotwords: str | None) -> str | None:
        own = " ".join(p.strip() for p in (hotwords, prompt) if p and p.strip())
        room = self.budget - self.count(own)
        # The server's words that the request repeats are not said twice.
        said = own.casefold()
        server = self.fit([t for t in self.terms if t.casefold() not in said], room)
        room -= sum(self.cost(t) for t in server) + 1
        taken = {t.casefold() for t in server}
        # Home Assistant's names, less those the server's words or the request already say.
        names = [
            n for n in parse_terms(self._names())
            if n.casefold() not in taken and n.casefold() not in said
        ]
        hass = self.fit(names, room) if room > 0 else []
        text = " ".join(p for p in (_listing([*hass, *server]), own) if p)
        return text or None


class VocabularyPrompt:
    """A `Transcriber`: each request's prompt gets the household's words, then `inner` runs it."""

    def __init__(self, inner: Transcriber, vocabulary: Vocabulary) -> None:
        self.inner = inner
        self.vocabulary = vocabulary

    async def transcribe(
        self, request: TranscriptionRequest, on_segment: SegmentCallback | None = None
    ) -> TranscriptionResult:
        prompt = self.vocabulary.prompt_for(request.prompt, request.hotwords)
        request = replace(request, prompt=prompt, hotwords=None)
        return await self.inner.transcribe(request, on_segment)

    def health(self) -> dict:
        return self.inner.health()

    def render_metrics(self) -> str:
        return self.inner.render_metrics()

    def close(self) -> None:
        self.inner.close()


def model_token_counter(model_dir: Callable[[], object]) -> TokenCounter:
    """Counts tokens with the default model's own tokenizer (its `tokenizer.json`) when its
    directory is known, else estimates; the tokenizer is read once, on first use."""
    state: dict = {}

    def count(text: str) -> int:
        if "tokenizer" not in state:
            state["tokenizer"] = None
            try:
                from tokenizers import Tokenizer  # faster-whisper's own dependency

                path = model_dir()
                if path is not None:
                    state["tokenizer"] = Tokenizer.from_file(str(path) + "/tokenizer.json")
            except Exception as exc:  # no directory yet (hub model), no file: estimate
                log.debug("vocabulary: counting tokens by estimate (%s)", exc)
        tokenizer = state["tokenizer"]
        if tokenizer is None:
            return estimate_tokens(text)
        return len(tokenizer.encode(" " + text, add_special_tokens=False).ids)

    return count
