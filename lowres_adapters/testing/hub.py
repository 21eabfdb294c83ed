"""A loopback Hugging Face Hub for tests: the routes ``huggingface_hub`` uses, on 127.0.0.1.

No Hub-compatible server that accepts uploads can be installed from the package registries, so this
module speaks the HTTP contract of huggingface_hub 0.36 (repo create/delete, info, preupload, LFS
batch with basic transfer, NDJSON commit, resolve with ETag / X-Repo-Commit / Range, tree,
paths-info, commits, refs, branches, tags, settings, validate-yaml, whoami) with the Hub's auth
semantics. It imports nothing from huggingface_hub, so it can start before the client is imported
(the client reads ``HF_ENDPOINT`` once, at import)::

    python -m lowres_adapters.testing.hub --port 0 --directory /tmp/hub
    # prints http://127.0.0.1:PORT ; then: HF_ENDPOINT=http://127.0.0.1:PORT HF_TOKEN=hf_loopback_alice_token ...

Users (see :data:`~lowres_adapters.testing.hub_store.TEST_USERS`): ``alice`` (token
``hf_loopback_alice_token``, member of ``lowres-org``) and ``bob`` (``hf_loopback_bob_token``).
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from lowres_adapters.testing.hub_routes import HubRequestHandler
from lowres_adapters.testing.hub_store import TEST_USERS, HubStore, HubUser


class LoopbackHub(ThreadingHTTPServer):
    """The HTTP server; ``url`` is its base address (``http://127.0.0.1:PORT``).

    Args:
        directory: Where repos and blobs are stored.
        port: TCP port on 127.0.0.1 (0 picks a free one).
        users: Users and tokens (the built-in test users by default).
        verbose: Log one line per request to stderr (never headers, so never tokens).
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, directory: Path, port: int = 0, users: tuple[HubUser, ...] = TEST_USERS,
                 verbose: bool = False) -> None:
        super().__init__(("127.0.0.1", port), HubRequestHandler)
        self.store = HubStore(Path(directory), users)
        self.verbose = verbose
        self.upload_tickets: dict[str, tuple[str, int]] = {}
        self.requests: list[tuple[str, str]] = []
        """Every request answered, as ``(method, path)`` (tests check what a client asked for)."""
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self._thread: threading.Thread | None = None

    def start(self) -> "LoopbackHub":
        """Serve in a daemon thread and return self."""
        self._thread = threading.Thread(target=self.serve_forever, name="loopback-hub", daemon=True)
        self._thread.start()
        _RUNNING[self.url] = self
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        _RUNNING.pop(self.url, None)
        self.shutdown()
        self.server_close()


_RUNNING: dict[str, LoopbackHub] = {}


def running_hub(url: str) -> LoopbackHub | None:
    """Return the loopback Hub serving ``url`` in this process (e.g. ``HF_ENDPOINT``), or None."""
    return _RUNNING.get(url.rstrip("/"))


class SilentServer:
    """A TCP listener on 127.0.0.1 that accepts connections and never answers (a hung Hub).

    The kernel completes the handshake for queued connections, so a client connects, sends its
    request and then waits for an answer that never comes: only its own timeout ends the wait.
    ``connections`` counts the connections taken from the queue.
    """

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(64)
        self._socket.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self.connections = 0
        self._held: list[Any] = []
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._hold, name="silent-server", daemon=True)
        self._thread.start()

    def _hold(self) -> None:
        while not self._stopped.is_set():
            try:
                connection, _ = self._socket.accept()
            except OSError:
                continue
            self.connections += 1
            self._held.append(connection)  # kept open, never read from or written to

    def close(self) -> None:
        """Stop accepting and close every held connection."""
        self._stopped.set()
        self._thread.join(timeout=5)
        for connection in self._held:
            connection.close()
        self._socket.close()


def start_session_hub(directory: Path, port: int = 0) -> LoopbackHub:
    """Start a loopback Hub storing into ``directory`` in a background thread; return it (``.url``)."""
    return LoopbackHub(Path(directory), port).start()


def main(argv: list[str] | None = None) -> None:
    """Run a loopback Hub in the foreground and print its URL (for plugin authors' tests)."""
    parser = argparse.ArgumentParser(prog="python -m lowres_adapters.testing.hub", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--directory", type=Path, default=None, help="storage folder (default: a temporary one)")
    parser.add_argument("--verbose", action="store_true", help="log one line per request")
    args = parser.parse_args(argv)

    directory = args.directory or Path(tempfile.mkdtemp(prefix="loopback-hub-"))
    server = LoopbackHub(directory, args.port, verbose=args.verbose)
    print(server.url, flush=True)
    print(f"storage: {directory}; users: " + ", ".join(f"{u.name} (token {u.token})" for u in TEST_USERS),
          file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
