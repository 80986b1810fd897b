"""Batching of concurrent Predict requests in the local server.

Concurrent ``serving_default`` requests, and one-row ``serving_batch``
requests (what the project's clients send, see ``client.choose_signature``),
to the same model version are answered by one call of the served model's
batched signature,
``serving_batch`` (``components.trainer.export.BATCH_SIGNATURE``): YAMNet's
front end runs on every clip, and the network and the classifier on the
patches of all of them at once. Each request still gets its own answer, equal
to what ``serving_default`` returns for it (within float rounding).

How a batch forms (``RequestBatcher.predict``): a request joins a queue; when
no batch is being formed and fewer than ``batch_threads`` batches run (2 by
default, ``DEFAULT_BATCH_THREADS``), one queued request's thread leads the next
batch. The leader waits for more requests only while it has reason to expect
them, and never longer than ``batch_timeout_seconds``: it waits until the
queue holds ``min(max_batch_size, expected)`` requests, where ``expected`` is
the number of requests holding a model call slot outside the running batches
(and, when no batch runs, at least the size of the previous batch). So a lone
request (one slot taken, previous batch of one) never waits, and under steady
concurrent load the batch fills up to the number of clients. Two batches may
run at once: one model call already uses every core, but the second overlaps
the first's Python and gRPC work (on 2 cores, 8 clients got about 14% more
patches/s than with one batch at a time, which gained nothing over no
batching). Requests from the queue's head go first; a batch holds requests for
one model version only.

Limits: every request holds one of the servicer's ``max_in_flight`` model
call slots from before its input is decoded until it is answered, queued or
running, so a batch never holds more than ``max_in_flight`` requests and the
memory bound of the in-flight cap is unchanged. A request beyond the cap gets
RESOURCE_EXHAUSTED at once, as before.

Failures stay per request:

* a waveform the model would refuse (a NaN or infinite sample, or a sample
  beyond full scale, see ``export.check_waveform``) is not batched: it runs
  alone through ``serving_default``, which answers INVALID_ARGUMENT for it;
* if a batched call fails anyway, each of its requests runs alone, so only
  the faulty one fails;
* a request whose client cancelled it, or whose deadline passed, while it was
  queued is answered CANCELLED and left out of the batch.

A batch of one request (a lone client) runs through ``serving_default``, as
without batching: for one clip that graph is the cheaper one.

Models without ``serving_batch`` (exported before it existed), other
signatures and ``serving_batch`` requests of several rows (already a batch)
are called once per request, as before; ``max_batch_size`` 1 turns batching off.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
import typing
from collections.abc import Callable, Mapping

import grpc
import numpy as np
import tensorflow as tf

from components import features
from components.errors import InvalidArgumentError
from components.serving.defaults import (
    DEFAULT_BATCH_THREADS,
    DEFAULT_BATCH_TIMEOUT_MS,
    DEFAULT_MAX_BATCH_SIZE,
)
from components.serving.model_manager import LoadedModel
from components.serving.rpc import ServingError
from components.trainer import export as served_model

logger = logging.getLogger(__name__)

# The outputs of serving_default, which each batched request gets back.
SERVING_OUTPUT_NAMES = (
    features.CLASS_PROBABILITIES_OUTPUT_KEY,
    features.ACCENT_OUTPUT_KEY,
    features.PATCH_PROBABILITIES_OUTPUT_KEY,
)


def is_batchable_waveform(waveform: np.ndarray) -> bool:
    """Whether the model accepts the waveform: finite samples within full scale (``export.check_waveform``).

    Args:
        waveform: float32 ``[num_samples]``.

    Returns:
        True if a batched call can carry it without failing its neighbours.
    """
    if waveform.ndim != 1 or waveform.size == 0:
        return False
    if not np.all(np.isfinite(waveform)):
        return False
    return float(np.max(np.abs(waveform))) <= served_model.MAX_ABS_AMPLITUDE


@dataclasses.dataclass
class _PendingRequest:
    """One request waiting for its batch, and then its answer."""

    model: LoadedModel
    waveform: np.ndarray
    context: grpc.ServicerContext
    outputs: dict[str, np.ndarray] | None = None
    error: BaseException | None = None
    taken: bool = False
    done: bool = False


@dataclasses.dataclass(frozen=True)
class BatchingStats:
    """What the batcher has done since it started.

    Attributes:
        batched_calls: Calls of the batched signature.
        batched_requests: Requests answered by those calls.
        largest_batch: Most requests in one call.
        single_calls: Requests answered by their own ``serving_default`` call
            (a lone request, a refused waveform, or the fallback after a failed batched call).
    """

    batched_calls: int
    batched_requests: int
    largest_batch: int
    single_calls: int


class RequestBatcher:
    """Runs concurrent ``serving_default`` requests as batched model calls (see the module docstring)."""

    def __init__(
        self,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        batch_timeout_seconds: float = DEFAULT_BATCH_TIMEOUT_MS / 1000.0,
        admitted_requests: Callable[[], int] = lambda: 1,
        clock: Callable[[], float] = time.monotonic,
        batch_threads: int = DEFAULT_BATCH_THREADS,
    ) -> None:
        """Creates a batcher.

        Args:
            max_batch_size: Most requests in one model call; 1 turns batching off.
            batch_timeout_seconds: Longest time a batch's leader waits for more requests.
            admitted_requests: How many requests hold a model call slot now (the
                servicer's in-flight count); the leader waits for at most that many.
            clock: Monotonic seconds, for the wait's deadline.
            batch_threads: Most batches running at once (TF Serving's ``num_batch_threads``).

        Raises:
            InvalidArgumentError: If ``max_batch_size`` or ``batch_threads`` is below 1 or the timeout
                is negative.
        """
        if batch_threads < 1:
            raise InvalidArgumentError(f"batch_threads must be at least 1, got {batch_threads}")
        if max_batch_size < 1:
            raise InvalidArgumentError(f"max_batch_size must be at least 1, got {max_batch_size}")
        if batch_timeout_seconds < 0 or not np.isfinite(batch_timeout_seconds):
            raise InvalidArgumentError(
                f"batch_timeout_seconds must be a finite number >= 0, got {batch_timeout_seconds}"
            )
        self.max_batch_size = max_batch_size
        self.batch_timeout_seconds = batch_timeout_seconds
        self.batch_threads = batch_threads
        self._admitted_requests = admitted_requests
        self._clock = clock
        self._condition = threading.Condition()
        self._queue: collections.deque[_PendingRequest] = collections.deque()
        self._forming = False
        self._running_batches = 0
        self._running_requests = 0
        self._previous_batch_size = 1
        self._batched_calls = 0
        self._batched_requests = 0
        self._largest_batch = 0
        self._single_calls = 0

    def stats(self) -> BatchingStats:
        """Returns the counters of what the batcher has done."""
        with self._condition:
            return BatchingStats(
                batched_calls=self._batched_calls,
                batched_requests=self._batched_requests,
                largest_batch=self._largest_batch,
                single_calls=self._single_calls,
            )

    def batchable_waveform(
        self, model: LoadedModel, signature_name: str, inputs: Mapping[str, tf.Tensor]
    ) -> np.ndarray | None:
        """The waveform of a request that this batcher answers, or None for a request it does not take.

        Args:
            model: The model answering the request.
            signature_name: The signature the request names.
            inputs: The request's decoded inputs.

        Returns:
            The float32 ``[num_samples]`` waveform of a ``serving_default`` request, or of a one-row
            ``serving_batch`` request (its row cut to its ``num_samples``), when batching is on and
            the model has ``serving_batch``; None otherwise.
        """
        if self.max_batch_size <= 1 or served_model.BATCH_SIGNATURE not in model.signatures:
            return None
        if signature_name == features.SERVING_SIGNATURE:
            return inputs[features.WAVEFORM_INPUT_KEY].numpy()
        if signature_name == served_model.BATCH_SIGNATURE:
            waveforms = inputs[served_model.WAVEFORMS_INPUT_KEY].numpy()
            num_samples = inputs[served_model.NUM_SAMPLES_INPUT_KEY].numpy().reshape(-1)
            if waveforms.ndim == 2 and waveforms.shape[0] == 1 and num_samples.shape == (1,):
                length = int(num_samples[0])
                if 0 <= length <= waveforms.shape[1]:
                    return waveforms[0, :length]
        return None

    def predict(
        self, model: LoadedModel, waveform: np.ndarray, context: grpc.ServicerContext
    ) -> dict[str, np.ndarray]:
        """Answers one ``serving_default`` request, batched with concurrent ones.

        Args:
            model: The model answering it (``accepts`` said yes).
            waveform: Its decoded float32 ``[num_samples]`` waveform.
            context: Its RPC context, to leave it out of the batch once cancelled.

        Returns:
            The ``serving_default`` outputs for this request, as arrays.

        Raises:
            ServingError: CANCELLED if the request was cancelled while it was queued.
            tf.errors.OpError: What the model raised for this request alone.
        """
        if not is_batchable_waveform(waveform):
            return self._run_alone(model, waveform)
        pending = _PendingRequest(model=model, waveform=waveform, context=context)
        with self._condition:
            self._queue.append(pending)
            self._condition.notify_all()
            while not pending.done:
                if not pending.taken and not self._forming and self._running_batches < self.batch_threads:
                    self._lead()
                else:
                    self._condition.wait()
        if pending.error is not None:
            raise pending.error
        return typing.cast(dict[str, np.ndarray], pending.outputs)

    def _batch_target(self) -> int:
        """How many requests the leader waits for: those it can expect, at most ``max_batch_size``.

        Expected are the requests holding a slot outside the running batches
        and, when no batch runs, as many as made up the previous batch.
        """
        expected = self._admitted_requests() - self._running_requests
        if self._running_batches == 0:
            expected = max(expected, self._previous_batch_size)
        return max(1, min(self.max_batch_size, expected))

    def _wait_for_more(self, timeout_seconds: float) -> None:
        """Waits for a request to arrive, or ``timeout_seconds``; called with the lock held."""
        self._condition.wait(timeout_seconds)

    def _lead(self) -> None:
        """Forms the next batch and runs it; called with the lock held, which it releases while running."""
        self._forming = True
        try:
            deadline = self._clock() + self.batch_timeout_seconds
            while len(self._queue) < self._batch_target():
                remaining = deadline - self._clock()
                if remaining <= 0:
                    break
                self._wait_for_more(remaining)
            batch = self._take_batch()
        finally:
            self._forming = False
            self._condition.notify_all()
        if not batch:
            return
        self._previous_batch_size = len(batch)
        self._running_batches += 1
        self._running_requests += len(batch)
        self._condition.release()
        try:
            self._run_batch(batch)
        finally:
            self._condition.acquire()
            self._running_batches -= 1
            self._running_requests -= len(batch)
            self._condition.notify_all()

    def _take_batch(self) -> list[_PendingRequest]:
        """Takes up to ``max_batch_size`` live requests for the head's model off the queue."""
        batch: list[_PendingRequest] = []
        remaining: collections.deque[_PendingRequest] = collections.deque()
        head_model = self._queue[0].model if self._queue else None
        while self._queue:
            pending = self._queue.popleft()
            if not pending.context.is_active():
                pending.error = ServingError(
                    grpc.StatusCode.CANCELLED,
                    "the request was cancelled or timed out while it waited for its batch; "
                    "the model was not run",
                )
                pending.done = True
            elif pending.model is head_model and len(batch) < self.max_batch_size:
                pending.taken = True
                batch.append(pending)
            else:
                remaining.append(pending)
        self._queue = remaining
        return batch

    def _run_alone(self, model: LoadedModel, waveform: np.ndarray) -> dict[str, np.ndarray]:
        with self._condition:
            self._single_calls += 1
        outputs = model.signatures[features.SERVING_SIGNATURE](
            **{features.WAVEFORM_INPUT_KEY: tf.constant(waveform)}
        )
        return {name: outputs[name].numpy() for name in SERVING_OUTPUT_NAMES}

    def _run_batch(self, batch: list[_PendingRequest]) -> None:
        """Answers every request of the batch: one batched call, or one call each if it fails.

        A batch of one request runs through ``serving_default``, whose graph is
        the cheaper one for a single clip, so a lone client sees no change.
        """
        if len(batch) == 1:
            pending = batch[0]
            try:
                pending.outputs = self._run_alone(pending.model, pending.waveform)
            except Exception as error:
                pending.error = error
            with self._condition:
                pending.done = True
                self._condition.notify_all()
            return
        try:
            answers = call_batched_signature(batch[0].model, [pending.waveform for pending in batch])
        except tf.errors.OpError as error:
            logger.warning(
                "A batched call of %d requests failed (%s); answering each request alone",
                len(batch),
                error.message,
            )
            for pending in batch:
                try:
                    pending.outputs = self._run_alone(pending.model, pending.waveform)
                except Exception as single_error:
                    pending.error = single_error
        except Exception as error:
            logger.exception("A batched call of %d requests failed", len(batch))
            for pending in batch:
                pending.error = error
        else:
            for pending, outputs in zip(batch, answers, strict=True):
                pending.outputs = outputs
            with self._condition:
                self._batched_calls += 1
                self._batched_requests += len(batch)
                self._largest_batch = max(self._largest_batch, len(batch))
        with self._condition:
            for pending in batch:
                pending.done = True
            self._condition.notify_all()


def as_one_row_batch(outputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Turns one clip's ``serving_default`` outputs into the outputs of a one-row ``serving_batch`` call.

    Args:
        outputs: ``class_probabilities`` ``[num_classes]``, ``accent`` (scalar) and
            ``patch_probabilities`` ``[num_patches, num_classes]``.

    Returns:
        The same values with a batch dimension of 1, and ``num_patches`` ``[1]`` (int32).
    """
    patch_probabilities = np.asarray(outputs[features.PATCH_PROBABILITIES_OUTPUT_KEY])
    return {
        features.CLASS_PROBABILITIES_OUTPUT_KEY: np.asarray(outputs[features.CLASS_PROBABILITIES_OUTPUT_KEY])[
            np.newaxis
        ],
        features.ACCENT_OUTPUT_KEY: np.asarray(outputs[features.ACCENT_OUTPUT_KEY], dtype=object).reshape(1),
        features.PATCH_PROBABILITIES_OUTPUT_KEY: patch_probabilities[np.newaxis],
        served_model.NUM_PATCHES_OUTPUT_KEY: np.array([patch_probabilities.shape[0]], dtype=np.int32),
    }


def call_batched_signature(model: LoadedModel, waveforms: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Runs ``serving_batch`` on waveforms and splits its outputs into per-clip ``serving_default`` outputs.

    Args:
        model: A model with ``serving_batch``.
        waveforms: float32 ``[num_samples]`` waveforms, any lengths.

    Returns:
        One dict per waveform with ``class_probabilities`` ``[num_classes]``,
        ``accent`` (a bytes scalar) and ``patch_probabilities`` ``[num_patches, num_classes]``.

    Raises:
        tf.errors.OpError: If the model refuses the batch.
    """
    lengths = np.array([waveform.shape[0] for waveform in waveforms], dtype=np.int32)
    padded = np.zeros((len(waveforms), int(lengths.max(initial=0))), dtype=np.float32)
    for row, waveform in enumerate(waveforms):
        padded[row, : waveform.shape[0]] = waveform
    outputs: Mapping[str, tf.Tensor] = model.signatures[served_model.BATCH_SIGNATURE](
        **{
            served_model.WAVEFORMS_INPUT_KEY: tf.constant(padded),
            served_model.NUM_SAMPLES_INPUT_KEY: tf.constant(lengths),
        }
    )
    class_probabilities = outputs[features.CLASS_PROBABILITIES_OUTPUT_KEY].numpy()
    accents = outputs[features.ACCENT_OUTPUT_KEY].numpy()
    patch_probabilities = outputs[features.PATCH_PROBABILITIES_OUTPUT_KEY].numpy()
    num_patches = outputs[served_model.NUM_PATCHES_OUTPUT_KEY].numpy()
    return [
        {
            features.CLASS_PROBABILITIES_OUTPUT_KEY: class_probabilities[row],
            features.ACCENT_OUTPUT_KEY: np.array(accents[row], dtype=object),
            features.PATCH_PROBABILITIES_OUTPUT_KEY: patch_probabilities[row, : int(num_patches[row])],
        }
        for row in range(len(waveforms))
    ]
