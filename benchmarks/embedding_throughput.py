"""Audio to YAMNet embeddings, three ways, each timed in its own child process.

* ``reference``: the keras-io example "English speaker accent recognition
  using Transfer Learning": a ``tf.data`` map over the files that reads and
  decodes each WAV (``tf.audio.decode_wav``), resamples it to 16 kHz with
  tensorflow-io (``tfio.audio.resample``) and calls the YAMNet SavedModel once
  per clip, with ``num_parallel_calls=AUTOTUNE``, then ``unbatch``, ``cache``,
  ``batch(64)`` and ``prefetch`` as the example does; the dataset is iterated
  to its end once (what the example's first training epoch does). Timed from
  loading YAMNet to the last batch.
* ``ours``: the project's embedding job as EmbeddingGen runs it: ``read_corpus``,
  then ``beam_job.build_embedding_pipeline`` with ``EmbedClipsDoFn`` configured
  from ``pipeline/configs.py`` (non-speech rule resolved as the component does,
  ``EMBEDDING_BATCH_PATCHES``), on the DirectRunner with
  ``configs.LOCAL_BEAM_PIPELINE_ARGS`` (multi-threading, one thread per core),
  writing TFRecords of tf.Examples, the quarantine report and the
  summary. Timed from reading the corpus to the end of the pipeline, so Beam's
  start-up (SDK worker processes importing TensorFlow and loading YAMNet) counts.
* ``limit``: the YAMNet network alone (``embed_patches``) on log-mel patches
  computed beforehand (untimed), in batches of ``EMBEDDING_BATCH_PATCHES``:
  the ceiling on this CPU.

All three load the same YAMNet SavedModel directory. Throughput is audio
seconds (of the 48 kHz corpus) per wall-clock second.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import os
import time
from pathlib import Path

from benchmarks import bench_corpus, child
from components import features

logger = logging.getLogger(__name__)

REFERENCE = "reference"
OURS = "ours"
LIMIT = "limit"

# The keras-io example's batch size and target sample rate.
REFERENCE_BATCH_SIZE = 64
REFERENCE_SAMPLE_RATE = 16000

# The splits EmbeddingGen writes (its SPLIT_NAMES; importing the component would import TFX).
OURS_SPLIT_NAMES = (features.TRAIN_SPLIT, features.EVAL_SPLIT)

# Name of the corpus index written by the demo corpus (as in OpenSLR-83).
INDEX_FILENAME = "line_index_all.csv"


@dataclasses.dataclass(frozen=True)
class ThroughputRun:
    """One timed embedding run.

    Attributes:
        approach: ``reference``, ``ours`` or ``limit``.
        num_clips: Clips embedded.
        audio_seconds: Their total duration.
        num_embeddings: Embeddings produced (one per 0.96 s patch).
        wall_seconds: Wall time of the timed part, measured in the child.
        detail: What was run, for the report.
    """

    approach: str
    num_clips: int
    audio_seconds: float
    num_embeddings: int
    wall_seconds: float
    detail: str

    @property
    def throughput(self) -> float:
        """Audio seconds per wall second."""
        return self.audio_seconds / self.wall_seconds


def read_index_files(corpus_dir: str) -> list[tuple[str, int]]:
    """Lists the corpus's clips as the keras-io example does: from the index CSV.

    Args:
        corpus_dir: A corpus written by ``components.demo_corpus`` (``line_index_all.csv`` and the WAVs).

    Returns:
        ``(wav path, class id of the accent)`` per index row.
    """
    files = []
    with open(os.path.join(corpus_dir, INDEX_FILENAME), encoding="utf-8", newline="") as index_file:
        for row in csv.reader(index_file, skipinitialspace=True):
            clip_id = row[1].strip()
            accent = features.ACCENT_CODE_TO_NAME[clip_id[:2]]
            files.append((os.path.join(corpus_dir, clip_id + ".wav"), features.class_id(accent)))
    return files


def run_reference(corpus_dir: str, yamnet_dir: str, audio_seconds: float) -> ThroughputRun:
    """Times the keras-io example's tf.data embedding (see the module docstring).

    Args:
        corpus_dir: The corpus.
        yamnet_dir: The YAMNet SavedModel directory.
        audio_seconds: Total duration of the corpus.

    Returns:
        The run.
    """
    child.configure_step_logging()
    import tensorflow as tf
    import tensorflow_io as tfio

    class_names = features.DEFAULT_CLASS_NAMES
    started = time.perf_counter()
    files = read_index_files(corpus_dir)
    yamnet_model = tf.saved_model.load(yamnet_dir)

    @tf.function
    def load_16k_audio_wav(filename: tf.Tensor) -> tf.Tensor:
        file_content = tf.io.read_file(filename)
        audio_wav, sample_rate = tf.audio.decode_wav(file_content, desired_channels=1)
        audio_wav = tf.squeeze(audio_wav, axis=-1)
        sample_rate = tf.cast(sample_rate, dtype=tf.int64)
        return tfio.audio.resample(audio_wav, rate_in=sample_rate, rate_out=REFERENCE_SAMPLE_RATE)

    def filepath_to_embeddings(filename: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        audio_wav = load_16k_audio_wav(filename)
        scores, embeddings, _ = yamnet_model(audio_wav)
        labels = tf.where(tf.argmax(scores, axis=1) == 0, label, len(class_names) - 1)
        return embeddings, tf.one_hot(labels, len(class_names))

    dataset = tf.data.Dataset.from_tensor_slices(([path for path, _ in files], [label for _, label in files]))
    dataset = dataset.map(filepath_to_embeddings, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
    dataset = dataset.cache().batch(REFERENCE_BATCH_SIZE).prefetch(tf.data.AUTOTUNE)
    num_embeddings = 0
    for embeddings, _ in dataset:
        num_embeddings += int(embeddings.shape[0])
    wall_seconds = time.perf_counter() - started
    return ThroughputRun(
        approach=REFERENCE,
        num_clips=len(files),
        audio_seconds=audio_seconds,
        num_embeddings=num_embeddings,
        wall_seconds=wall_seconds,
        detail="tf.data map (AUTOTUNE): decode_wav + tfio.audio.resample + YAMNet per clip; cache, batch 64",
    )


def _count_tfrecords(pattern: str) -> int:
    import tensorflow as tf

    files = tf.io.gfile.glob(pattern)
    if not files:
        return 0
    return sum(1 for _ in tf.data.TFRecordDataset(files))


def run_ours(
    corpus_dir: str,
    yamnet_dir: str,
    output_dir: str,
    beam_args: tuple[str, ...],
    max_clips: int | None = None,
) -> ThroughputRun:
    """Times the project's Beam embedding job (see the module docstring).

    Args:
        corpus_dir: The corpus.
        yamnet_dir: The YAMNet SavedModel directory.
        output_dir: Where the Examples and QuarantineReport files go (created).
        beam_args: Beam pipeline arguments (the pipeline's are ``configs.LOCAL_BEAM_PIPELINE_ARGS``).
        max_clips: Embed only the first clips of the corpus (to time Beam's fixed start-up); None for all.

    Returns:
        The run; ``num_embeddings`` is the number of tf.Examples read back from the written files.

    Raises:
        RuntimeError: If a clip was quarantined or the files hold fewer examples than expected.
    """
    child.configure_step_logging()
    import apache_beam as beam
    import numpy as np
    from apache_beam.options.pipeline_options import PipelineOptions

    from components import artifact_files, corpus
    from components.embedding import beam_job, speech
    from components.yamnet import export, params
    from pipeline import configs

    examples_uri = os.path.join(output_dir, "examples")
    report_uri = os.path.join(output_dir, "report")
    started = time.perf_counter()
    index = corpus.read_corpus(
        corpus_dir,
        accent_codes=configs.PipelineSettings().accent_codes,
        class_names=configs.PipelineSettings().class_names,
        split_strategy=configs.PipelineSettings().split_strategy,
        eval_fraction=configs.PipelineSettings().eval_fraction,
        seed=configs.PipelineSettings().split_seed,
    )
    records = index.records if max_clips is None else index.records[:max_clips]
    pretrained = export.describe_weights(yamnet_dir).pretrained
    embed_clips = beam_job.EmbedClipsDoFn(
        yamnet_dir=yamnet_dir,
        class_names=configs.PipelineSettings().class_names,
        non_speech_rule=speech.resolve_rule(
            configs.PipelineSettings().non_speech_rule, yamnet_is_pretrained=pretrained
        ),
        energy_threshold_dbfs=configs.PipelineSettings().energy_threshold_dbfs,
        batch_patches=configs.PipelineSettings().embedding_batch_patches,
    )
    os.makedirs(output_dir, exist_ok=True)
    clips_path = os.path.join(output_dir, "clips.csv")
    index_quarantine_path = os.path.join(output_dir, "index_quarantine.csv")
    corpus.write_clip_index(clips_path, records)
    corpus.write_quarantine_csv(index_quarantine_path, index.quarantine)
    with beam.Pipeline(options=PipelineOptions(list(beam_args))) as pipeline:
        beam_job.build_embedding_pipeline(
            pipeline,
            clips_path=clips_path,
            index_quarantine_path=index_quarantine_path,
            embed_clips=embed_clips,
            examples_uri=examples_uri,
            report_uri=report_uri,
            split_names=OURS_SPLIT_NAMES,
        )
    wall_seconds = time.perf_counter() - started
    quarantined = corpus.read_quarantine_csv(artifact_files.QuarantineReportFiles(report_uri).quarantine_path)
    if quarantined:
        raise RuntimeError(
            f"The embedding job quarantined {len(quarantined)} benchmark clips: {quarantined[:3]}"
        )
    num_embeddings = _count_tfrecords(
        os.path.join(examples_uri, "Split-*", beam_job.EXAMPLES_FILE_PREFIX + "-*")
    )
    durations = [bench_corpus.wav_seconds(record.source) for record in records]
    expected = sum(params.num_patches(round(seconds * features.SAMPLE_RATE)) for seconds in durations)
    if abs(num_embeddings - expected) > len(records):
        raise RuntimeError(
            f"The embedding job wrote {num_embeddings} examples; about {expected} were expected"
        )
    return ThroughputRun(
        approach=OURS,
        num_clips=len(records),
        audio_seconds=float(np.sum(durations)),
        num_embeddings=num_embeddings,
        wall_seconds=wall_seconds,
        detail=f"Beam DirectRunner {' '.join(beam_args)}: read_corpus -> EmbedClipsDoFn -> TFRecords",
    )


def run_limit(corpus_dir: str, yamnet_dir: str, audio_seconds: float, batch_patches: int) -> ThroughputRun:
    """Times YAMNet's network alone on the corpus's log-mel patches, in large batches.

    The patches are computed first (decoding and resampling with
    ``components.audio``, the front end with the SavedModel's
    ``log_mel_patches``), one warm-up batch is run, and only the
    ``embed_patches`` calls are timed.

    Args:
        corpus_dir: The corpus.
        yamnet_dir: The YAMNet SavedModel directory.
        audio_seconds: Total duration of the corpus.
        batch_patches: Patches per network call.

    Returns:
        The run.
    """
    child.configure_step_logging()
    import numpy as np
    import tensorflow as tf

    from components import audio
    from components.yamnet import export, network

    files = read_index_files(corpus_dir)
    model = tf.saved_model.load(yamnet_dir)
    patches = np.concatenate(
        [
            model.log_mel_patches(tf.constant(audio.load_waveform(Path(path).read_bytes(), path)))[
                export.PATCHES_OUTPUT
            ].numpy()
            for path, _ in files
        ],
        axis=0,
    )
    model.embed_patches(tf.constant(patches[:batch_patches]))
    started = time.perf_counter()
    num_embeddings = 0
    for start in range(0, patches.shape[0], batch_patches):
        outputs = model.embed_patches(tf.constant(patches[start : start + batch_patches]))
        num_embeddings += outputs[network.EMBEDDINGS_OUTPUT].numpy().shape[0]
        outputs[network.SCORES_OUTPUT].numpy()
    wall_seconds = time.perf_counter() - started
    return ThroughputRun(
        approach=LIMIT,
        num_clips=len(files),
        audio_seconds=audio_seconds,
        num_embeddings=num_embeddings,
        wall_seconds=wall_seconds,
        detail=f"embed_patches on precomputed log-mel patches, batches of {batch_patches}",
    )
