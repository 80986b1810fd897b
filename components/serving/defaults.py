"""The serving knobs' defaults, in one light module (no gRPC or TensorFlow import).

``serve`` and the local server take their defaults from here, and so does the
command line, which imports this module without loading the server.
"""

from __future__ import annotations

# Address the project's server listens on: this machine only. Pass --host 0.0.0.0 to expose it.
DEFAULT_HOST = "127.0.0.1"

# TF Serving's gRPC port.
DEFAULT_PORT = 8500

# Longest audio a Predict may send, in seconds of 16 kHz samples.
DEFAULT_MAX_AUDIO_SECONDS = 600.0

# Most model calls the server runs at once; more get RESOURCE_EXHAUSTED. One call already uses every
# core, so more in parallel only add memory; 8 bounds the worst case at 8 ten-minute clips.
DEFAULT_MAX_IN_FLIGHT = 8
