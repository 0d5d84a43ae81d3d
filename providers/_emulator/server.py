"""Serve a WSGI app on 127.0.0.1 in a background thread (threaded, so concurrency limits are real)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


class _QuietHandler(WSGIRequestHandler):
    """Emulators answer thousands of calls in tests and the demo; the call log records them instead."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


@dataclass
class RunningServer:
    """A started server: its base URL, and `stop()` (also a context manager)."""

    url: str
    port: int
    _server: BaseWSGIServer
    _thread: threading.Thread

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def serve(app: Any, port: int = 0, host: str = "127.0.0.1") -> RunningServer:
    """Start `app` on host:port (0 = any free port) and return once it accepts connections."""
    if host not in {"127.0.0.1", "localhost", "::1"}:
        raise ValueError("emulators only listen on loopback")
    server = make_server(host, port, app, threaded=True, request_handler=_QuietHandler)
    server.daemon_threads = True  # type: ignore[attr-defined]  # ThreadingMixIn attribute on threaded servers
    thread = threading.Thread(target=server.serve_forever, name=f"emulator-{server.port}", daemon=True)
    thread.start()
    return RunningServer(url=f"http://{host}:{server.port}", port=server.port, _server=server, _thread=thread)
