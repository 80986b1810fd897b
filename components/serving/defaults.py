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

# Most concurrent Predict requests answered by one batched model call (see ``batching``); 1 turns
# batching off. A batch never holds more requests than the in-flight cap allows in flight at once.
DEFAULT_MAX_BATCH_SIZE = 8

# Longest time, in milliseconds, a batch waits for more requests once it has one. A lone request
# never waits (see ``batching``); a few milliseconds let concurrent clients' requests meet.
DEFAULT_BATCH_TIMEOUT_MS = 5.0

# Batches the local server runs at once. One batch already uses every core; a second one overlaps
# the next batch's Python and gRPC work with the running one's model time.
DEFAULT_BATCH_THREADS = 2
