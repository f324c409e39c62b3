#!/usr/bin/env bash
# aistack-stt on a real NVIDIA GPU: install it the way the stt_server role does, run the
# transcription tests on CUDA, the real NVML test, and bench/stt_load.py side by side with
# faster-whisper-server. Results go to $OUT (the device tool brings them back), else
# bench/results/gpu.
#
# Usage, in the repository root on the GPU machine (each step fits one 10-minute call):
#   bench/gpu_run.sh install          unpack the parts bench/gpu_stage.sh made, build .venv
#   bench/gpu_run.sh tests            transcription tests with device=cuda (float16 and
#                                     int8_float16), and the NVML test (load, read, unload)
#   bench/gpu_run.sh bench MODEL      stt_load.py compare on cuda for MODEL (tiny.en or base),
#                                     float16 and int8_float16: a 4 s command 20 times, bursts
#                                     of 16, 64 and 256; aistack-stt, faster-whisper-server and
#                                     bare faster-whisper, one after another on the same GPU
#   bench/gpu_run.sh all              all of it (longer than one call allows; for a machine
#                                     of your own)
# The staged parts are read from $AISTACK_GPU_STAGE (default /tmp/aistack-gpu-stage), or from
# .gpu-stage/ when this runs where gpu_stage.sh ran.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=${OUT:-$root/bench/results/gpu}
stage=${AISTACK_GPU_STAGE:-/tmp/aistack-gpu-stage}
work=/tmp/aistack-gpu-work
mkdir -p "$out" "$work"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 AISTACK_SPEECH_DIR=$stage/build/speech
py=.venv/bin/python

step() { printf '\n== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)" | tee -a "$out/run.log"; }

cuda_env() {
    # As the role's environment file: the pinned cuBLAS from the virtual environment.
    local site
    site=$($py -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    export LD_LIBRARY_PATH=$site/nvidia/cublas/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
}

install() {
    step "GPU"
    nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv \
        | tee "$out/gpu.csv"
    step "unpack the staged parts"
    if [ ! -d "$stage/build" ]; then
        if ls "$stage"/part-* >/dev/null 2>&1; then
            cat "$stage"/part-* | tar -x -C "$stage" || return 1
        elif ls .gpu-stage/p*/part-* >/dev/null 2>&1; then
            mkdir -p "$stage" && cat .gpu-stage/p*/part-* | tar -x -C "$stage" || return 1
        else
            echo "no staged parts in $stage or .gpu-stage: run bench/gpu_stage.sh first" >&2
            return 1
        fi
    fi
    mkdir -p .cache/models
    cp -an "$stage"/build/models/* .cache/models/
    step "virtual environment: the aistack-stt wheel, then the pinned CUDA wheels (as the role)"
    # numpy, onnxruntime and tokenizers come from the image's Python, which reaches no
    # registry: its site-packages go on the venv's path (after the venv's own) through a .pth
    # file. (--system-site-packages would not do: the image's python3 is itself a venv.)
    # The role's own venv shares nothing.
    python3 -m venv .venv || return 1
    local image_site venv_site
    image_site=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    venv_site=$($py -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    echo "$image_site" > "$venv_site/_device_image.pth"
    local find=(--no-index --find-links "$stage/build/wheels" --disable-pip-version-check -q)
    .venv/bin/pip install "${find[@]}" "$stage"/build/wheels/aistack_stt-*.whl || return 1
    local cuda
    cuda=$($py -c 'import tomllib; print(" ".join(tomllib.load(open("stt/pyproject.toml", "rb"))["project"]["optional-dependencies"]["cuda"]))')
    .venv/bin/pip install "${find[@]}" $cuda || return 1
    .venv/bin/pip install "${find[@]}" pytest httpx openai wyoming==1.10.2 \
        faster-whisper-server==0.0.3 || return 1
    .venv/bin/pip freeze > "$out/pip-freeze.txt"
    cuda_env
    step "CTranslate2 on CUDA"
    $py -c 'import ctranslate2 as c; print(c.__version__, "cuda devices:", c.get_cuda_device_count(), "types:", sorted(c.get_supported_compute_types("cuda")))' \
        | tee -a "$out/run.log"
}

tests() {
    cuda_env
    local rc=0
    for ct in float16 int8_float16; do
        step "transcription tests, device=cuda, compute type $ct"
        AISTACK_STT_TEST_DEVICE=cuda AISTACK_STT_TEST_COMPUTE_TYPE=$ct \
            $py -m pytest -q -p no:cacheprovider stt/tests/test_transcriptions.py \
            stt/tests/test_multilingual.py 2>&1 | tee "$out/tests-$ct.log" | tail -n 5
        [ "${PIPESTATUS[0]}" = 0 ] || rc=1
    done
    step "the real NVML test: load a model, read NVML, see the numbers move"
    rm -f "$out/nvml.jsonl"
    AISTACK_STT_GPU_TESTS=1 AISTACK_STT_GPU_REPORT=$out/nvml.jsonl \
        $py -m pytest -q -s -p no:cacheprovider stt/tests/test_vram_gpu.py 2>&1 \
        | tee "$out/tests-nvml.log" | tail -n 8
    [ "${PIPESTATUS[0]}" = 0 ] || rc=1
    return $rc
}

bench() {
    local model=${1:?bench needs a model: tiny.en or base}
    cuda_env
    for ct in float16 int8_float16; do
        step "stt_load.py compare: $model, cuda, $ct"
        $py bench/stt_load.py compare --device cuda --compute-type "$ct" \
            --model-dir ".cache/models/$model" --fws-exe .venv/bin/faster-whisper-server \
            --targets aistack-stt faster-whisper-server faster-whisper \
            --profiles command burst-16 burst-64 burst-256 \
            --out "$work/load-$model-$ct" 2>&1 | tee "$out/load-$model-$ct.log" | tail -n 8
        cp "$work/load-$model-$ct/results.json" "$out/load-$model-$ct.json" 2>/dev/null
    done
}

case "${1:-}" in
install) install ;;
tests) tests ;;
bench) bench "${2:-}" ;;
all) install && tests; bench tiny.en; bench base ;;
*)
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
