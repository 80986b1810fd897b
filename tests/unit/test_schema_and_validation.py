"""The curated schema accepts the examples EmbeddingGen writes, and the gate names what breaks it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2

from components import features, validation
from components.corpus.records import ClipRecord
from components.embedding import patch_examples
from schemas import SCHEMA_PATH
from tests import example_builders


def _record() -> ClipRecord:
    return ClipRecord(
        clip_id="scf_00001_0001",
        source="/corpus/scf_00001_0001.wav",
        accent_code="sc",
        accent="Scottish",
        label=features.class_id("Scottish"),
        gender="female",
        speaker_id="scf_00001",
        split=features.TRAIN_SPLIT,
        transcript="A transcript.",
    )


def _statistics(examples: list[bytes]):
    import tensorflow as tf

    parsed = [tf.train.Example.FromString(example) for example in examples]
    columns: dict[str, list] = {}
    for example in parsed:
        for name, feature in example.features.feature.items():
            kind = feature.WhichOneof("kind")
            columns.setdefault(name, []).append(np.array(getattr(feature, kind).value))
    import pandas as pd

    return tfdv.generate_statistics_from_dataframe(
        pd.DataFrame({name: values for name, values in columns.items()})
    )


def test_patch_example_carries_every_feature() -> None:
    import tensorflow as tf

    embedding = np.linspace(0.0, 1.0, features.EMBEDDING_SIZE, dtype=np.float32)
    serialized = patch_examples.PatchExampleEncoder(_record()).encode(
        3, embedding, features.class_id("Scottish"), True
    )
    parsed = tf.io.parse_single_example(serialized, example_builders.patch_feature_spec())
    np.testing.assert_allclose(parsed[features.EMBEDDING_KEY].numpy(), embedding)
    assert parsed[features.LABEL_KEY].numpy() == 3
    assert parsed[features.SPEAKER_ID_KEY].numpy() == b"scf_00001"
    assert parsed[features.PATCH_INDEX_KEY].numpy() == 3
    assert parsed[features.IS_SPEECH_KEY].numpy() == 1


def test_schema_accepts_good_examples_and_flags_a_wrong_embedding() -> None:
    schema = tfdv.load_schema_text(str(SCHEMA_PATH))
    rng = np.random.default_rng(0)
    encoder = patch_examples.PatchExampleEncoder(_record())
    good = [encoder.encode(index, rng.random(features.EMBEDDING_SIZE), 3, True) for index in range(4)]
    assert not tfdv.validate_statistics(_statistics(good), schema).anomaly_info
    short = encoder.encode(9, rng.random(100), 3, True)
    anomalies = tfdv.validate_statistics(_statistics([*good, short]), schema)
    assert features.EMBEDDING_KEY in anomalies.anomaly_info


def test_gate_describes_each_anomaly(tmp_path: Path) -> None:
    anomalies = anomalies_pb2.Anomalies()
    anomalies.anomaly_info["embedding"].description = "Some examples have fewer values than expected."
    split_dir = tmp_path / "Split-train"
    split_dir.mkdir()
    (split_dir / validation.ANOMALIES_FILE).write_bytes(anomalies.SerializeToString())
    (tmp_path / "Split-eval").mkdir()
    (tmp_path / "Split-eval" / validation.ANOMALIES_FILE).write_bytes(
        anomalies_pb2.Anomalies().SerializeToString()
    )
    lines = validation.describe_anomalies(str(tmp_path), ["train", "eval"])
    assert lines == ["split 'train', feature 'embedding': Some examples have fewer values than expected."]


def test_gate_finds_nothing_in_clean_anomalies(tmp_path: Path) -> None:
    (tmp_path / "Split-train").mkdir()
    (tmp_path / "Split-train" / validation.ANOMALIES_FILE).write_bytes(
        anomalies_pb2.Anomalies().SerializeToString()
    )
    assert validation.describe_anomalies(str(tmp_path), ["train"]) == []


@pytest.mark.parametrize("good_clips", [0])
def test_no_good_clip_stops_the_run(good_clips: int) -> None:
    from components.embedding import component

    with pytest.raises(component.TooManyBadClipsError, match="No good clip"):
        component.check_bad_fraction(good_clips, 5, 5, 0.5, "/out/quarantine.csv")


def test_bad_fraction_over_the_limit_stops_the_run() -> None:
    from components.embedding import component

    with pytest.raises(component.TooManyBadClipsError, match=r"3 of 10 .*30.0%.*/out/quarantine.csv"):
        component.check_bad_fraction(7, 3, 10, 0.2, "/out/quarantine.csv")
    component.check_bad_fraction(8, 2, 10, 0.2, "/out/quarantine.csv")
