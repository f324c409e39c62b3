#!/usr/bin/env bash
# Prepare, on this machine, everything bench/gpu_run.sh needs on a lent NVIDIA GPU machine.
#
# That machine reaches no package registry and has no espeak-ng, and one device call carries
# at most 64 MiB. So this script gathers, for its Python (3.12 by default):
#   - the aistack-stt wheel, built from stt/ as the stt_server role builds it;
#   - its dependencies, its `cuda` and `test` extras (the pinned cuBLAS and NVML wheels, the
#     same list the role installs) and faster-whisper-server from PyPI, as wheels;
#   - the real test weights (.cache/models: tiny.en and base, scripts/fetch-test-models);
#   - the speech the tests and bench/stt_load.py synthesize, made here with espeak-ng;
# packs them into one tar and splits it into parts of 56 MiB, one per directory:
#   .gpu-stage/p00/part-00, .gpu-stage/p01/part-01, ...
# A GPU session then carries one part per `run` call, back to back so that the machine stays
# warm (see docs/benchmarks.md#aistack-stt-on-a-gpu), and runs bench/gpu_run.sh.
#
# Usage: bench/gpu_stage.sh [PYTHON_VERSION]     (default 3.12, the device image's Python)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
py=${1:-3.12}
stage=$root/.gpu-stage
build=$stage/build
pip=(.venv/bin/pip --disable-pip-version-check)
rm -rf "$stage"
mkdir -p "$build/wheels" "$build/speech" "$build/models"

echo "== aistack-stt wheel (as the stt_server role builds it)"
"${pip[@]}" wheel --quiet --no-deps --wheel-dir "$build/wheels" ./stt
wheel=$(ls "$build"/wheels/aistack_stt-*.whl)

echo "== wheels for Python $py: aistack-stt[cuda,test], faster-whisper-server"
platforms=()
for p in manylinux_2_39 manylinux_2_35 manylinux_2_34 manylinux_2_31 manylinux_2_28 \
    manylinux_2_27 manylinux_2_24 manylinux_2_17 manylinux2014 manylinux_2_5 manylinux1; do
    platforms+=(--platform "${p}_x86_64")
done
"${pip[@]}" download --quiet --only-binary=:all: --python-version "$py" --implementation cp \
    "${platforms[@]}" --dest "$build/wheels" \
    "${wheel}[cuda,test]" faster-whisper-server==0.0.3
# Already in the device image, and large: pip there takes them from the system site-packages.
for name in numpy onnxruntime sympy tokenizers hf_xet; do
    rm -f "$build"/wheels/"${name}"-*.whl
done

echo "== test weights"
scripts/fetch-test-models >/dev/null
cp -a .cache/models/tiny.en .cache/models/base "$build/models/"

echo "== speech (espeak-ng output for the tests and the load test)"
.venv/bin/python - "$build/speech" <<'EOF'
import importlib.util
import subprocess
import sys
from pathlib import Path

root = Path.cwd()
sys.path.insert(0, str(root / "stt/tests"))
sys.path.insert(0, str(root / "stt/src"))
from stt_testkit import COMMAND_TEXT, FRENCH_TEXT, speech_file  # noqa: E402

spec = importlib.util.spec_from_file_location("stt_load", root / "bench/stt_load.py")
load = importlib.util.module_from_spec(spec)
sys.modules["stt_load"] = load  # dataclasses look their module up while it loads
spec.loader.exec_module(load)
out = Path(sys.argv[1])
for voice, text in [
    ("en-us", COMMAND_TEXT), ("fr", FRENCH_TEXT), ("en-us", load.LONG_TEXT),
    ("en-us", load.COMMAND_TEXT),
]:
    target = speech_file(out, voice, text)
    subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(target), text], check=True)
    print(f"  {target.name}: {text[:40]}")
EOF

echo "== packing"
tar -C "$stage" -cf - build | split -b 56M -d -a 2 - "$stage/part-"
rm -rf "$build"
for part in "$stage"/part-*; do
    n=${part##*-}
    mkdir -p "$stage/p$n"
    mv "$part" "$stage/p$n/"
done
ls -la "$stage"/p*/
echo "parts: $(ls -d "$stage"/p* | wc -l); carry each with: mkdir -p /tmp/aistack-gpu-stage && cp .gpu-stage/pNN/part-NN /tmp/aistack-gpu-stage/"
