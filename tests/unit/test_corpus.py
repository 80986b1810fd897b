import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from components import audio, features
from components.corpus import index, labels, quarantine, read_corpus, records, sources, split
from components.errors import UnusableClipError
from tests import corpus_builders
from tests.corpus_builders import ClipSpec


def _clips(*clip_ids: str, seconds: float = 0.3) -> list[ClipSpec]:
    return [
        ClipSpec(clip_id, f"Sentence number {number}, with a comma.", seconds)
        for number, clip_id in enumerate(clip_ids)
    ]


# Index parsing.


def test_index_rows_split_on_first_two_commas_and_strip_leading_spaces():
    text = (
        "EN0001, irm_02484_00388340153, Hello, world, again\n"
        "\n"
        "EN0002, wef_00001_00000002.wav, \n"
        "EN0003,scm_00003_00000003\n"
        "no commas here\n"
        "EN0005, , empty filename\n"
    )

    rows, malformed = index.parse_index_text(index.decode_index_text(text.encode("utf-8-sig")), "idx.csv")

    assert [(row.row_id, row.clip_id, row.transcript) for row in rows] == [
        ("EN0001", "irm_02484_00388340153", "Hello, world, again"),
        ("EN0002", "wef_00001_00000002", ""),
        ("EN0003", "scm_00003_00000003", ""),
    ]
    assert [row.line_number for row in rows] == [1, 3, 4]
    assert [(bad.location, bad.reason.split(":")[0]) for bad in malformed] == [
        ("idx.csv:5", "malformed index row"),
        ("idx.csv:6", "malformed index row"),
    ]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("line_index_all.csv", True),
        ("a/b/line_index.csv", True),
        ("x.zip!sub/line_index.csv", True),
        ("index.csv", False),
    ],
)
def test_index_filenames(name, expected):
    assert index.is_index_filename(name) is expected


# Labels.


def test_labels_from_filename():
    clip_labels = labels.parse_clip_name("irm_02484_00388340153")

    assert clip_labels == labels.ClipLabels(
        accent_code="ir", accent="Irish", label=0, gender="male", speaker_id="irm_02484"
    )


@pytest.mark.parametrize(
    ("prefix", "accent"),
    [
        ("ir", "Irish"),
        ("mi", "Midlands"),
        ("no", "Northern"),
        ("sc", "Scottish"),
        ("so", "Southern"),
        ("we", "Welsh"),
    ],
)
def test_every_accent_code_gets_its_class_id(prefix, accent):
    clip_labels = labels.parse_clip_name(f"{prefix}f_00001_00000001")

    assert clip_labels.accent == accent
    assert clip_labels.gender == "female"
    assert features.DEFAULT_CLASS_NAMES[clip_labels.label] == accent


def test_same_speaker_number_in_two_archives_gives_two_speakers():
    assert (
        labels.parse_clip_name("irm_00001_1").speaker_id != labels.parse_clip_name("irf_00001_1").speaker_id
    )


def test_custom_accent_mapping_and_class_names():
    clip_labels = labels.parse_clip_name("scm_00001_00000001", {"sc": "Scots"}, ("Other", "Scots"))

    assert (clip_labels.accent, clip_labels.label) == ("Scots", 1)


@pytest.mark.parametrize(
    ("clip_id", "reason"),
    [
        ("xxm_00001_00000001", "unknown accent code 'xx'"),
        ("irx_00001_00000001", "malformed filename"),
        ("irm00001", "malformed filename"),
        ("IRM_00001_00000001", "malformed filename"),
    ],
)
def test_bad_filenames(clip_id, reason):
    with pytest.raises(labels.LabelError) as raised:
        labels.parse_clip_name(clip_id)
    assert raised.value.reason.startswith(reason)


def test_accent_mapping_must_match_class_names():
    with pytest.raises(ValueError, match="not a class name"):
        labels.validate_label_vocabulary({"ir": "Hibernian"}, features.DEFAULT_CLASS_NAMES)
    with pytest.raises(ValueError, match="two lowercase letters"):
        labels.validate_label_vocabulary({"IRL": "Irish"}, features.DEFAULT_CLASS_NAMES)


# Reading corpora.


def test_read_loose_corpus_with_wavs_in_subdirectories(tmp_path):
    clips = _clips("wem_00002_00000002", "irm_02484_00388340153", "scf_00003_00000003")
    corpus_builders.build_openslr_corpus(str(tmp_path), clips, subdirectory="audio/nested")

    corpus = read_corpus(str(tmp_path))

    assert [record.clip_id for record in corpus.records] == sorted(clip.clip_id for clip in clips)
    first = corpus.records[0]
    assert first.source == os.path.join(str(tmp_path), "audio", "nested", "irm_02484_00388340153.wav")
    assert (first.accent_code, first.accent, first.label, first.gender, first.speaker_id) == (
        "ir",
        "Irish",
        0,
        "male",
        "irm_02484",
    )
    assert first.transcript == "Sentence number 1, with a comma."
    assert sources.read_clip_bytes(first.source) == clips[1].file_bytes()
    assert (corpus.quarantine, corpus.duplicate_rows, corpus.total_rows) == ([], 0, 3)


@pytest.mark.parametrize("archive_subfolder", [True, False])
def test_read_zip_archives_in_place(tmp_path, archive_subfolder):
    clips = _clips("irm_00001_00000001", "irm_00001_00000002", "sof_00009_00000003")
    corpus_builders.build_openslr_corpus(
        str(tmp_path), clips, as_zip=True, archive_subfolder=archive_subfolder
    )

    corpus = read_corpus(str(tmp_path))

    assert sorted(os.listdir(tmp_path)) == ["irish_english_male.zip", "southern_english_female.zip"]
    assert corpus.archives_scanned == 2
    assert [record.clip_id for record in corpus.records] == [clip.clip_id for clip in clips]
    folder = "irish_english_male/" if archive_subfolder else ""
    expected_source = f"{tmp_path}/irish_english_male.zip!{folder}irm_00001_00000001.wav"
    assert corpus.records[0].source == expected_source
    for record, clip in zip(corpus.records, clips, strict=True):
        assert sources.read_clip_bytes(record.source) == clip.file_bytes()
    assert corpus.records[2].transcript == clips[2].transcript


def test_mixed_zips_and_loose_files_with_a_global_index(tmp_path):
    zipped = _clips("irm_00001_00000001", "irm_00001_00000002")
    loose = _clips("nom_00005_00000005")
    corpus_builders.build_openslr_corpus(str(tmp_path), zipped, as_zip=True)
    # line_index_all.csv lists every clip, including those whose index is inside a zip.
    corpus_builders.build_openslr_corpus(
        str(tmp_path),
        loose,
        extra_index_lines=[corpus_builders.index_line(10, clip.clip_id, clip.transcript) for clip in zipped],
    )

    corpus = read_corpus(str(tmp_path))

    assert [record.clip_id for record in corpus.records] == [
        "irm_00001_00000001",
        "irm_00001_00000002",
        "nom_00005_00000005",
    ]
    assert corpus.records[0].source.endswith(".zip!irish_english_male/irm_00001_00000001.wav")
    assert corpus.records[2].source == str(tmp_path / "nom_00005_00000005.wav")
    assert (corpus.duplicate_rows, corpus.total_rows, corpus.quarantine) == (0, 3, [])


def test_bad_corpus_quarantine_is_exact(tmp_path):
    built = corpus_builders.build_bad_corpus(str(tmp_path / "corpus"))

    corpus = read_corpus(built.root)

    got_index_quarantine = [(entry.filename, entry.reason) for entry in corpus.quarantine]
    assert len(got_index_quarantine) == len(built.index_quarantine)
    for (filename, reason), (expected_filename, prefix) in zip(
        got_index_quarantine, built.index_quarantine, strict=True
    ):
        assert filename == expected_filename
        assert reason.startswith(prefix)
    assert corpus.duplicate_rows == built.duplicate_rows == 1
    assert corpus.total_rows == len(corpus.records) + len(corpus.quarantine)

    read_quarantine = []
    decoded = {}
    for record in corpus.records:
        try:
            decoded[record.clip_id] = audio.load_waveform(
                sources.read_clip_bytes(record.source),
                record.clip_id,
                max_seconds=corpus_builders.BAD_CORPUS_MAX_CLIP_SECONDS,
            )
        except UnusableClipError as error:  # A read error or a decode error.
            read_quarantine.append((record.clip_id, error.reason))
    assert sorted(decoded) == built.good_clip_ids
    assert [filename for filename, _ in read_quarantine] == [
        filename for filename, _ in built.read_quarantine
    ]
    for (_, reason), (_, prefix) in zip(read_quarantine, built.read_quarantine, strict=True):
        assert reason.startswith(prefix)
    for clip_id, waveform in decoded.items():
        spec = built.good_clips[clip_id]
        assert len(waveform) == pytest.approx(spec.seconds * features.SAMPLE_RATE, abs=1)
    assert np.all(decoded["scf_00008_00000008"] == 0.0)


def test_bad_corpus_decodes_each_odd_format_to_its_signal(tmp_path):
    built = corpus_builders.build_bad_corpus(str(tmp_path / "corpus"))
    corpus = read_corpus(built.root)

    for record in corpus.records:
        if record.clip_id not in built.good_clips:
            continue
        spec = built.good_clips[record.clip_id]
        decoded = audio.decode_audio(sources.read_clip_bytes(record.source), record.clip_id)
        assert (decoded.sample_rate, decoded.num_channels) == (spec.sample_rate, spec.channels)
        tolerance = corpus_builders.quantisation_step(spec.sample_format) + 1e-6
        np.testing.assert_allclose(decoded.waveform, spec.mono_waveform(), atol=tolerance)


def test_unindexed_wavs_are_ignored_and_counted(tmp_path):
    corpus_builders.build_openslr_corpus(str(tmp_path), _clips("som_00001_00000001"))
    corpus_builders.write_wav(str(tmp_path / "extra" / "som_00002_00000002.wav"), np.zeros(100), 16000)

    corpus = read_corpus(str(tmp_path))

    assert [record.clip_id for record in corpus.records] == ["som_00001_00000001"]
    assert corpus.unindexed_files == 1


def test_unreadable_archive_is_quarantined(tmp_path):
    corpus_builders.build_openslr_corpus(str(tmp_path), _clips("som_00001_00000001"))
    (tmp_path / "welsh_english_male.zip").write_bytes(b"PK\x03\x04 this is not really a zip")

    corpus = read_corpus(str(tmp_path))

    assert [entry.filename for entry in corpus.quarantine] == ["welsh_english_male.zip"]
    assert corpus.quarantine[0].reason.startswith("unreadable archive: ")
    assert len(corpus.records) == 1


def test_zip_member_with_crc_error_is_unreadable(tmp_path):
    clip = ClipSpec("scm_00001_00000001", seconds=0.5)
    corpus_builders.write_corrupt_archive(str(tmp_path / "scottish_english_male.zip"), clip)
    corpus = read_corpus(str(tmp_path))

    with pytest.raises(sources.ClipReadError) as raised:
        sources.read_clip_bytes(corpus.records[0].source)

    assert not isinstance(raised.value, audio.AudioDecodeError), "a read error is no decode error"
    assert raised.value.reason.startswith("unreadable archive member: Bad CRC-32")


def test_read_clip_bytes_missing(tmp_path):
    for source in (str(tmp_path / "gone.wav"), f"{tmp_path}/gone.zip!a.wav"):
        with pytest.raises(sources.ClipReadError) as raised:
            sources.read_clip_bytes(source)
        assert raised.value.reason == "missing file"
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as archive:
        archive.writestr("b.wav", b"RIFF")
    with pytest.raises(sources.ClipReadError) as raised:
        sources.read_clip_bytes(f"{tmp_path}/a.zip!missing.wav")
    assert raised.value.reason.startswith("unreadable archive member")


def test_corpus_without_index_is_an_error(tmp_path):
    corpus_builders.write_wav(str(tmp_path / "som_00002_00000002.wav"), np.zeros(100), 16000)

    with pytest.raises(ValueError, match="No index file"):
        read_corpus(str(tmp_path))
    with pytest.raises(ValueError, match="does not exist"):
        read_corpus(str(tmp_path / "nowhere"))


def test_read_corpus_rejects_bad_settings(tmp_path):
    corpus_builders.build_openslr_corpus(str(tmp_path), _clips("som_00001_00000001"))

    with pytest.raises(ValueError, match="split_strategy"):
        read_corpus(str(tmp_path), split_strategy="random")
    with pytest.raises(ValueError, match="eval_fraction"):
        read_corpus(str(tmp_path), eval_fraction=1.5)


# Splits.


def _many_speakers(num_speakers: int, clips_per_speaker: int = 3) -> dict[str, str]:
    return {
        f"som_{speaker:05d}_{clip:08d}": f"som_{speaker:05d}"
        for speaker in range(num_speakers)
        for clip in range(clips_per_speaker)
    }


def test_speaker_split_is_deterministic_disjoint_and_about_the_right_size():
    clip_speakers = _many_speakers(300)

    first = split.assign_splits(clip_speakers, "speaker", 0.1)
    second = split.assign_splits(dict(reversed(list(clip_speakers.items()))), "speaker", 0.1)

    assert first == second
    speakers_by_split = {
        name: {clip_speakers[clip_id] for clip_id, split_name in first.items() if split_name == name}
        for name in (features.TRAIN_SPLIT, features.EVAL_SPLIT)
    }
    assert not speakers_by_split[features.TRAIN_SPLIT] & speakers_by_split[features.EVAL_SPLIT]
    assert 15 <= len(speakers_by_split[features.EVAL_SPLIT]) <= 45
    for speaker_id in speakers_by_split[features.EVAL_SPLIT]:
        assert split.speaker_fraction(speaker_id) < 0.1


def test_speaker_split_does_not_move_speakers_when_others_are_added():
    small = split.assign_splits(_many_speakers(50), "speaker", 0.2)
    large = split.assign_splits(_many_speakers(120), "speaker", 0.2)

    assert all(large[clip_id] == split_name for clip_id, split_name in small.items())


def test_speaker_split_keeps_both_sides_non_empty():
    clip_speakers = _many_speakers(5)
    fractions = {speaker: split.speaker_fraction(speaker) for speaker in set(clip_speakers.values())}

    nearly_no_eval = split.split_speakers(sorted(fractions), 1e-12)
    nearly_all_eval = split.split_speakers(sorted(fractions), 1 - 1e-12)

    assert [speaker for speaker, name in nearly_no_eval.items() if name == features.EVAL_SPLIT] == [
        min(fractions, key=fractions.get)
    ]
    assert [speaker for speaker, name in nearly_all_eval.items() if name == features.TRAIN_SPLIT] == [
        max(fractions, key=fractions.get)
    ]
    assert split.split_speakers(["som_00001"], 0.1) in ({"som_00001": "train"}, {"som_00001": "eval"})


def test_read_corpus_speaker_split_has_both_splits(tmp_path):
    clips = _clips("irm_00001_00000001", "irm_00001_00000002", "nof_00002_00000003", "nof_00002_00000004")
    corpus_builders.build_openslr_corpus(str(tmp_path), clips)

    corpus = read_corpus(str(tmp_path))

    split_by_speaker = {}
    for record in corpus.records:
        assert split_by_speaker.setdefault(record.speaker_id, record.split) == record.split
    assert sorted(split_by_speaker.values()) == [features.EVAL_SPLIT, features.TRAIN_SPLIT]


def test_utterance_split_reproduces_the_reference_shuffle():
    clip_ids = [f"som_00001_{number:08d}" for number in range(40)]

    assigned = split.assign_splits(
        dict.fromkeys(reversed(clip_ids), "som_00001"), "utterance", 0.1, seed=1337
    )

    # The reference: numpy RandomState(1337) permutation of the sorted list, last 10% for eval.
    permutation = np.random.RandomState(1337).permutation(40)
    expected_eval = sorted(clip_ids[position] for position in permutation[36:])
    assert (
        sorted(clip_id for clip_id, name in assigned.items() if name == features.EVAL_SPLIT) == expected_eval
    )
    assert assigned == split.assign_splits(dict.fromkeys(clip_ids, "som_00001"), "utterance", 0.1, seed=1337)
    assert assigned != split.assign_splits(dict.fromkeys(clip_ids, "som_00001"), "utterance", 0.1, seed=7)


def test_utterance_split_through_read_corpus(tmp_path):
    clips = _clips(*[f"nom_{number % 3:05d}_{number:08d}" for number in range(20)], seconds=0.05)
    corpus_builders.build_openslr_corpus(str(tmp_path), clips)

    corpus = read_corpus(str(tmp_path), split_strategy="utterance", eval_fraction=0.25, seed=1337)

    assert sum(record.split == features.EVAL_SPLIT for record in corpus.records) == 5
    assert (
        corpus.records == read_corpus(str(tmp_path), split_strategy="utterance", eval_fraction=0.25).records
    )


# CSV files.


def test_clip_index_round_trip(tmp_path):
    clip_records = [
        records.ClipRecord(
            "irm_00001_1",
            "/c/irm_00001_1.wav",
            "ir",
            "Irish",
            0,
            "male",
            "irm_00001",
            "train",
            'He said "hi", then left.',
        ),
        records.ClipRecord(
            "wef_00002_2", "/c/w.zip!w/wef_00002_2.wav", "we", "Welsh", 5, "female", "wef_00002", "eval", ""
        ),
    ]
    path = str(tmp_path / "clips.csv")

    records.write_clip_index(path, clip_records)

    assert Path(path).read_text().splitlines()[0] == ",".join(field for field in records.CLIP_INDEX_COLUMNS)
    assert records.read_clip_index(path) == clip_records


def test_quarantine_csv_round_trip_and_header(tmp_path):
    entries = [
        quarantine.QuarantineEntry("xxm_00001_1", "unknown accent code 'xx'"),
        quarantine.QuarantineEntry("idx.csv:3", 'malformed index row: no comma in "a, b"'),
    ]
    path = str(tmp_path / "quarantine.csv")

    quarantine.write_quarantine_csv(path, entries)

    assert Path(path).read_text().splitlines()[0] == "filename,reason"
    assert quarantine.read_quarantine_csv(path) == entries


def test_quarantine_csv_with_wrong_header_is_rejected(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("name,why\na,b\n")

    with pytest.raises(ValueError, match="expected header filename,reason"):
        quarantine.read_quarantine_csv(str(path))


# Fingerprint.


def test_fingerprint_changes_when_the_corpus_changes(tmp_path):
    root = tmp_path / "corpus"
    corpus_builders.build_openslr_corpus(str(root), _clips("som_00001_00000001", "som_00001_00000002"))
    original = sources.corpus_fingerprint(str(root))
    assert sources.corpus_fingerprint(str(root)) == original

    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    assert sources.corpus_fingerprint(str(copy)) == original

    wav_path = root / "som_00001_00000001.wav"
    stat = os.stat(wav_path)
    content = bytearray(wav_path.read_bytes())
    content[-1] ^= 0x01
    wav_path.write_bytes(bytes(content))
    os.utime(wav_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    touched = sources.corpus_fingerprint(str(root))
    assert touched != original

    (root / "som_00001_00000003.wav").write_bytes(b"x")
    added = sources.corpus_fingerprint(str(root))
    assert added not in (original, touched)

    os.rename(root / "som_00001_00000003.wav", root / "som_00001_00000004.wav")
    assert sources.corpus_fingerprint(str(root)) not in (original, touched, added)
