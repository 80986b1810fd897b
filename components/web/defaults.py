"""The page's defaults, in one light module (no Gradio, gRPC or TensorFlow import), for the command line."""

from __future__ import annotations

# Address the page listens on: this machine only. Pass --host 0.0.0.0 to expose it.
DEFAULT_HOST = "127.0.0.1"

# The page's HTTP port.
DEFAULT_PORT = 8080

# Longest wait, in seconds, for a serving process started by ``web --model-base-path`` to accept calls
# (importing TensorFlow and loading the model).
DEFAULT_SERVER_START_SECONDS = 180.0
