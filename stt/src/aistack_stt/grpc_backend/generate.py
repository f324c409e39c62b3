"""Regenerate stt_pb2.py and stt_pb2_grpc.py from stt.proto (needs grpcio-tools).

The generated modules are committed, so the wheel and the server need only grpcio and
protobuf at run time; tests/test_grpc_stubs.py regenerates them and fails when they differ
from the committed ones. Run: python -m aistack_stt.grpc_backend.generate [OUT_DIR]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1]  # the directory holding aistack_stt/
PROTO = HERE / "stt.proto"
GENERATED = ("stt_pb2.py", "stt_pb2_grpc.py")


def generate(out: Path) -> dict[str, str]:
    """Generate into `out` (laid out like SRC); returns the generated files' text by name."""
    from grpc_tools import protoc

    rel = PROTO.relative_to(SRC)
    code = protoc.main(
        ["protoc", f"-I{SRC}", f"--python_out={out}", f"--grpc_python_out={out}", str(rel)]
    )
    if code != 0:
        raise RuntimeError(f"protoc failed on {PROTO} (exit {code})")
    target = out / rel.parent
    return {name: (target / name).read_text() for name in GENERATED}


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        files = generate(Path(tmp))
    dest = Path(argv[0]) if argv else HERE
    for name, text in files.items():
        (dest / name).write_text(text)
        print(f"wrote {dest / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
