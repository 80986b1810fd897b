"""The names of the served model's batched signature, ``serving_batch``, in one light module.

The signature is defined by ``components.trainer.export`` (see its module
docstring): ``waveforms`` float32 ``[batch, max_samples]`` and ``num_samples``
int32 ``[batch]`` in; ``class_probabilities`` ``[batch, num_classes]``,
``accent`` ``[batch]``, ``patch_probabilities`` ``[batch, max_patches,
num_classes]`` and ``num_patches`` ``[batch]`` out. Every input and output has
the batch as its 0th dimension, which TF Serving's batching
(``--enable_batching``) requires. The client and the local server import the
names from here without loading the trainer's Keras code.
"""

from __future__ import annotations

BATCH_SIGNATURE = "serving_batch"
WAVEFORMS_INPUT_KEY = "waveforms"
NUM_SAMPLES_INPUT_KEY = "num_samples"
NUM_PATCHES_OUTPUT_KEY = "num_patches"
