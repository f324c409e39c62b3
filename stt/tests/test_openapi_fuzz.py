"""Schema-based fuzzing: schemathesis sends what `/openapi.json` allows, and worse.

Every operation of the documented API gets generated requests (random multipart bodies,
model ids, path parameters); none may answer 500, and every answer must be one the schema
documents, with its content type and body shape (OpenAI's error body for errors). The number
of examples is bounded so that the whole file stays within about a minute here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from aistack_stt.config import TtsSettings
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from stt_testkit import LiveServer, Speech, serving_tiny
from tts_testkit import voice_dir

EXAMPLES = 25  # per operation and mode: 10 operations, 2 modes, under a minute here

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzzed_server(models_dir: Path) -> Iterator[LiveServer]:
    """A server of its own: the fuzzer may unload its models and load others."""
    # With a voice, so that the speech endpoint's hostile bodies reach the synthesiser.
    tts = TtsSettings(voice=str(voice_dir()), max_input_chars=200)
    with serving_tiny(models_dir, cpu_threads=2, tts=tts) as live:
        assert live.app.state.tts.synthesizer.wait_loaded(60)
        yield live


def test_the_schema_documents_the_multipart_bodies_and_the_errors(
    fuzzed_server: LiveServer,
) -> None:
    spec = httpx.get(fuzzed_server.url + "/openapi.json", timeout=30).json()
    post = spec["paths"]["/v1/audio/transcriptions"]["post"]
    form = post["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["file"]
    assert form["properties"]["file"]["format"] == "binary"
    assert {
        "model",
        "language",
        "response_format",
        "timestamp_granularities[]",
        "vad_filter",
    } <= set(form["properties"])
    assert {"400", "401", "404", "413", "503"} <= set(post["responses"])
    assert post["responses"]["413"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }
    assert set(post["responses"]["200"]["content"]) == {
        "application/json",
        "text/plain",
        "text/event-stream",
    }
    assert "422" not in str(spec)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_generated_request_gets_a_500_or_an_undocumented_answer(
    fuzzed_server: LiveServer, mode: GenerationMode
) -> None:
    # Driven by hand rather than by schemathesis's pytest plugin, which does not run under
    # pytest 9: each operation gets its own bounded Hypothesis run; failures are collected.
    api = schemathesis.openapi.from_url(fuzzed_server.url + "/openapi.json")
    failures: list[str] = []
    skipped: list[str] = []
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) == 14  # 10 of transcription, 3 of speech (tts/router.py), /status

    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case) -> None:
            case.call_and_validate(checks=CHECKS, timeout=120)

        try:
            run()
        except Unsatisfiable:
            # Nothing of this operation can be sent wrong (no body, a string path parameter).
            assert mode == GenerationMode.NEGATIVE, operation.label
            skipped.append(operation.label)
        except Exception as exc:  # noqa: BLE001 (every operation's failure is reported)
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
    # The audio endpoints, where a hostile body does harm, always get their cases.
    assert not [label for label in skipped if label.startswith("POST /v1/audio/")], skipped


def test_the_fuzzed_server_still_transcribes(fuzzed_server: LiveServer, speech: Speech) -> None:
    with fuzzed_server.client() as http:
        resp = http.post("/v1/audio/transcriptions", files={"file": speech.command_wav.open("rb")})
        health = http.get("/health").json()
    assert resp.status_code == 200, resp.text
    assert "kitchen" in resp.json()["text"].lower()
    assert health["status"] == "ok"
