"""Bad input gets OpenAI's error body with the right status, and the server keeps working."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest
from stt_testkit import LiveServer, Speech, serving_tiny


def _post(http: httpx.Client, files=None, data=None, path="/v1/audio/transcriptions"):
    return http.post(path, files=files, data=data)


def _assert_error(resp: httpx.Response, status: int, param: str | None = None) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"}
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert isinstance(err["message"], str) and err["message"]
    if param is not None:
        assert err["param"] == param
    return err


def test_empty_upload_is_400(server: LiveServer) -> None:
    with server.client() as http:
        err = _assert_error(_post(http, files={"file": ("a.wav", b"", "audio/wav")}), 400, "file")
    assert "empty" in err["message"]


def test_undecodable_upload_is_400(server: LiveServer) -> None:
    junk = b"this is not audio at all\n" * 100
    with server.client() as http:
        err = _assert_error(_post(http, files={"file": ("a.mp3", junk, "audio/mpeg")}), 400, "file")
    assert "decode" in err["message"]


def test_header_only_wav_without_samples_is_400(server: LiveServer, speech: Speech) -> None:
    header = speech.command_wav.read_bytes()[:44]
    with server.client() as http:
        _assert_error(_post(http, files={"file": ("a.wav", header, "audio/wav")}), 400, "file")


def test_odd_length_raw_pcm_is_400(server: LiveServer) -> None:
    with server.client() as http:
        _assert_error(_post(http, files={"file": ("a.pcm", b"\x00" * 3, "audio/pcm")}), 400, "file")


def test_missing_file_field_is_400(server: LiveServer) -> None:
    with server.client() as http:
        _assert_error(_post(http, files={"other": ("a.wav", b"x")}, data={"model": "x"}), 400)
        _assert_error(http.post("/v1/audio/transcriptions", json={"model": "whisper-1"}), 400)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("response_format", "xml"),
        ("temperature", "hot"),
        ("temperature", "1.5"),
        ("language", "klingon"),
        ("timestamp_granularities[]", "sentence"),
        ("stream", "maybe"),
    ],
)
def test_bad_parameter_is_400_naming_it(
    server: LiveServer, speech: Speech, field: str, value: str
) -> None:
    with server.client() as http:
        resp = _post(http, files={"file": speech.command_wav.open("rb")}, data={field: value})
    err = _assert_error(resp, 400)
    assert err["param"] == field.removesuffix("[]")
    assert value in err["message"]


def test_word_timestamps_without_verbose_json_is_400(server: LiveServer, speech: Speech) -> None:
    with server.client() as http:
        resp = _post(
            http,
            files={"file": speech.command_wav.open("rb")},
            data={"timestamp_granularities[]": "word", "response_format": "json"},
        )
    _assert_error(resp, 400, "timestamp_granularities")


def test_english_only_model_refuses_translation_and_other_languages(
    server: LiveServer, speech: Speech
) -> None:
    with server.client() as http:
        resp = _post(
            http, files={"file": speech.french_wav.open("rb")}, path="/v1/audio/translations"
        )
        _assert_error(resp, 400, "model")
        resp = _post(http, files={"file": speech.french_wav.open("rb")}, data={"language": "fr"})
        _assert_error(resp, 400, "language")


def test_unknown_model_is_404_and_a_path_is_400(server: LiveServer, speech: Speech) -> None:
    with server.client() as http:
        resp = _post(
            http, files={"file": speech.command_wav.open("rb")}, data={"model": "no-such-model"}
        )
        err = _assert_error(resp, 404, "model")
        assert "no-such-model" in err["message"] and "tiny.en" in err["message"]
        resp = _post(
            http, files={"file": speech.command_wav.open("rb")}, data={"model": "/nonexistent/dir"}
        )
        err = _assert_error(resp, 400, "model")
    assert "is a path" in err["message"]


@pytest.fixture(scope="module")
def trusting_server(models_dir: Path):
    """A server whose operator lets clients name model directories (client_models any)."""
    with serving_tiny(models_dir, client_models="any") as live:
        yield live


def test_model_that_fails_to_load_is_503_with_reason(
    trusting_server: LiveServer, speech: Speech, tmp_path: Path, models_dir: Path
) -> None:
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text((models_dir / "tiny.en" / "config.json").read_text())
    (broken / "model.bin").write_bytes(b"\x00" * 1024)
    with trusting_server.client() as http:
        resp = _post(
            http, files={"file": speech.command_wav.open("rb")}, data={"model": str(broken)}
        )
    err = _assert_error(resp, 503, "model")
    assert "failed to load" in err["message"]
    assert str(broken) in err["message"]


def test_stream_of_a_model_that_fails_to_load_is_503_not_a_broken_stream(
    trusting_server: LiveServer, speech: Speech, tmp_path: Path
) -> None:
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "model.bin").write_bytes(b"garbage")
    with trusting_server.client() as http:
        resp = _post(
            http,
            files={"file": speech.command_wav.open("rb")},
            data={"model": str(broken), "stream": "true"},
        )
    _assert_error(resp, 503, "model")


def test_server_still_transcribes_after_bad_requests(server: LiveServer, speech: Speech) -> None:
    with server.client() as http:
        for _ in range(3):
            _post(http, files={"file": ("x.wav", b"RIFF....garbage", "audio/wav")})
        resp = _post(http, files={"file": speech.command_wav.open("rb")})
        health = http.get("/health").json()
    assert resp.status_code == 200
    assert "kitchen" in resp.json()["text"].lower()
    assert health["status"] == "ok"


@pytest.fixture(scope="module")
def small_limit_server(models_dir: Path):
    with serving_tiny(models_dir, max_upload_mb=0.05) as live:
        yield live


def test_upload_over_the_size_limit_is_413(small_limit_server: LiveServer) -> None:
    big = b"\x00" * (200 * 1024)  # 200 KiB against a 51 KiB limit
    with small_limit_server.client() as http:
        err = _assert_error(_post(http, files={"file": ("a.pcm", big, "audio/pcm")}), 413, "file")
        assert "limit" in err["message"]
        # Chunked upload without Content-Length: caught while reading the part.
        body = (
            b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.pcm"\r\n'
            b"Content-Type: audio/pcm\r\n\r\n" + big + b"\r\n--b--\r\n"
        )
        resp = http.post(
            "/v1/audio/transcriptions",
            content=iter([body]),
            headers={"Content-Type": "multipart/form-data; boundary=b"},
        )
        _assert_error(resp, 413, "file")
        small = b"\x00\x01" * 8000  # 0.5 s of raw PCM, under the limit
        ok = _post(http, files={"file": ("a.pcm", small, "audio/pcm")})
    assert ok.status_code == 200, ok.text


def test_openai_client_surfaces_status_and_message(server: LiveServer, speech: Speech) -> None:
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as bad:
        client.audio.transcriptions.create(
            model="whisper-1", file=("junk.mp3", b"not audio" * 50, "audio/mpeg")
        )
    assert "could not decode junk.mp3" in bad.value.message
    assert bad.value.body["param"] == "file"
    with pytest.raises(openai.NotFoundError) as missing, speech.command_wav.open("rb") as fh:
        client.audio.transcriptions.create(model="no-such-model", file=fh)
    assert "no-such-model" in missing.value.message
