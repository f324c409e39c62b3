#!/usr/bin/env python3
"""The voice path as a person uses it: words and latency of spoken commands via Open WebUI.

Usage: .venv/bin/python bench/voice_path.py --owui-python /tmp/owui-venv/bin/python
           [--rounds N] [--model DIR] [--voices N] [--language-check MODEL_DIR] [--write]

Open WebUI (pinned version, from PyPI, in its own virtual environment: `python3 -m venv
/tmp/owui-venv && /tmp/owui-venv/bin/pip install open-webui==0.12.4`) runs twice on this
host, once as the open_webui role used to run it (recordings converted to mp3 by pydub and
ffmpeg before they are posted to the STT URL) and once with BYPASS_PYDUB_PREPROCESSING=true
(the browser's recording is posted as it came). Both talk to one aistack-stt server
(`aistack-stt serve`, a separate process as in production).

The commands of the generated corpus (bench/voice_corpus.py: espeak-ng, four voices) are
encoded as a browser records them, WebM/Opus at 48 kHz by ffmpeg, and each is sent
(a) to aistack-stt directly, (b) to Open WebUI's /api/v1/audio/transcriptions, converting,
(c) to the same endpoint of the bypassing instance. The three paths alternate request by
request (a shared machine's load hits them alike); latency is the client's wall time per
request. Targets: through Open WebUI, WER within 0.01 of direct and median latency at most
1.3 x direct. `--write` replaces the section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import voice_corpus  # noqa: E402
from benchdoc import free_port, publish, start_process

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Voice path through Open WebUI"
PATHS = ("direct", "owui-mp3", "owui-bypass")
LABELS = {
    "direct": "(a) aistack-stt directly",
    "owui-mp3": "(b) Open WebUI, converted to mp3 (its default)",
    "owui-bypass": "(c) Open WebUI, BYPASS_PYDUB_PREPROCESSING=true",
}


def wait_ready(url: str, proc: subprocess.Popen, what: str, timeout: float = 240) -> None:
    """Open WebUI's readiness (its /health answers 200); aistack-stt's is the harness's."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}; see its log")
        time.sleep(0.5)
    raise SystemExit(f"{what} did not become ready within {timeout:.0f} s")


def start_stt(model: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """`aistack-stt serve` (this checkout's code), once ready."""
    server = start_process({
        "AISTACK_STT_MODEL": str(model),
        "AISTACK_STT_DEVICE": "cpu",
        "AISTACK_STT_COMPUTE_TYPE": "int8",
        "AISTACK_STT_LOG_LEVEL": "warning",
    }, log=log, timeout=240)
    return server.proc, server.url


def start_owui(python: Path, stt_url: str, data: Path, bypass: bool, log: Path):
    """One Open WebUI with the environment the open_webui role writes (plus the bypass)."""
    port = free_port()
    data.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env.update(
        DATA_DIR=str(data),
        STATIC_DIR=str(data / "static"),
        ENV="prod",
        OFFLINE_MODE="true",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        ANONYMIZED_TELEMETRY="false",
        DO_NOT_TRACK="true",
        SCARF_NO_ANALYTICS="true",
        ENABLE_OLLAMA_API="false",
        ENABLE_OPENAI_API="false",
        WEBUI_SECRET_KEY="voice-path-bench",
        AUDIO_STT_ENGINE="openai",
        AUDIO_STT_OPENAI_API_BASE_URL=stt_url + "/v1",
        AUDIO_STT_OPENAI_API_KEY="unused",
        AUDIO_STT_MODEL="whisper-1",
        BYPASS_PYDUB_PREPROCESSING="true" if bypass else "false",
    )
    exe = python.parent / "open-webui"
    with log.open("w") as out:
        proc = subprocess.Popen([str(exe), "serve", "--host", "127.0.0.1", "--port", str(port)],
                                env=env, cwd=data, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_ready(url + "/health", proc, "Open WebUI")
    resp = httpx.post(
        url + "/api/v1/auths/signup",
        json={"name": "Bench", "email": "bench@example.com", "password": "bench-Passw0rd"},
        timeout=60,
    )
    resp.raise_for_status()
    return proc, url, resp.json()["token"]


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except (PermissionError, ProcessLookupError):
            proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def browser_recording(wav: Path, out: Path) -> Path:
    """WebM/Opus at 48 kHz, what Chrome's MediaRecorder hands to Open WebUI."""
    if not out.exists():
        subprocess.run(
            [voice_corpus.need("ffmpeg"), "-nostdin", "-loglevel", "error", "-i", str(wav),
             "-ar", "48000", "-ac", "1", "-c:a", "libopus", "-b:a", "32k", str(out)],
            check=True,
        )  # fmt: skip
    return out


@dataclass
class PathResult:
    latencies: list[float] = field(default_factory=list)
    edits: int = 0
    words: int = 0
    differs: int = 0  # clips whose text differs from the direct path's

    @property
    def wer(self) -> float:
        return self.edits / max(self.words, 1)


def post(client: httpx.Client, url: str, token: str | None, clip: Path) -> tuple[float, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    files = {"file": ("recording.wav", clip.read_bytes(), "audio/webm")}
    data = {"model": "whisper-1"} if token is None else {}
    started = time.perf_counter()
    resp = client.post(url, files=files, data=data, headers=headers)
    elapsed = time.perf_counter() - started
    if resp.status_code != 200:
        raise SystemExit(f"{url} answered {resp.status_code}: {resp.text[:300]}")
    return elapsed, resp.json()["text"]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def start_stack(
    python: Path, model: Path, work: Path, owuis: dict[str, bool], procs: list
) -> tuple[str, dict[str, tuple[str, str]]]:
    """aistack-stt serving `model` and one Open WebUI per name in `owuis` (True: bypassing
    pydub), each with its directory and log in `work`, every process added to `procs` (the
    caller stops them): aistack-stt's URL and each Open WebUI's (URL, token)."""
    stt, stt_url = start_stt(model, work / "stt.log")
    procs.append(stt)
    owui = {}
    for name, bypass in owuis.items():
        proc, url, token = start_owui(python, stt_url, work / name, bypass, work / f"{name}.log")
        procs.append(proc)
        owui[name] = (url, token)
    return stt_url, owui


def run(args: argparse.Namespace) -> tuple[dict[str, PathResult], dict]:
    work = Path(tempfile.mkdtemp(prefix="voice-path-"))
    clips = [c for c in voice_corpus.build(work / "corpus", voices=args.voices)
             if c.kind == "command"]  # fmt: skip
    webms = {c.name: browser_recording(c.path, work / f"{c.name}.webm") for c in clips}
    procs = []
    try:
        owuis = {"owui-mp3": False, "owui-bypass": True}
        stt_url, owui = start_stack(args.owui_python, args.model, work, owuis, procs)
        targets = {"direct": (stt_url + "/v1/audio/transcriptions", None)}
        for name, (url, token) in owui.items():
            targets[name] = (url + "/api/v1/audio/transcriptions", token)
        results = {p: PathResult() for p in PATHS}
        with httpx.Client(timeout=120) as client:
            first = webms[clips[0].name]
            for p in PATHS:  # warm up: model, Open WebUI's imports, pydub
                for _ in range(2):
                    post(client, *targets[p], first)
            for r in range(args.rounds):
                for n, clip in enumerate(clips):
                    texts = {}
                    # Rotate the order so no path always goes first after a pause.
                    order = PATHS[(n + r) % 3 :] + PATHS[: (n + r) % 3]
                    for p in order:
                        elapsed, texts[p] = post(client, *targets[p], webms[clip.name])
                        results[p].latencies.append(elapsed)
                    if r == 0:
                        for p in PATHS:
                            edits, words = voice_corpus.wer(clip.text, texts[p])
                            results[p].edits += edits
                            results[p].words += words
                            results[p].differs += texts[p].strip() != texts["direct"].strip()
        pairs = {
            p: statistics.median(
                x / d
                for x, d in zip(
                    results[p].latencies, results["direct"].latencies, strict=True
                )  # fmt: skip
            )
            for p in PATHS
        }
        meta = {"clips": len(clips), "rounds": args.rounds, "paired": pairs}
        return results, meta
    finally:
        for proc in reversed(procs):
            stop(proc)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


FRENCH = "Bonjour, je voudrais un café et un croissant, s'il vous plaît."


def language_check(args: argparse.Namespace) -> str:
    """French speech through Open WebUI (bypassing) with a multilingual model: picked or not."""
    work = Path(tempfile.mkdtemp(prefix="voice-language-"))
    raw = voice_corpus.speak(FRENCH, "fr", 150, work / "french.wav")
    webm = browser_recording(raw, work / "french.webm")
    procs = []
    lines = [
        "",
        f"Language through Open WebUI (bypassing, model `{args.language_check.name}`): the "
        "French sentence recorded as WebM/Opus, posted with the user's Speech-to-Text "
        "language as Open WebUI's frontend sends it:",
        "",
    ]
    try:
        _, owui = start_stack(args.owui_python, args.language_check, work, {"owui": True}, procs)
        url, token = owui["owui"]
        with httpx.Client(timeout=120) as client:
            for language in ("fr", None, "en"):
                resp = client.post(
                    url + "/api/v1/audio/transcriptions",
                    files={"file": ("recording.wav", webm.read_bytes(), "audio/webm")},
                    data={"language": language} if language else {},
                    headers={"Authorization": f"Bearer {token}"},
                )
                resp.raise_for_status()
                label = f"`language={language}`" if language else "no language (detected)"
                lines.append(f"- {label}: {resp.json()['text']!r}")
    finally:
        for proc in reversed(procs):
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)
    return "\n".join(lines) + "\n"


def table(results: dict[str, PathResult], meta: dict, args: argparse.Namespace) -> str:
    direct = statistics.median(results["direct"].latencies)
    lines = [
        SECTION,
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d} with `bench/voice_path.py` on {platform.node()} "
        f"({os.cpu_count()} cores, shared with other work: figures are medians and ratios "
        "of requests interleaved path by path, not absolute speeds). Model "
        f"`{args.model.name}` (int8, CPU), Open WebUI 0.12.4 from PyPI on the same host; "
        f"{meta['clips']} spoken commands (espeak-ng, {args.voices} voices) as WebM/Opus "
        f"48 kHz, {meta['rounds']} rounds.",
        "",
        "| path | WER | clips with other words than direct | p50 s | p95 s | p50 / direct | "
        "paired median ratio |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for p in PATHS:
        r = results[p]
        p50 = statistics.median(r.latencies)
        lines.append(
            f"| {LABELS[p]} | {r.wer:.3f} | {r.differs} of {meta['clips']} | {p50:.3f} | "
            f"{pct(r.latencies, 0.95):.3f} | {p50 / direct:.2f} | {meta['paired'][p]:.2f} |"
        )
    bp, mp3 = results["owui-bypass"], results["owui-mp3"]
    ok = (
        abs(bp.wer - results["direct"].wer) <= 0.01
        and statistics.median(bp.latencies) <= 1.3 * direct
    )
    lines += [
        "",
        "Targets (WER within 0.01 of direct, median at most 1.3 x direct): "
        f"bypass {'met' if ok else 'NOT met'}; mp3 conversion "
        f"WER {mp3.wer - results['direct'].wer:+.3f}, median "
        f"{statistics.median(mp3.latencies) / direct:.2f} x direct. The open_webui role "
        "therefore sets `BYPASS_PYDUB_PREPROCESSING=true` (`open_webui_stt_bypass_conversion`).",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--owui-python", type=Path, required=True,
                        help="python of a venv with open-webui==0.12.4")  # fmt: skip
    parser.add_argument("--model", type=Path, default=ROOT / ".cache" / "models" / "tiny.en")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--voices", type=int, default=len(voice_corpus.VOICES))
    parser.add_argument("--keep", action="store_true", help="keep the work directory and logs")
    parser.add_argument(
        "--language-check",
        type=Path,
        metavar="MODEL_DIR",
        help="also post French through Open WebUI to this multilingual model",
    )
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    results, meta = run(args)
    text = table(results, meta, args)
    if args.language_check:
        text += language_check(args)
    publish(SECTION, text, args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
