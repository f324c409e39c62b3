"""`SessionRequest` → the live session's options, and the resolved options → `SessionResponse`."""

from __future__ import annotations

from ..live.options import OptionError, StreamOptions, parse_options
from . import stt_pb2 as pb
from .errors import Refusal

MODES = {pb.VAD_CONTINUE: "continue", pb.VAD_AUTO_END: "auto_end"}
TASKS = {pb.TASK_UNSPECIFIED: "transcribe", pb.TASK_TRANSCRIBE: "transcribe"}
TASKS[pb.TASK_TRANSLATE] = "translate"
PROFILES = {pb.DECODE_PROFILE_REALTIME: "realtime", pb.DECODE_PROFILE_ACCURATE: "accurate"}


def session_options(request: pb.SessionRequest, defaults: StreamOptions) -> StreamOptions:
    """The request's options over `defaults` (zero values mean "the default", as in proto3)."""
    for field, value, known in (
        ("vad_mode", request.vad_mode, MODES),
        ("task", request.task, TASKS),
        ("decode_profile", request.decode_profile, {0: None, **PROFILES}),
    ):
        if value not in known:
            raise Refusal("INVALID_ARGUMENT", "invalid_option", f"{field} {value} is not known")
    start: dict = {"mode": MODES[request.vad_mode], "task": TASKS[request.task]}
    if request.vad_silence:
        start["vad_silence_ms"] = round(request.vad_silence * 1000)
    if request.vad_threshold:
        start["vad_threshold"] = request.vad_threshold
    if request.language_code:
        start["language"] = request.language_code
    if request.decode_profile:
        start["profile"] = PROFILES[request.decode_profile]
    if request.attributes.get("capture", "").strip().lower() in ("false", "0", "no", "off"):
        start["capture"] = False  # never kept, even where the server captures sessions
    try:
        return parse_options(start, defaults)
    except OptionError as exc:
        message = str(exc)
        if exc.param == "vad_silence_ms":
            message = f"vad_silence {request.vad_silence!r} must be 0.1-5 seconds (0: default)"
        raise Refusal("INVALID_ARGUMENT", "invalid_option", message) from None


def session_response(
    options: StreamOptions, attributes: dict[str, str], token: str | None, profile: str
) -> pb.SessionResponse:
    """What the session will run with: every default resolved."""
    return pb.SessionResponse(
        attributes=attributes,
        vad_mode=pb.VAD_AUTO_END if options.mode == "auto_end" else pb.VAD_CONTINUE,
        vad_silence=options.vad_silence_ms / 1000,
        vad_threshold=options.vad_threshold,
        token=token or "",
        token_required=token is not None,
        language_code=options.language or "",
        task=pb.TASK_TRANSLATE if options.task == "translate" else pb.TASK_TRANSCRIBE,
        decode_profile={v: k for k, v in PROFILES.items()}.get(
            options.profile or profile, pb.DECODE_PROFILE_UNSPECIFIED
        ),
    )
