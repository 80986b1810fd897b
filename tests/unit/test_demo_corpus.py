import collections
import importlib.metadata
import os
import wave

import numpy as np
import pytest

from components import audio, demo_corpus, features
from components.corpus import read_clip_bytes, read_corpus


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    output_dir = str(tmp_path_factory.mktemp("demo") / "corpus")
    summary = demo_corpus.write_demo_corpus(output_dir, clips_per_speaker=2, speakers_per_accent=2)
    return summary


def test_tiny_corpus_is_byte_identical_when_written_again(tiny_corpus, tmp_path):
    again = demo_corpus.write_demo_corpus(str(tmp_path / "again"), clips_per_speaker=2, speakers_per_accent=2)

    first_files = sorted(os.listdir(tiny_corpus.output_dir))
    assert sorted(os.listdir(again.output_dir)) == first_files
    assert len(first_files) == 4 * 2 * 2 + 1
    for filename in first_files:
        with open(os.path.join(tiny_corpus.output_dir, filename), "rb") as first_file:
            first = first_file.read()
        with open(os.path.join(again.output_dir, filename), "rb") as second_file:
            assert second_file.read() == first, filename


def test_a_different_seed_gives_different_voices(tiny_corpus, tmp_path):
    other = demo_corpus.write_demo_corpus(
        str(tmp_path / "other"), clips_per_speaker=1, speakers_per_accent=2, seed=1
    )

    def voices(summary):
        return [(speaker.voice, speaker.pitch, speaker.words_per_minute) for speaker in summary.speakers]

    assert voices(other) != voices(tiny_corpus)
    with open(os.path.join(other.output_dir, f"{other.clip_ids[0]}.wav"), "rb") as other_file:
        other_bytes = other_file.read()
    with open(os.path.join(tiny_corpus.output_dir, f"{tiny_corpus.clip_ids[0]}.wav"), "rb") as first_file:
        assert first_file.read() != other_bytes


def test_corpus_has_exactly_the_four_espeak_accents(tiny_corpus):
    corpus = read_corpus(tiny_corpus.output_dir)

    assert corpus.quarantine == []
    assert len(corpus.records) == tiny_corpus.num_clips == 16
    assert {record.accent for record in corpus.records} == {"Midlands", "Northern", "Scottish", "Southern"}
    assert tiny_corpus.accent_codes == ("mi", "no", "sc", "so")
    for record in corpus.records:
        assert features.DEFAULT_CLASS_NAMES[record.label] == record.accent
        assert record.transcript in demo_corpus.DEMO_SENTENCES


def test_every_accent_is_in_both_speaker_splits(tiny_corpus):
    corpus = read_corpus(tiny_corpus.output_dir, eval_fraction=0.1)

    counts = collections.Counter((record.accent_code, record.split) for record in corpus.records)
    for accent_code in tiny_corpus.accent_codes:
        assert counts[(accent_code, features.TRAIN_SPLIT)] == 2
        assert counts[(accent_code, features.EVAL_SPLIT)] == 2


def test_speakers_alternate_gender_with_their_own_voices(tiny_corpus):
    corpus = read_corpus(tiny_corpus.output_dir)

    genders_by_speaker = {record.speaker_id: record.gender for record in corpus.records}
    assert sorted(collections.Counter(genders_by_speaker.values()).items()) == [("female", 4), ("male", 4)]
    for speaker in tiny_corpus.speakers:
        assert speaker.voice.startswith(demo_corpus.DEMO_ACCENT_VOICES[speaker.accent_code] + "+")
        assert speaker.voice.split("+")[1][0] == speaker.gender_code


def test_clips_are_48_khz_pcm16_mono_speech_framed_by_silence(tiny_corpus):
    corpus = read_corpus(tiny_corpus.output_dir)

    for record in corpus.records:
        with wave.open(record.source, "rb") as wav_file:
            assert (wav_file.getframerate(), wav_file.getsampwidth(), wav_file.getnchannels()) == (
                48000,
                2,
                1,
            )
        decoded = audio.decode_audio(read_clip_bytes(record.source), record.clip_id)
        waveform = decoded.waveform
        seconds = len(waveform) / decoded.sample_rate
        assert 2.5 < seconds < 6.0
        lead = waveform[: int(0.25 * 48000)]
        tail = waveform[-int(0.95 * 48000) :]
        speech = waveform[int(0.3 * 48000) : -48000]
        speech_rms = np.sqrt(np.mean(speech**2))
        assert speech_rms > 0.03
        assert np.sqrt(np.mean(lead**2)) < 0.003
        assert np.sqrt(np.mean(tail**2)) < 0.003


def test_speech_is_voiced_at_a_plausible_pitch(tiny_corpus):
    # A male speaker's clip: its spectrum peaks below 1 kHz, as speech does, not in noise.
    record = next(record for record in read_corpus(tiny_corpus.output_dir).records if record.gender == "male")
    waveform = audio.load_waveform(read_clip_bytes(record.source), record.clip_id)
    spectrum = np.abs(np.fft.rfft(waveform))
    frequencies = np.fft.rfftfreq(len(waveform), 1 / features.SAMPLE_RATE)

    assert 60 < frequencies[np.argmax(spectrum)] < 1000


def test_bad_arguments_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="clips_per_speaker"):
        demo_corpus.write_demo_corpus(str(tmp_path), clips_per_speaker=0)
    with pytest.raises(ValueError, match="speakers_per_accent"):
        demo_corpus.write_demo_corpus(str(tmp_path), speakers_per_accent=1)
    with pytest.raises(ValueError, match="accent_codes"):
        demo_corpus.write_demo_corpus(str(tmp_path), accent_codes=("ir",))


def test_missing_library_is_a_clear_error(tmp_path, monkeypatch):
    import espeakng_loader

    monkeypatch.setattr(espeakng_loader, "get_library_path", lambda: str(tmp_path / "libespeak-ng.so"))

    with pytest.raises(demo_corpus.EspeakUnavailableError, match=r"Cannot load libespeak-ng.*\[demo\]"):
        demo_corpus.write_demo_corpus(str(tmp_path / "out"), clips_per_speaker=1, speakers_per_accent=2)
    assert not os.path.exists(tmp_path / "out")


def test_espeak_is_in_the_demo_extra_and_not_a_runtime_requirement():
    requirements = importlib.metadata.requires("accent-pipeline")
    espeak = [requirement for requirement in requirements if requirement.startswith("espeakng-loader")]
    assert espeak, "espeakng-loader is in no requirement of the package"
    assert all('extra == "demo"' in requirement for requirement in espeak), espeak
