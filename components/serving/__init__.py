"""Serving the accent model: a local stand-in for TF Serving, and the prediction client.

Production runs TF Serving (``tensorflow_model_server``; ``kubernetes/`` deploys
the ``tensorflow/serving`` image) on the versions the Pusher writes. The local
server in this package is a stand-in for development, tests and machines
without TF Serving's binary: it speaks TF Serving's gRPC API
(tensorflow-serving-api's ``PredictionService`` and ``ModelService``) with TF
Serving's status codes, so one client works against both, and
``accent-pipeline serve`` hands over to ``tensorflow_model_server`` whenever it
is on PATH.

A new endpoint is a new signature in the served model
(``components/trainer/export.py``), which clients reach through ``Predict``
with its ``signature_name``; never a method that TF Serving lacks, which
production would not have.

Modules:

* ``launcher``: ``serve``, behind ``accent-pipeline serve``: runs
  ``tensorflow_model_server`` if it is on PATH, else the local server until a signal.
* ``server``: the local server's life cycle (``start_server``, ``RunningServer``).
* ``servicers``: the PredictionService and ModelService methods and the in-flight cap.
* ``batching``: concurrent ``serving_default`` requests answered by one call of ``serving_batch``.
* ``batch_signature``: the names of the served model's batched signature.
* ``model_lookup``: from a request's ModelSpec to the loaded model or version states.
* ``inputs``: a request's tensors against the signature and the size limits.
* ``rpc``: TF Serving's status codes for errors, and one log line per request.
* ``model_manager``: polls the base path, loads the latest complete version, hot swaps.
* ``versions``: which directory names are versions (shared with the Pusher and the baseline).
* ``grpc_options``: message size settings shared by the server and the client.
* ``client``: ``accent-pipeline predict``.
"""
