"""The committed gRPC modules are what grpcio-tools generates from stt.proto today, and the
.proto holds whisper-streaming-stt-server's names and field numbers."""

from __future__ import annotations

from pathlib import Path

from aistack_stt.grpc_backend import generate
from google.protobuf import descriptor_pb2
from grpc_tools import protoc


def test_committed_stubs_are_generated_from_the_proto(tmp_path: Path) -> None:
    fresh = generate.generate(tmp_path)
    for name, text in fresh.items():
        committed = (generate.HERE / name).read_text()
        assert committed == text, (
            f"{name} differs from what stt.proto generates; run "
            "python -m aistack_stt.grpc_backend.generate"
        )


def _descriptor(tmp_path: Path) -> descriptor_pb2.FileDescriptorProto:
    """stt.proto as protoc reads it (parsed, not imported: no other test's stubs collide)."""
    out = tmp_path / "stt.desc"
    proto = generate.PROTO
    code = protoc.main(["protoc", f"-I{proto.parent}", f"--descriptor_set_out={out}", proto.name])
    assert code == 0
    return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]


def test_the_proto_is_the_wire_contract(tmp_path: Path) -> None:
    proto = _descriptor(tmp_path)
    numbers = {m.name: {f.name: f.number for f in m.field} for m in proto.message_type}
    assert numbers == {
        "SessionRequest": {
            "session_id": 1, "attributes": 2, "vad_mode": 3, "vad_silence": 4,
            "vad_threshold": 5, "require_token": 6, "language_code": 7, "task": 8,
            "decode_profile": 9,
        },
        "SessionResponse": {
            "attributes": 1, "vad_mode": 2, "vad_silence": 3, "vad_threshold": 4, "token": 5,
            "token_required": 6, "language_code": 7, "task": 8, "decode_profile": 9,
        },
        "AudioChunk": {
            "pcm16": 1, "sample_rate": 2, "is_final": 3, "session_id": 4, "session_token": 5,
        },
        "STTResult": {
            "text": 1, "is_final": 2, "start_sec": 3, "end_sec": 4, "language_code": 5,
            "language": 6, "probability": 7,
        },
    }  # fmt: skip
    enums = {e.name: {v.name: v.number for v in e.value} for e in proto.enum_type}
    assert enums == {
        "VADMode": {"VAD_CONTINUE": 0, "VAD_AUTO_END": 1},
        "Task": {"TASK_UNSPECIFIED": 0, "TASK_TRANSCRIBE": 1, "TASK_TRANSLATE": 2},
        "DecodeProfile": {
            "DECODE_PROFILE_UNSPECIFIED": 0, "DECODE_PROFILE_REALTIME": 1,
            "DECODE_PROFILE_ACCURATE": 2,
        },
    }  # fmt: skip
    assert proto.package == "stt"
    (service,) = proto.service
    assert service.name == "STTBackend"
    methods = {m.name: (m.client_streaming, m.server_streaming) for m in service.method}
    assert methods == {"CreateSession": (False, False), "StreamingRecognize": (True, True)}
