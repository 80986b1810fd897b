"""An http.server running on a background thread for the duration of a ``with`` block."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def serving(server: http.server.HTTPServer) -> Iterator[http.server.HTTPServer]:
    """Serves ``server`` on a daemon thread; shuts it down and closes it on exit.

    Args:
        server: A server already bound, e.g. to ``("127.0.0.1", 0)``.

    Yields:
        The same server, answering requests.
    """
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
