"""The devices and CTranslate2 compute types the engine accepts: the one list of them.

No imports at all: the stt_server role's filter plugin (plugins/filter/stt_server.py) loads
this file by path on the controller, where the engine's dependencies are not installed, so
the role and the engine offer the same values.
"""

DEVICES = ("auto", "cpu", "cuda")
# What CTranslate2 accepts; "default" and "auto" pick int8 on CPU, float16 on CUDA.
COMPUTE_TYPES = (
    "default",
    "auto",
    "int8",
    "int8_float32",
    "int8_float16",
    "int8_bfloat16",
    "int16",
    "float16",
    "bfloat16",
    "float32",
)
# What "default" and "auto" mean on each device.
DEFAULT_COMPUTE_TYPE = {"cuda": "float16", "cpu": "int8"}
