#!/usr/bin/env python3
"""Load test for OpenAI-compatible speech-to-text servers (and bare faster-whisper).

    stt_load.py run --url http://host:8000/v1 [--profiles ...]      one server
    stt_load.py compare [--out bench/results]                       the side-by-side run

`run` targets any OpenAI-compatible base URL with the official `openai` client (no retries:
a refused request counts as failed). `compare` starts aistack-stt and faster-whisper-server
(from its own venv, bench/.venv-fws, or --fws-exe) on local ports, loads the same model
directory into both and into bare faster-whisper, all on --device with --compute-type, runs
every profile against each in turn, and writes results.json, a Markdown table and a PNG plot.

Profiles
  command      20 voice commands (~4 s) one after another (not in the default set)
  sequential   20 requests of the ~25 s clip, one after another
  burst-N      N simultaneous requests: 8 and 16 of the ~25 s clip, 64 and 256 of a ~3 s
               command (the same clip for all four with --burst-clip long)
  mixed        4 three-minute recordings at once, and meanwhile a voice command every second
               (open loop, 20 commands); compared with 10 commands on the idle server

Every answer is checked: a request counts as correct when its text holds at least 70 % of
the words of the script the clip was synthesized from (espeak-ng, so the reference is known).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchdoc import ROOT, free_port, start_process  # noqa: E402

LONG_TEXT = (
    "The quick brown fox jumps over the lazy dog. A speech server in a small home lab gets "
    "bursts of requests from a family talking to their assistant, while someone transcribes "
    "a long recording of a meeting. Short voice commands must stay fast while long files run, "
    "and overload must be refused cleanly instead of piling up."
)
COMMAND_TEXT = "Turn on the kitchen lights and set a timer for ten minutes."
RECORDING_REPEATS = 7  # the long clip seven times, with pauses: about three minutes


@dataclass(frozen=True)
class Clip:
    name: str
    data: bytes
    seconds: float
    words: tuple[str, ...]


@dataclass
class Outcome:
    ok: bool
    correct: bool
    latency: float
    status: str
    started: float = 0.0


@dataclass
class ProfileResult:
    profile: str
    clip: str
    requests: int
    ok: int
    correct: int
    failed: int
    wall_s: float
    audio_s: float
    throughput_rps: float
    audio_per_s: float
    p50_s: float
    p95_s: float
    max_s: float
    statuses: dict[str, int] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


# -- clips -----------------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower().replace("10", "ten"))


def _synth(text: str, out: Path) -> np.ndarray:
    raw = out.with_suffix(".raw.wav")
    # A machine without espeak-ng (a lent GPU) replays what bench/gpu_stage.sh synthesized here.
    cached = os.environ.get("AISTACK_SPEECH_DIR")
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    if cached and (Path(cached) / f"en-us-{digest}.wav").is_file():
        shutil.copyfile(Path(cached) / f"en-us-{digest}.wav", raw)
    elif shutil.which("espeak-ng") is None:
        sys.exit(
            "stt_load: espeak-ng is needed to synthesize the clips (apt-get install espeak-ng)"
        )
    else:
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(raw), text], check=True)
    if shutil.which("sox"):
        subprocess.run(
            ["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(out)], check=True
        )
        with wave.open(str(out)) as w:
            return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return _resample_16k(raw)  # no sox (a lent GPU machine): PyAV, which faster-whisper brings


def _resample_16k(path: Path) -> np.ndarray:
    from faster_whisper import decode_audio  # PyAV underneath; exact for 16-bit samples

    return (decode_audio(str(path)) * 32768).astype("<i2")


def _wav(samples: np.ndarray) -> bytes:
    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        with wave.open(f.name, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes(samples.astype("<i2").tobytes())
        return Path(f.name).read_bytes()


def make_clips(d: Path) -> dict[str, Clip]:
    d.mkdir(parents=True, exist_ok=True)
    long = _synth(LONG_TEXT, d / "long.wav")
    command = _synth(COMMAND_TEXT, d / "command.wav")
    pause = np.zeros(16000, dtype="<i2")
    recording = np.tile(np.concatenate([long, pause]), RECORDING_REPEATS)
    return {
        "long": Clip("long", _wav(long), len(long) / 16000, tuple(_words(LONG_TEXT))),
        "command": Clip(
            "command", _wav(command), len(command) / 16000, tuple(_words(COMMAND_TEXT))
        ),
        "recording": Clip(
            "recording",
            _wav(recording),
            len(recording) / 16000,
            tuple(_words(LONG_TEXT)),  # every repeat holds them all
        ),
    }


def is_correct(text: str, clip: Clip) -> bool:
    said = set(_words(text))
    wanted = set(clip.words)
    return len(wanted & said) >= 0.7 * len(wanted)


# -- targets ---------------------------------------------------------------------------------


class HttpTarget:
    """Any OpenAI-compatible server, through the official client (retries off)."""

    def __init__(self, base_url: str, model: str, api_key: str = "none", timeout: float = 1800):
        from openai import AsyncOpenAI

        self.http = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=1024, max_keepalive_connections=64),
            timeout=timeout,
        )
        self.client = AsyncOpenAI(
            base_url=base_url, api_key=api_key, max_retries=0, http_client=self.http
        )
        self.model = model

    async def transcribe(self, clip: Clip) -> tuple[str, str]:
        import openai

        try:
            result = await self.client.audio.transcriptions.create(
                model=self.model, file=(f"{clip.name}.wav", clip.data, "audio/wav")
            )
        except openai.APIStatusError as exc:
            return "", str(exc.status_code)
        except openai.APIConnectionError as exc:
            return "", type(exc).__name__
        return result.text, "200"

    async def close(self) -> None:
        await self.http.aclose()


class BareTarget:
    """faster-whisper in this process, its defaults, one model: what a script would do."""

    def __init__(self, model_dir: str, device: str = "cpu", compute_type: str = "int8") -> None:
        from faster_whisper import WhisperModel

        self.model = WhisperModel(model_dir, device=device, compute_type=compute_type)

    async def transcribe(self, clip: Clip) -> tuple[str, str]:
        import io

        def run() -> str:
            segments, _ = self.model.transcribe(io.BytesIO(clip.data))
            return "".join(s.text for s in segments)

        return await asyncio.to_thread(run), "200"

    async def close(self) -> None:
        pass


# -- profiles --------------------------------------------------------------------------------


async def _one(target, clip: Clip, t0: float) -> Outcome:
    started = time.perf_counter()
    text, status = await target.transcribe(clip)
    took = time.perf_counter() - started
    return Outcome(
        status == "200", status == "200" and is_correct(text, clip), took, status, started - t0
    )


def _summary(
    profile: str, clip: Clip | str, outcomes: list[Outcome], wall: float, audio: float, **extra
) -> ProfileResult:
    lat = sorted(o.latency for o in outcomes)
    statuses: dict[str, int] = {}
    for o in outcomes:
        statuses[o.status] = statuses.get(o.status, 0) + 1
    correct = sum(o.correct for o in outcomes)
    return ProfileResult(
        profile=profile,
        clip=clip.name if isinstance(clip, Clip) else clip,
        requests=len(outcomes),
        ok=sum(o.ok for o in outcomes),
        correct=correct,
        failed=len(outcomes) - correct,
        wall_s=round(wall, 3),
        audio_s=round(audio, 1),
        throughput_rps=round(len(outcomes) / wall, 3) if wall else 0.0,
        audio_per_s=round(audio / wall, 2) if wall else 0.0,
        p50_s=round(_pct(lat, 50), 3),
        p95_s=round(_pct(lat, 95), 3),
        max_s=round(lat[-1], 3) if lat else 0.0,
        statuses=statuses,
        extra=extra,
    )


def _pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    k = (len(values) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


async def sequential(target, clip: Clip, n: int = 20, name: str = "sequential") -> ProfileResult:
    t0 = time.perf_counter()
    outcomes = [await _one(target, clip, t0) for _ in range(n)]
    return _summary(name, clip, outcomes, time.perf_counter() - t0, n * clip.seconds)


async def burst(target, clip: Clip, n: int) -> ProfileResult:
    t0 = time.perf_counter()
    outcomes = await asyncio.gather(*(_one(target, clip, t0) for _ in range(n)))
    return _summary(f"burst-{n}", clip, list(outcomes), time.perf_counter() - t0, n * clip.seconds)


async def mixed(
    target, clips: dict[str, Clip], longs: int = 4, commands: int = 20, every: float = 1.0
) -> ProfileResult:
    """Commands arrive every `every` s, or every 2 × idle p50 when the machine is slower.

    The profile measures what long files do to commands, so the commands alone must not
    saturate the server: at one per second, a machine needing 2 s per command would queue
    them without any long file running, and the figure would measure that instead.
    """
    command, recording = clips["command"], clips["recording"]
    idle = [await _one(target, command, 0.0) for _ in range(10)]
    idle_p50 = statistics.median(o.latency for o in idle)
    every = max(every, 2 * idle_p50)
    t0 = time.perf_counter()
    long_tasks = [asyncio.ensure_future(_one(target, recording, t0)) for _ in range(longs)]
    await asyncio.sleep(2.0)  # the recordings are uploaded and running
    short_tasks = []
    for i in range(commands):
        short_tasks.append(asyncio.ensure_future(_one(target, command, t0)))
        await asyncio.sleep(max(0.0, t0 + 2.0 + (i + 1) * every - time.perf_counter()))
    shorts = list(await asyncio.gather(*short_tasks))
    long_done = list(await asyncio.gather(*long_tasks))
    wall = time.perf_counter() - t0
    lat = sorted(o.latency for o in shorts)
    result = _summary(
        "mixed",
        "command",
        shorts,
        wall,
        longs * recording.seconds + commands * command.seconds,
        idle_p50_s=round(idle_p50, 3),
        command_every_s=round(every, 2),
        p95_over_idle_p50=round(_pct(lat, 95) / idle_p50, 2),
        long_ok=sum(o.correct for o in long_done),
        long_requests=len(long_done),
        long_p50_s=round(statistics.median(o.latency for o in long_done), 2),
        longs_still_running_at_last_command=sum(
            1 for o in long_done if o.started + o.latency > shorts[-1].started
        ),
    )
    result.failed += len(long_done) - result.extra["long_ok"]
    return result


PROFILES = ("sequential", "burst-8", "burst-16", "burst-64", "burst-256", "mixed")
# `command`: 20 voice commands (~4 s) one after another, the latency a speaker waits for.
CHOICES = ("command", *PROFILES)


async def run_profiles(target, clips: dict[str, Clip], profiles, burst_clip: str, log) -> list:
    results = []
    await _one(target, clips["command"], 0.0)  # warm up: model loaded, first call paid
    for name in profiles:
        started = time.perf_counter()
        if name == "sequential":
            r = await sequential(target, clips["long"])
        elif name == "command":
            r = await sequential(target, clips["command"], name="command")
        elif name.startswith("burst-"):
            n = int(name.split("-", 1)[1])
            clip = clips["long"] if n <= 16 or burst_clip == "long" else clips["command"]
            r = await burst(target, clip, n)
        elif name == "mixed":
            r = await mixed(target, clips)
        else:
            raise SystemExit(f"stt_load: unknown profile {name!r}; use {', '.join(CHOICES)}")
        log(
            f"  {name:<11} {r.correct}/{r.requests} correct  wall {r.wall_s:7.1f} s  "
            f"p50 {r.p50_s:6.2f} s  p95 {r.p95_s:6.2f} s  "
            f"({time.perf_counter() - started:.0f} s)  {json.dumps(r.extra) if r.extra else ''}"
        )
        results.append(r)
    return results


# -- servers for `compare` -------------------------------------------------------------------


def _wait_http(url: str, proc: subprocess.Popen, limit: float = 180) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(
                f"stt_load: server exited with {proc.returncode} before {url} answered"
            )
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"stt_load: {url} did not answer within {limit:.0f} s")


def start_aistack(
    model_dir: Path,
    port: int,
    log_file,
    tuning: dict,
    src: str | None = None,
    device: str = "cpu",
    compute_type: str = "int8",
):
    """aistack-stt (this checkout's stt/src, or `src`: another checkout's, for before/after)
    through the harness the tests use, once ready."""
    return start_process(
        {
            "AISTACK_STT_MODEL": str(model_dir),
            "AISTACK_STT_DEVICE": device,
            "AISTACK_STT_COMPUTE_TYPE": compute_type,
            "AISTACK_STT_LOG_LEVEL": "warning",
            **tuning,
        },
        log=log_file,
        port=port,
        src=Path(src).resolve() if src else None,
    )


def start_fws(
    model_dir: Path,
    port: int,
    work: Path,
    log_file,
    device: str = "cpu",
    compute_type: str = "int8",
    exe: Path | None = None,
) -> subprocess.Popen:
    """faster-whisper-server with its defaults, told only where the model is, the device and
    the compute type."""
    exe = exe or ROOT / "bench/.venv-fws/bin/faster-whisper-server"
    if not exe.exists():
        raise SystemExit(
            "stt_load: faster-whisper-server is not installed; run: python3 -m venv "
            "bench/.venv-fws && bench/.venv-fws/bin/pip install faster-whisper-server matplotlib"
        )
    config = work / "fws.yaml"
    # OpenAI clients send the field `model`, which this server ignores in favour of its own
    # `model_name` form field (default whisper-1), so the model is registered under that name.
    config.write_text(
        "models:\n"
        "  - name: whisper-1\n"
        f"    path: {model_dir}\n"
        f"    model_options: {{device: {device}, compute_type: {compute_type}}}\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [str(exe), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    _wait_http(f"http://127.0.0.1:{port}/health", proc)
    return proc


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def _run_target(target, clips, profiles, burst_clip, log) -> list:
    try:
        return await run_profiles(target, clips, profiles, burst_clip, log)
    finally:
        await target.close()


def compare(args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    clips = make_clips(out / "clips")
    model_dir = Path(args.model_dir).resolve()
    profiles = args.profiles or list(PROFILES)
    report: dict = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "host": {"cpus": os.cpu_count(), "loadavg_before": os.getloadavg()},
        "clips": {k: round(c.seconds, 2) for k, c in clips.items()},
        "model": str(model_dir),
        "device": args.device,
        "compute_type": args.compute_type,
        "targets": {},
    }

    def log(msg: str) -> None:
        print(msg, flush=True)

    targets = args.targets
    with open(out / "servers.log", "w") as server_log:
        for name in targets:
            log(f"{name}:")
            t_start, load0 = time.time(), os.getloadavg()[0]
            proc = aistack = None
            if name.split("@")[0].split("=")[0] == "aistack-stt":
                # aistack-stt@AISTACK_STT_MAX_BATCH=1,AISTACK_STT_BULK_NICE=0 tries a variant;
                # aistack-stt=/tmp/old/stt/src runs another checkout's code (before/after).
                base, _, variant = name.partition("@")
                src = base.partition("=")[2] or None
                tuning = dict(kv.split("=", 1) for kv in variant.split(",") if kv)
                port = free_port()
                aistack = start_aistack(
                    model_dir, port, server_log, tuning, src, args.device, args.compute_type
                )
                target = HttpTarget(f"http://127.0.0.1:{port}/v1", "whisper-1")
            elif name == "faster-whisper-server":
                port = free_port()
                fws_exe = Path(args.fws_exe) if args.fws_exe else None
                proc = start_fws(
                    model_dir, port, out, server_log, args.device, args.compute_type, fws_exe
                )
                target = HttpTarget(f"http://127.0.0.1:{port}/v1", "whisper-1")
            elif name == "faster-whisper":
                target = BareTarget(str(model_dir), args.device, args.compute_type)
            else:
                raise SystemExit(f"stt_load: unknown target {name}")
            try:
                results = asyncio.run(_run_target(target, clips, profiles, args.burst_clip, log))
            finally:
                if aistack is not None:
                    aistack.stop()
                if proc is not None:
                    _stop(proc)
            key, n = name, 1
            while key in report["targets"]:  # a target named twice: runs interleaved
                n += 1
                key = f"{name} #{n}"
            report["targets"][key] = {
                "results": [asdict(r) for r in results],
                "seconds": round(time.time() - t_start),
                "loadavg_1m": [round(load0, 2), round(os.getloadavg()[0], 2)],
            }
            (out / "results.json").write_text(json.dumps(report, indent=2))
    log(f"results: {out / 'results.json'}")
    print(markdown(report))


def markdown(report: dict) -> str:
    names = list(report["targets"])
    rows = ["| profile | clip | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    by = {n: {r["profile"]: r for r in report["targets"][n]["results"]} for n in names}
    for profile in by[names[0]]:
        first = by[names[0]][profile]
        cells = []
        for n in names:
            r = by[n].get(profile)
            if r is None:
                cells.append("–")
                continue
            cell = (
                f"{r['audio_per_s']:.1f} audio-s/s, p50 {r['p50_s']:.2f} s, "
                f"p95 {r['p95_s']:.2f} s, {r['failed']} failed"
            )
            if profile == "mixed":
                cell = (
                    f"command p50 {r['p50_s']:.2f} s, p95 {r['p95_s']:.2f} s "
                    f"(idle p50 {r['extra']['idle_p50_s']:.2f} s, ratio "
                    f"{r['extra']['p95_over_idle_p50']:.1f}), {r['failed']} failed"
                )
            cells.append(cell)
        rows.append(f"| {profile} | {first['clip']} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def run_one(args) -> None:
    clips = make_clips(Path(args.out) / "clips")
    target = HttpTarget(args.url, args.model, args.api_key or "none")
    results = asyncio.run(
        _run_target(target, clips, args.profiles or list(PROFILES), args.burst_clip, print)
    )
    report = {"targets": {args.url: {"results": [asdict(r) for r in results]}}}
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "run.json").write_text(json.dumps(report, indent=2))
    print(markdown(report))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("run", help="run profiles against one OpenAI-compatible URL")
    one.add_argument("--url", required=True, help="base URL, e.g. http://10.100.1.10:8000/v1")
    one.add_argument("--model", default="whisper-1")
    one.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY"))
    cmp_ = sub.add_parser("compare", help="aistack-stt vs faster-whisper-server vs faster-whisper")
    cmp_.add_argument("--model-dir", default=str(ROOT / ".cache/models/tiny.en"))
    cmp_.add_argument(
        "--targets",
        nargs="+",
        default=["aistack-stt", "faster-whisper-server", "faster-whisper"],
    )
    cmp_.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    cmp_.add_argument("--compute-type", default="int8", help="the same for every target")
    cmp_.add_argument(
        "--fws-exe", help="faster-whisper-server executable (default bench/.venv-fws/bin/...)"
    )
    for p in (one, cmp_):
        p.add_argument("--profiles", nargs="+", choices=CHOICES)
        p.add_argument(
            "--burst-clip",
            choices=("auto", "long"),
            default="auto",
            help="auto: ~25 s clip up to 16, ~3 s command above; long: always 25 s",
        )
        p.add_argument("--out", default=str(ROOT / "bench/results/stt_load"))
    rep = sub.add_parser("report", help="merge results.json files; print the Markdown table")
    rep.add_argument("results", nargs="+")
    rep.add_argument("--out", help="write the merged results.json here")
    args = parser.parse_args()
    if args.command == "report":
        merged: dict = {}
        for path in args.results:
            part = json.loads(Path(path).read_text())
            targets = {**merged.get("targets", {}), **part["targets"]}
            merged = {**part, **merged, "targets": targets}
        if args.out:
            Path(args.out).write_text(json.dumps(merged, indent=2))
        print(markdown(merged))
        return
    # A SIGTERM unwinds like Ctrl-C, so the servers this run started are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.command == "run":
        run_one(args)
    else:
        compare(args)


if __name__ == "__main__":
    main()
