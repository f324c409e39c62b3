"""Which model ids a client may use, and where each leads: the naming policy, no loading.

A model id is an alias (`tiny.en`, `base`, `large-v3-turbo`, ...), `whisper-1` (the configured
default, the name OpenAI clients send), a Hugging Face repo id, or a directory holding a
CTranslate2 model. Aliases look in the model directory first (`<model_dir>/<alias>/`), so an
offline host can be seeded with plain directories; otherwise the hub is asked once and the
files kept under `<model_dir>` (huggingface_hub honours HF_ENDPOINT and HF_HUB_OFFLINE).

Which ids a client may use is the operator's choice (`Settings.client_models`): by default
only the configured model, `whisper-1` and what already lies in the model directory. Client
ids never reach the filesystem as paths unless the operator allows `any`, and never make the
server download unless it allows `hub`; a refusal reads the same whether or not a directory of
that name exists. Every spelling of one model maps to one canonical id (`canonical_id`), the
key of the table of loaded models (models.py), so a model is loaded once however it is named.

`ModelNames` holds no state of its own: it reads the settings, the files and, through the
callable it is given, the ids the registry has loaded.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from faster_whisper.utils import _MODELS as HUB_ALIASES  # alias -> hub repo id

from .config import Settings
from .errors import APIError

DEFAULT_ALIAS = "whisper-1"
# Longer ids are refused before anything looks at them (a path is at most 4096 bytes; a hub
# repo id is far shorter); shorter ones that no file system accepts are simply not found.
MAX_ID_CHARS = 1024
# A name is one path component that cannot climb out of the model directory (not `.`, `..`).
_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*$")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
# Several aliases lead to one repo (`large`, `large-v3`): the first one names it.
_REPO_ALIAS: dict[str, str] = {}
for _alias, _repo in HUB_ALIASES.items():
    _REPO_ALIAS.setdefault(_repo, _alias)


def _is_file(path: Path) -> bool:
    """`path.is_file()`, false for names the file system refuses (too long, NUL)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _hub_key(mid: str) -> str | None:
    """The hub repo an alias or repo id names (None for anything else)."""
    if mid in HUB_ALIASES:
        return HUB_ALIASES[mid]
    if _REPO_ID.match(mid):
        return mid
    return None


def _invalid(message: str) -> APIError:
    return APIError(400, message, param="model", code="invalid_value")


def _not_found(message: str) -> APIError:
    return APIError(404, message, param="model", code="model_not_found")


@dataclass(frozen=True)
class ModelSource:
    """Where a model id leads: a local directory, or a hub repo to download."""

    id: str
    path: Path | None = None
    repo_id: str | None = None


class ModelNames:
    """The naming policy: which ids pass, their one canonical spelling, where they lead."""

    def __init__(self, settings: Settings, loaded_ids: Callable[[], Collection[str]]) -> None:
        self.settings = settings
        self._loaded_ids = loaded_ids  # the registry's loaded ids, read under its lock

    @property
    def default_id(self) -> str:
        return self.settings.model.strip()

    def canonical_id(self, model_id: str) -> str:
        """The one id of the model `model_id` names, or an APIError when a client may not use it.

        Only what the operator allows passes (`client_models`), and the refusal does not
        depend on what exists outside the model directory: no directory-exists oracle.
        """
        mid = model_id.strip()
        if not mid:
            raise _invalid("model is empty")
        if len(mid) > MAX_ID_CHARS:
            raise _invalid(
                f"model id is {len(mid)} characters long; model ids are at most {MAX_ID_CHARS}"
            )
        if not mid.isprintable():
            raise _invalid("model id contains control characters")
        if mid in (DEFAULT_ALIAS, self.default_id) or mid in self._loaded_ids():
            return self.default_id if mid == DEFAULT_ALIAS else mid
        mode = self.settings.client_models
        named = _NAME.match(mid) or _REPO_ID.match(mid)  # `owner/name` is a repo, not a path
        if mid.startswith(("/", "~")) or (mode == "any" and not named):
            if mode != "any":
                raise _invalid(
                    f"model {mid!r} is a path; name a model instead: {', '.join(self.available())}"
                )
            return self._canonical_path(mid)
        if _NAME.match(mid) and self.local_dir(mid) is not None:
            return mid
        repo = _hub_key(mid)
        if repo is not None:
            if repo == _hub_key(self.default_id):
                return self.default_id
            canonical = _REPO_ALIAS.get(repo, mid)
            if self.local_dir(canonical) is not None or mode != "local" or self._cached(repo):
                return canonical
        raise _not_found(
            f"model {mid!r} is not served here; use one of {', '.join(self.available())}"
        )

    def _canonical_path(self, mid: str) -> str:
        """A directory given by a trusted client (`client_models: any`): its real path."""
        real = os.path.realpath(os.path.expanduser(mid))
        if not _is_file(Path(real) / "model.bin"):
            raise _not_found(f"model {mid!r}: no CTranslate2 model (model.bin) in that directory")
        default = self.operator_source()
        if default.path is not None and os.path.realpath(default.path) == real:
            return self.default_id
        parent, name = os.path.split(real)
        model_dir = os.path.realpath(self.settings.model_dir)
        if parent == model_dir and _NAME.match(name) and self.local_dir(name) is not None:
            return name
        return real

    def local_dir(self, name: str) -> Path | None:
        """`<model_dir>/<name>` when it holds a model."""
        local = self.settings.model_dir / name
        return local if _NAME.match(name) and _is_file(local / "model.bin") else None

    def _cached(self, repo_id: str) -> bool:
        """Whether a hub download of `repo_id` is complete in the model directory."""
        cache = self.settings.model_dir / ("models--" + repo_id.replace("/", "--"))
        snapshots = cache / "snapshots"
        try:
            return any(_is_file(snap / "model.bin") for snap in snapshots.iterdir())
        except OSError:
            return False

    def operator_source(self) -> ModelSource:
        """Where the configured default model is: the operator may name any directory."""
        mid = self.default_id
        path = Path(mid).expanduser()
        with contextlib.suppress(OSError, ValueError):
            if path.is_dir():
                return ModelSource(mid, path=path)
        local = self.local_dir(mid)
        if local is not None:
            return ModelSource(mid, path=local)
        repo = _hub_key(mid)
        if repo is not None:
            return ModelSource(mid, repo_id=repo)
        if mid.startswith(("/", ".", "~")):  # the operator's own path: saying so reveals nothing
            raise _not_found(f"model directory {mid} does not exist (AISTACK_STT_MODEL)")
        raise _not_found(
            f"the configured model {mid!r} (AISTACK_STT_MODEL) is neither a directory holding a "
            f"CTranslate2 model, nor in {self.settings.model_dir}, nor an alias "
            f"({', '.join(HUB_ALIASES)}) or a Hugging Face repo id (owner/name)"
        )

    def resolve(self, model_id: str) -> ModelSource:
        """Map an id to files without loading anything; ids a client may not use are refused."""
        mid = self.canonical_id(model_id)
        if mid == self.default_id:
            return self.operator_source()
        if mid.startswith("/"):
            return ModelSource(mid, path=Path(mid))
        local = self.local_dir(mid)
        if local is not None:
            return ModelSource(mid, path=local)
        return ModelSource(mid, repo_id=_hub_key(mid))

    def available(self) -> list[str]:
        """Ids a client may name: the default, what is loaded, what lies in the model dir,
        and the aliases when the operator lets clients download (`client_models`)."""
        ids = [DEFAULT_ALIAS, self.default_id]
        ids += sorted(self._loaded_ids())
        model_dir = self.settings.model_dir
        with contextlib.suppress(OSError):
            for child in sorted(model_dir.iterdir()):
                if self.local_dir(child.name) is not None:
                    ids.append(child.name)
                elif child.name.startswith("models--"):  # hub cache layout
                    repo = child.name[len("models--") :].replace("--", "/")
                    if self._cached(repo):
                        ids.append(_REPO_ALIAS.get(repo, repo))
        if self.settings.client_models != "local":
            ids += sorted(HUB_ALIASES)
        return list(dict.fromkeys(ids))
