"""YAMNet's knobs: which YAMNet, how its offline stand-in is made, how many patches per call.

A light module (no TensorFlow import), so that the command line and the
pipeline's settings can take their defaults from here.
"""

from __future__ import annotations

# The published YAMNet on TF Hub: the default handle.
TFHUB_HANDLE = "https://tfhub.dev/google/yamnet/1"

# The handle of seeded, calibrated, UNTRAINED weights, exported on first use (plumbing only).
OFFLINE_WEIGHTS = "offline"

# Seed of the offline weights.
OFFLINE_SEED = 0

# Patches sent to YAMNet in one call, gathered across clips.
EMBEDDING_BATCH_PATCHES = 512
