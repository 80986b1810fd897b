"""The Gradio page: upload or record speech, see the accent the served model predicts.

The page is a gRPC client of TF Serving (or the project's local server) and
never loads the model. It works with no internet: Gradio's front end is served
from the installed package, the theme uses the fonts Gradio ships and the
system's, analytics and the version check are off, and no share link is made.

Limits are the server's: an upload may be at most one gRPC request
(``grpc_options.DEFAULT_MAX_MESSAGE_BYTES``) and its audio at most
``defaults.DEFAULT_MAX_AUDIO_SECONDS``. Uploads land in a private temporary
folder and each is deleted once it has been read; the folder goes when the
page stops.

Every element a test or a script reads has a fixed ``elem_id`` (``ELEMENT_IDS``).
"""

from __future__ import annotations

import dataclasses
import html
import itertools
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from components import features
from components.errors import InvalidArgumentError
from components.serving import client
from components.serving import defaults as serving_defaults
from components.serving.grpc_options import DEFAULT_MAX_MESSAGE_BYTES
from components.web import defaults as web_defaults
from components.web import examples as example_clips
from components.web import figures, signals, uploads
from components.web.serving import NO_FILE, PageError, ServingConnection

logger = logging.getLogger(__name__)

DEFAULT_HOST = web_defaults.DEFAULT_HOST
DEFAULT_PORT = web_defaults.DEFAULT_PORT

# Stable ids of the page's elements (HTML ids), for tests and scripts.
AUDIO_INPUT_ID = "audio-input"
PREDICT_BUTTON_ID = "predict-button"
RESULT_ID = "result"
PREDICTED_ACCENT_ID = "predicted-accent"
MESSAGE_ID = "message"
PROBABILITY_TABLE_ID = "probability-table"
CLASS_PROBABILITIES_ID = "class-probabilities"
PATCH_TIMELINE_ID = "patch-timeline"
LOG_MEL_ID = "log-mel"
MODEL_INFO_ID = "model-info"
REFRESH_BUTTON_ID = "refresh-model-info"
EXAMPLES_ID = "example-clips"
ELEMENT_IDS = (
    AUDIO_INPUT_ID,
    PREDICT_BUTTON_ID,
    RESULT_ID,
    CLASS_PROBABILITIES_ID,
    PATCH_TIMELINE_ID,
    LOG_MEL_ID,
    MODEL_INFO_ID,
    REFRESH_BUTTON_ID,
)

# An event count never reached.
_NEVER = 2**62

# What Gradio's upload limit is written in: bytes, as "<n>b".
_BYTES_SUFFIX = "b"


@dataclasses.dataclass(frozen=True)
class PageSettings:
    """What the page talks to and what it accepts.

    Attributes:
        server: "HOST:PORT" of TF Serving or the project's server.
        model_name: The name the model is served under.
        max_audio_seconds: Longest audio accepted, in seconds (the server's default limit).
        max_file_bytes: Largest upload, in bytes (one gRPC request at the server's default limit).
        examples_dir: A folder of clips (a corpus) to offer as examples, or None.
        class_names: Class names in the order of the model's probability vectors.
    """

    server: str
    model_name: str = "accent"
    max_audio_seconds: float = serving_defaults.DEFAULT_MAX_AUDIO_SECONDS
    max_file_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    examples_dir: str | None = None
    class_names: tuple[str, ...] = features.DEFAULT_CLASS_NAMES

    def __post_init__(self) -> None:
        """Checks the settings.

        Raises:
            InvalidArgumentError: If the server address, a limit or the examples folder is bad.
        """
        host, separator, port = self.server.rpartition(":")
        if not separator or not host or not port.isdigit():
            raise InvalidArgumentError(f"--server must be HOST:PORT, got {self.server!r}")
        if not self.model_name:
            raise InvalidArgumentError("--model-name must not be empty")
        if not 0 < self.max_audio_seconds < float("inf"):
            raise InvalidArgumentError(f"max_audio_seconds must be positive, got {self.max_audio_seconds}")
        if self.max_file_bytes <= 0:
            raise InvalidArgumentError(f"max_file_bytes must be positive, got {self.max_file_bytes}")
        if self.examples_dir is not None and not Path(self.examples_dir).is_dir():
            raise InvalidArgumentError(f"--examples {self.examples_dir} is not a folder")


@dataclasses.dataclass(frozen=True)
class PageAnswer:
    """What the page shows after one request, in the order of the Gradio outputs.

    Attributes:
        result_html: The result or error panel (ids ``RESULT_ID``, ``PREDICTED_ACCENT_ID``, ``MESSAGE_ID``).
        class_probabilities: Class name to probability for the bar chart, or None.
        patch_timeline: The per-patch timeline figure, or None.
        log_mel: The log-mel figure, or None.
        model_info: The model's name and version, as Markdown.
    """

    result_html: str
    class_probabilities: dict[str, float] | None
    patch_timeline: Any
    log_mel: Any
    model_info: str

    def as_outputs(self) -> tuple[Any, ...]:
        """The values of the Gradio outputs, in order."""
        return (
            self.result_html,
            self.class_probabilities,
            self.patch_timeline,
            self.log_mel,
            self.model_info,
        )


class AccentPage:
    """The page's logic, apart from Gradio: one request in, one ``PageAnswer`` out."""

    def __init__(self, settings: PageSettings) -> None:
        """Opens the connection to the server and finds the example clips.

        Args:
            settings: What the page talks to and accepts.
        """
        self.settings = settings
        self.connection = ServingConnection(settings.server, settings.model_name, settings.max_file_bytes)
        self.example_paths: list[Path] = (
            example_clips.find_example_clips(settings.examples_dir) if settings.examples_dir else []
        )
        # Copies of the example clips that Gradio hands over are kept, so that they can be clicked again.
        self.example_digests = frozenset(uploads.file_digest(path) for path in self.example_paths)
        self._request_numbers = itertools.count(1)
        self._request_lock = threading.Lock()

    def close(self) -> None:
        """Closes the connection to the server."""
        self.connection.close()

    def model_info_markdown(self) -> str:
        """The served model's name, version and state, or why they are unknown."""
        try:
            info = self.connection.model_info()
        except PageError as error:
            return f"**Served model:** unknown. {html.escape(str(error))}"
        outputs = ", ".join(info.signature_outputs) or "none listed"
        return (
            f"**Served model:** {html.escape(info.describe())}, at `{self.settings.server}`. "
            f"Outputs of `{features.SERVING_SIGNATURE}`: {html.escape(outputs)}. "
            f"Requests call `{html.escape(info.signature_name)}`."
        )

    def _next_request_number(self) -> int:
        with self._request_lock:
            return next(self._request_numbers)

    def answer(self, audio_path: str | None) -> PageAnswer:
        """Scores one uploaded or recorded file and builds everything the page shows.

        Never raises for bad input or a failing server: the answer then carries
        the message, and the page stays usable.

        Args:
            audio_path: The file Gradio received, or None when there is none.

        Returns:
            The page's answer.
        """
        request_number = self._next_request_number()
        try:
            if not audio_path:
                raise PageError(
                    NO_FILE, "No audio: upload a file, record from the microphone or pick an example."
                )
            encoded, filename = uploads.read_upload(
                audio_path, self.settings.max_file_bytes, self.example_digests
            )
            waveform = uploads.decode_upload(encoded, filename, self.settings.max_audio_seconds)
            prediction = self.connection.predict(waveform)
        except PageError as error:
            logger.info("Request %d refused (%s): %s", request_number, error.kind, error)
            return PageAnswer(
                result_html=_error_html(request_number, error),
                class_probabilities=None,
                patch_timeline=None,
                log_mel=None,
                model_info=self.model_info_markdown(),
            )
        seconds = waveform.size / features.SAMPLE_RATE
        logger.info(
            "Request %d: %s, %.1f s: %s (model version %d)",
            request_number,
            filename,
            seconds,
            prediction.accent,
            prediction.model_version,
        )
        return PageAnswer(
            result_html=_result_html(request_number, filename, seconds, prediction, self.settings),
            class_probabilities=dict(prediction.class_probabilities),
            patch_timeline=figures.patch_timeline(prediction.patch_probabilities, self.settings.class_names),
            log_mel=figures.log_mel_view(figures.log_mel_spectrogram(waveform)),
            model_info=self.model_info_markdown(),
        )


def _result_html(
    request_number: int, filename: str, seconds: float, prediction: client.Prediction, settings: PageSettings
) -> str:
    """The result panel: the accent, the version that answered, and a table of the class probabilities."""
    ranked = sorted(prediction.class_probabilities.items(), key=lambda item: item[1], reverse=True)
    rows = "".join(
        f'<tr data-class="{html.escape(name)}" data-probability="{probability:.6f}">'
        f"<td>{html.escape(name)}</td><td>{probability:.2%}</td></tr>"
        for name, probability in ranked
    )
    num_patches = len(prediction.patch_probabilities)
    return (
        f'<div id="{RESULT_ID}" data-state="ok" data-request="{request_number}">'
        f'<p style="font-size:1.4em;margin:0">Predicted accent: <strong id="{PREDICTED_ACCENT_ID}">'
        f"{html.escape(prediction.accent)}</strong></p>"
        f"<p>{html.escape(filename)}: {seconds:.1f} s, {num_patches} patch"
        f"{'' if num_patches == 1 else 'es'}; "
        f"answered by model {html.escape(settings.model_name)} version {prediction.model_version}.</p>"
        f'<table id="{PROBABILITY_TABLE_ID}"><thead><tr><th>class</th><th>probability</th></tr></thead>'
        f"<tbody>{rows}</tbody></table></div>"
    )


def _error_html(request_number: int, error: PageError) -> str:
    """The error panel: the message, in a box the page styles as an error."""
    return (
        f'<div id="{RESULT_ID}" data-state="error" data-kind="{error.kind}" data-request="{request_number}">'
        f'<p id="{MESSAGE_ID}" style="border:2px solid #b91c1c;border-radius:6px;padding:0.6em;'
        f'color:#7f1d1d;background:#fef2f2">{html.escape(str(error))}</p></div>'
    )


def _intro_markdown(settings: PageSettings) -> str:
    return (
        "# English accent recognition\n"
        "Upload speech (WAV, FLAC, Ogg Vorbis or MP3) or record it from the microphone, then press "
        "**Predict accent**. The page sends the audio to the served model over gRPC, as "
        "`accent-pipeline predict` does, and shows its answer. "
        f"Limits: {settings.max_audio_seconds:g} s of audio and {settings.max_file_bytes / 1e6:.0f} MB per "
        "file; no file is kept after the request."
    )


def build_page(page: AccentPage) -> Any:
    """Builds the Gradio Blocks of the page.

    Args:
        page: The page's logic.

    Returns:
        The ``gradio.Blocks``, not yet launched.
    """
    import gradio as gr

    with gr.Blocks(title="Accent recognition", analytics_enabled=False, delete_cache=(600, 3600)) as blocks:
        gr.Markdown(_intro_markdown(page.settings))
        model_info = gr.Markdown("**Served model:** asking the server...", elem_id=MODEL_INFO_ID)
        with gr.Row():
            with gr.Column(scale=1):
                audio_input = gr.Audio(
                    sources=["upload", "microphone"],
                    type="filepath",
                    label="Speech",
                    elem_id=AUDIO_INPUT_ID,
                )
                with gr.Row():
                    predict_button = gr.Button("Predict accent", variant="primary", elem_id=PREDICT_BUTTON_ID)
                    refresh_button = gr.Button("Refresh model info", elem_id=REFRESH_BUTTON_ID)
            with gr.Column(scale=1):
                result = gr.HTML(
                    f'<div id="{RESULT_ID}" data-state="empty" data-request="0">No prediction yet.</div>'
                )
                class_probabilities = gr.Label(
                    label="Class probabilities",
                    num_top_classes=len(page.settings.class_names),
                    elem_id=CLASS_PROBABILITIES_ID,
                )
        patch_timeline = gr.Plot(label="Per-patch timeline", format="png", elem_id=PATCH_TIMELINE_ID)
        log_mel = gr.Plot(label="Log-mel spectrogram", format="png", elem_id=LOG_MEL_ID)
        outputs = [result, class_probabilities, patch_timeline, log_mel, model_info]

        def predict(audio_path: str | None) -> tuple[Any, ...]:
            return page.answer(audio_path).as_outputs()

        if page.example_paths:
            gr.Examples(
                examples=[[str(path)] for path in page.example_paths],
                inputs=[audio_input],
                label="Example clips (click one, then Predict accent)",
                example_labels=[path.name for path in page.example_paths],
                cache_examples=False,
                elem_id=EXAMPLES_ID,
            )
        predict_button.click(predict, inputs=[audio_input], outputs=outputs, concurrency_limit=2)
        audio_input.stop_recording(predict, inputs=[audio_input], outputs=outputs, concurrency_limit=2)
        refresh_button.click(page.model_info_markdown, outputs=[model_info])
        blocks.load(page.model_info_markdown, outputs=[model_info])
    return blocks


def page_theme() -> Any:
    """Gradio's default look with the fonts Gradio ships and the system's: no web font is fetched."""
    import gradio as gr

    return gr.themes.Default(
        font=[gr.themes.LocalFont("Source Sans Pro"), "ui-sans-serif", "system-ui", "sans-serif"],
        font_mono=["ui-monospace", "Consolas", "monospace"],
    )


@dataclasses.dataclass
class RunningPage:
    """A launched page.

    Attributes:
        url: The page's address.
        blocks: The Gradio Blocks.
        page: The page's logic.
        upload_dir: The private folder of uploads, removed by ``stop``.
    """

    url: str
    blocks: Any
    page: AccentPage
    upload_dir: str

    def stop(self) -> None:
        """Stops the web server, closes the gRPC channel and removes the upload folder."""
        self.blocks.close()
        self.page.close()
        shutil.rmtree(self.upload_dir, ignore_errors=True)


def launch_page(
    settings: PageSettings, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, block: bool = False
) -> RunningPage:
    """Starts the page's web server.

    Gradio's upload folder is set, for this process, to a new private
    temporary folder (``GRADIO_TEMP_DIR``), which ``RunningPage.stop`` removes.

    Args:
        settings: What the page talks to and accepts.
        host: Address to listen on; 127.0.0.1 for this machine only.
        port: Port to listen on; 0 for a free one.
        block: Serve until interrupted (Ctrl-C or SIGTERM), then stop; else return at once.

    Returns:
        The running page (already stopped when ``block``).

    Raises:
        InvalidArgumentError: If the port is not free or the settings are bad.
    """
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    # Gradio's per-function summary of past events (for its monitoring view) needs pandas 2, while the
    # TFX stack pins pandas 1.5; it fails after every event, so it is never computed.
    os.environ["GRADIO_ANALYTICS_CACHE_FREQUENCY"] = str(_NEVER)
    upload_dir = tempfile.mkdtemp(prefix="accent-web-uploads-")
    os.environ["GRADIO_TEMP_DIR"] = upload_dir
    page = AccentPage(settings)
    blocks = build_page(page)
    allowed = [str(Path(settings.examples_dir).resolve())] if settings.examples_dir else []
    try:
        _, local_url, _ = blocks.launch(
            server_name=host,
            server_port=port or _free_port(host),
            share=False,
            prevent_thread_lock=True,
            quiet=True,
            show_error=False,
            max_file_size=f"{settings.max_file_bytes}{_BYTES_SUFFIX}",
            allowed_paths=allowed,
            ssr_mode=False,
            mcp_server=False,
            pwa=False,
            enable_monitoring=False,
            footer_links=[],
            theme=page_theme(),
        )
    except OSError as error:
        page.close()
        shutil.rmtree(upload_dir, ignore_errors=True)
        raise InvalidArgumentError(f"cannot start the page on {host}:{port}: {error}") from error
    running = RunningPage(url=local_url, blocks=blocks, page=page, upload_dir=upload_dir)
    logger.info(
        "Accent page on %s, asking %s for model %r (%d example clips)",
        local_url,
        settings.server,
        settings.model_name,
        len(page.example_paths),
    )
    if block:
        try:
            with signals.terminate_as_interrupt():
                blocks.block_thread()
        finally:
            running.stop()
    return running


def _free_port(host: str) -> int:
    """A port that is free on ``host`` now."""
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]
