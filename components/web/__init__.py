"""A web page to try the served accent model: a Gradio app that is only a gRPC client of the serving stack.

The page sends audio through the same ``PredictionService.Predict`` as
``accent-pipeline predict`` (``components/serving/client.py``), against TF
Serving or the project's local server, and never loads the model itself.
Uploads are decoded by ``components/audio.py`` with the server's limits
(``components/serving/defaults.py``, ``components/serving/grpc_options.py``).

Modules:

* ``serving``: the page's gRPC side: the served model's name, version and state
  (GetModelMetadata, GetModelStatus), Predict, and one message per failure.
* ``uploads``: an uploaded or recorded file to a waveform, within the limits; files deleted after use.
* ``figures``: the class-probability bars, the per-patch timeline and the log-mel view.
* ``examples``: a few clips of a corpus (one per accent) to click.
* ``app``: the Gradio page and its launch (``accent-pipeline web``).
* ``local_serving``: ``accent-pipeline web --model-base-path``: the serving
  command in a child process, so that one command starts server and page.
* ``signals``: SIGTERM as Ctrl-C, so that both stop cleanly under a supervisor.
* ``defaults``: the page's defaults, light enough for the command line.
"""
