import struct

import numpy as np
import pytest

from components import audio, features
from tests import corpus_builders


def _tone(seconds: float = 0.25, sample_rate: int = 16000) -> np.ndarray:
    return corpus_builders.speechlike_waveform(seed=3, seconds=seconds, sample_rate=sample_rate)


def _peak_frequency(waveform: np.ndarray, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(waveform * np.hanning(len(waveform))))
    return float(np.fft.rfftfreq(len(waveform), 1.0 / sample_rate)[np.argmax(spectrum)])


@pytest.mark.parametrize("sample_format", corpus_builders.SAMPLE_FORMATS)
@pytest.mark.parametrize("extensible", [False, True])
def test_wav_formats_decode_to_written_values(sample_format, extensible):
    waveform = _tone()
    encoded = corpus_builders.encode_wav(waveform, 16000, sample_format, extensible=extensible)

    decoded = audio.decode_audio(encoded, "clip.wav")

    assert decoded.sample_rate == 16000
    assert decoded.num_channels == 1
    assert decoded.waveform.dtype == np.float32
    assert decoded.waveform.shape == waveform.shape
    tolerance = max(corpus_builders.quantisation_step(sample_format), 1e-7)
    np.testing.assert_allclose(decoded.waveform, waveform, atol=tolerance + 1e-7, rtol=0)


def test_pcm8_is_unsigned_and_pcm16_is_signed():
    # 8-bit WAV stores 128 as zero; 16-bit stores two's complement.
    pcm8 = corpus_builders.encode_wav(np.array([-1.0, 0.0, 0.5]), 8000, "pcm8")
    pcm16 = corpus_builders.encode_wav(np.array([-1.0, 0.0, 0.5]), 8000, "pcm16")

    np.testing.assert_allclose(audio.decode_audio(pcm8, "a.wav").waveform, [-1.0, 0.0, 0.5])
    np.testing.assert_allclose(audio.decode_audio(pcm16, "b.wav").waveform, [-1.0, 0.0, 0.5])


@pytest.mark.parametrize("num_channels", [2, 3, 6])
def test_channels_are_averaged_to_mono(num_channels):
    rng = np.random.RandomState(num_channels)
    frames = rng.uniform(-0.5, 0.5, size=(400, num_channels))
    encoded = corpus_builders.encode_wav(frames, 22050, "float32", extensible=num_channels > 2)

    decoded = audio.decode_audio(encoded, "multi.wav")

    assert decoded.num_channels == num_channels
    assert decoded.sample_rate == 22050
    np.testing.assert_allclose(decoded.waveform, frames.mean(axis=1), atol=1e-6)


def test_opposite_stereo_channels_cancel():
    left = _tone()
    encoded = corpus_builders.encode_wav(np.stack([left, -left], axis=1), 16000, "pcm24")

    assert np.max(np.abs(audio.decode_audio(encoded, "s.wav").waveform)) < 1e-6


def test_extra_chunks_and_odd_data_are_handled():
    samples = np.array([0.25, -0.25, 0.5], dtype=np.float64)
    encoded = corpus_builders.encode_wav(samples, 16000, "pcm8")  # 3 data bytes: padded
    riff_body = encoded[12:] + b"LIST" + struct.pack("<I", 4) + b"INFO"
    # A LIST chunk before fmt and one after data must both be skipped.
    list_chunk = b"LIST" + struct.pack("<I", 5) + b"hello\0"
    with_chunks = b"RIFF" + struct.pack("<I", 4 + len(list_chunk) + len(riff_body)) + b"WAVE"
    with_chunks += list_chunk + riff_body

    np.testing.assert_allclose(audio.decode_audio(with_chunks, "x.wav").waveform, samples, atol=1 / 128)


def test_streaming_data_size_reads_to_end_of_file():
    samples = _tone(0.01)
    encoded = bytearray(corpus_builders.encode_wav(samples, 16000, "pcm16"))
    data_size_offset = encoded.find(b"data") + 4
    encoded[data_size_offset : data_size_offset + 4] = struct.pack("<I", 0xFFFFFFFF)

    decoded = audio.decode_audio(bytes(encoded), "stream.wav")

    assert decoded.waveform.shape == samples.shape


def test_empty_file():
    with pytest.raises(audio.AudioDecodeError) as raised:
        audio.decode_audio(b"", "empty.wav")
    assert raised.value.reason == "empty file"


@pytest.mark.parametrize(
    "content", [b"<html>not found</html>", b"ID3 but nothing else", b"\x00" * 64, b"RIFFxxxxAVI "]
)
def test_not_audio(content):
    with pytest.raises(audio.AudioDecodeError) as raised:
        audio.decode_audio(content, "page.wav")
    assert raised.value.reason.startswith("not audio: ")


def test_not_audio_even_with_wav_extension_is_a_value_error():
    with pytest.raises(ValueError, match=r"page\.wav: not audio"):
        audio.load_waveform(b"plain text", "page.wav")


def test_truncated_data_chunk():
    encoded = corpus_builders.encode_wav(_tone(0.1), 16000, "pcm16")
    cut = encoded[: len(encoded) - 1000]

    with pytest.raises(audio.AudioDecodeError) as raised:
        audio.decode_audio(cut, "cut.wav")

    declared = len(encoded) - 44
    assert (
        raised.value.reason == f"truncated: data chunk declares {declared} bytes, file has {declared - 1000}"
    )


@pytest.mark.parametrize("keep_bytes", [14, 30])
def test_truncated_header(keep_bytes):
    encoded = corpus_builders.encode_wav(_tone(0.1), 16000, "pcm16")

    with pytest.raises(audio.AudioDecodeError) as raised:
        audio.decode_audio(encoded[:keep_bytes], "cut.wav")

    assert raised.value.reason.startswith("truncated: ")


def test_zero_frames_is_no_samples():
    encoded = corpus_builders.encode_wav(np.zeros(0), 16000, "pcm16")

    with pytest.raises(audio.AudioDecodeError) as raised:
        audio.decode_audio(encoded, "none.wav")

    assert raised.value.reason == "no samples"


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_non_finite_samples(bad_value):
    samples = _tone(0.01)
    samples[5] = bad_value

    with pytest.raises(audio.AudioDecodeError) as raised:
        audio.decode_audio(corpus_builders.encode_wav(samples, 16000, "float32"), "nan.wav")

    assert "non-finite" in raised.value.reason


def test_unsupported_wav_encoding():
    encoded = bytearray(corpus_builders.encode_wav(_tone(0.01), 8000, "pcm8"))
    encoded[20:22] = struct.pack("<H", 7)  # mu-law

    with pytest.raises(audio.AudioDecodeError) as raised:
        audio.decode_audio(bytes(encoded), "mulaw.wav")

    assert raised.value.reason == "unsupported wav: format code 0x0007"


def test_missing_data_chunk():
    encoded = corpus_builders.encode_wav(_tone(0.01), 8000, "pcm16")
    header_only = b"RIFF" + struct.pack("<I", 4 + 24) + b"WAVE" + encoded[12:36]

    with pytest.raises(audio.AudioDecodeError) as raised:
        audio.decode_audio(header_only, "nodata.wav")

    assert raised.value.reason == "malformed wav: no data chunk"


def test_float_samples_beyond_full_scale_are_clipped():
    encoded = corpus_builders.encode_wav(np.array([2.0, -3.0, 0.5]), 16000, "float32")

    np.testing.assert_allclose(audio.decode_audio(encoded, "loud.wav").waveform, [1.0, -1.0, 0.5])


def test_flac_is_decoded_by_magic_bytes_not_extension():
    tf = pytest.importorskip("tensorflow")
    tfio = pytest.importorskip("tensorflow_io")
    samples = np.round(_tone(0.2, 22050) * 32767).astype(np.int16)
    encoded = tfio.audio.encode_flac(tf.constant(samples[:, None]), rate=22050).numpy()

    decoded = audio.decode_audio(encoded, "misnamed.wav")

    assert decoded.sample_rate == 22050
    assert decoded.num_channels == 1
    np.testing.assert_allclose(decoded.waveform, samples / 32768.0, atol=1e-6)


def test_ogg_vorbis_is_decoded_with_its_sample_rate():
    tf = pytest.importorskip("tensorflow")
    tfio = pytest.importorskip("tensorflow_io")
    tone = corpus_builders.sine_wave(440.0, 0.5, 44100).astype(np.float32)
    encoded = tfio.audio.encode_vorbis(tf.constant(np.stack([tone, tone], axis=1)), rate=44100).numpy()

    decoded = audio.decode_audio(encoded, "tone.ogg")

    assert decoded.sample_rate == 44100
    assert decoded.num_channels == 2
    assert abs(_peak_frequency(decoded.waveform, 44100) - 440.0) < 5.0


def test_corrupt_flac_is_not_audio():
    streaminfo = corpus_builders.encode_flac(np.zeros(10), 16000)[:42]
    corrupt = streaminfo + b"garbage" * 10

    with pytest.raises(audio.AudioDecodeError) as raised:
        audio.decode_audio(corrupt, "broken.flac")

    assert raised.value.reason.startswith("not audio: FLAC decoder")


@pytest.mark.parametrize("source_rate", [8000, 11025, 16000, 22050, 44100, 48000, 96000])
def test_resample_preserves_duration_and_frequency(source_rate):
    tone = corpus_builders.sine_wave(440.0, 1.0, source_rate)

    resampled = audio.resample(tone, source_rate, 16000)

    assert resampled.dtype == np.float32
    assert len(resampled) == 16000
    assert abs(_peak_frequency(resampled, 16000) - 440.0) <= 1.0
    # The level is preserved away from the edges.
    assert np.max(np.abs(resampled[1000:-1000])) == pytest.approx(0.5, abs=0.01)


def test_resample_length_rounds_up():
    assert len(audio.resample(np.ones(441), 44100, 16000)) == 160
    assert len(audio.resample(np.ones(442), 44100, 16000)) == 161


def test_resample_removes_frequencies_above_the_new_nyquist():
    above_nyquist = corpus_builders.sine_wave(10000.0, 0.5, 48000)

    resampled = audio.resample(above_nyquist, 48000, 16000)

    assert np.sqrt(np.mean(resampled[500:-500] ** 2)) < 0.01


def _level_change_db(frequency: float) -> float:
    """Level of a 48 kHz tone resampled to 16 kHz, relative to the tone's, away from the edges."""
    tone = (0.5 * np.sin(2 * np.pi * frequency * np.arange(2 * 48000) / 48000)).astype(np.float32)
    resampled = audio.resample(tone, 48000, 16000)[2000:-2000].astype(np.float64)
    rms = np.sqrt(np.mean(resampled**2))
    return float(20 * np.log10(max(rms, 1e-30) / (0.5 / np.sqrt(2))))


@pytest.mark.parametrize(
    ("frequency", "lowest_db", "highest_db"), [(1000.0, -0.05, 0.05), (7300.0, -0.05, 0.05)]
)
def test_resample_keeps_the_pass_band_flat(frequency, lowest_db, highest_db):
    assert lowest_db <= _level_change_db(frequency) <= highest_db


def test_resample_keeps_the_top_mel_band_within_half_a_decibel():
    # YAMNet's mel bands end at 7.5 kHz.
    assert -0.5 <= _level_change_db(7500.0) <= 0.05


@pytest.mark.parametrize("frequency", [8000.0, 8200.0, 12000.0, 23000.0])
def test_resample_stop_band_is_over_120_decibels_down(frequency):
    assert _level_change_db(frequency) < -120.0


def test_resample_same_rate_is_a_float32_copy():
    waveform = np.linspace(-1, 1, 10)

    resampled = audio.resample(waveform, 16000, 16000)

    np.testing.assert_allclose(resampled, waveform, atol=1e-7)
    assert resampled.dtype == np.float32


@pytest.mark.parametrize(
    ("source_rate", "target_rate"), [(0, 16000), (16000, -1), (44100.0, 16000), (True, 16000)]
)
def test_resample_rejects_bad_rates(source_rate, target_rate):
    with pytest.raises(ValueError, match="positive integer"):
        audio.resample(np.zeros(10), source_rate, target_rate)


def test_resample_rejects_multichannel_input():
    with pytest.raises(ValueError, match="1-D"):
        audio.resample(np.zeros((10, 2)), 8000, 16000)


def test_load_waveform_decodes_mixes_and_resamples_to_16_khz():
    tone = corpus_builders.sine_wave(300.0, 0.5, 44100, amplitude=0.9)
    encoded = corpus_builders.encode_wav(np.stack([tone, 0.5 * tone], axis=1), 44100, "pcm16")

    waveform = audio.load_waveform(encoded, "stereo.wav")

    assert features.SAMPLE_RATE == 16000
    assert waveform.dtype == np.float32
    assert len(waveform) == 8000
    assert np.max(np.abs(waveform)) <= 1.0
    assert np.max(np.abs(waveform[500:-500])) == pytest.approx(0.675, abs=0.01)
    assert abs(_peak_frequency(waveform, 16000) - 300.0) <= 2.0


def test_load_waveform_clips_resampling_overshoot():
    square = np.sign(corpus_builders.sine_wave(1000.0, 0.1, 48000)) * 1.0
    encoded = corpus_builders.encode_wav(square, 48000, "float32")

    waveform = audio.load_waveform(encoded, "square.wav")

    assert np.max(np.abs(waveform)) <= 1.0
    assert np.max(np.abs(audio.resample(square, 48000, 16000))) > 1.0


# Sample-rate window and clip length, checked from the header before any decoding.


def _forbid_compressed_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Makes any call to tensorflow-io's decoders fail the test."""

    def forbidden():
        raise AssertionError("the samples were decoded before the header was checked")

    monkeypatch.setattr(audio, "_tensorflow_io_audio", forbidden)


def _vorbis(sample_rate: int, declared_rate: int | None = None) -> bytes:
    tf = pytest.importorskip("tensorflow")
    tfio = pytest.importorskip("tensorflow_io")
    tone = corpus_builders.sine_wave(440.0, 0.5, sample_rate).astype(np.float32)
    encoded = tfio.audio.encode_vorbis(tf.constant(tone[:, None]), rate=sample_rate).numpy()
    return (
        encoded if declared_rate is None else corpus_builders.set_vorbis_sample_rate(encoded, declared_rate)
    )


def test_minimal_flac_encoder_round_trips():
    waveform = _tone(0.3, 22050)

    decoded = audio.decode_audio(corpus_builders.encode_flac(waveform, 22050), "tone.flac")

    assert decoded.sample_rate == 22050
    np.testing.assert_allclose(decoded.waveform, waveform, atol=1.0 / 32768 + 1e-9)


@pytest.mark.parametrize("declared_rate", [0, 3, 7999, 96001, 192000])
def test_flac_rate_outside_the_window_is_refused_before_decoding(declared_rate, monkeypatch):
    encoded = corpus_builders.encode_flac(_tone(0.3, 16000), 16000, declared_rate=declared_rate)
    _forbid_compressed_decoding(monkeypatch)

    with pytest.raises(audio.AudioDecodeError) as raised:
        audio.decode_audio(encoded, "odd.flac")

    assert raised.value.reason.startswith(f"unsupported sample rate: {declared_rate} Hz")


def test_flac_with_rate_zero_is_a_decode_error_when_loaded():
    encoded = corpus_builders.encode_flac(_tone(0.3, 16000), 16000, declared_rate=0)

    with pytest.raises(audio.AudioDecodeError, match="unsupported sample rate: 0 Hz"):
        audio.load_waveform(encoded, "zero.flac")


@pytest.mark.parametrize("declared_rate", [0, 3])
def test_vorbis_rate_outside_the_window_is_refused_before_decoding(declared_rate, monkeypatch):
    encoded = _vorbis(44100, declared_rate)
    _forbid_compressed_decoding(monkeypatch)

    with pytest.raises(audio.AudioDecodeError) as raised:
        audio.decode_audio(encoded, "odd.ogg")

    assert raised.value.reason.startswith(f"unsupported sample rate: {declared_rate} Hz")


@pytest.mark.parametrize("sample_rate", [1000, 4000, 7999, 96001, 192000, 768000])
def test_wav_rate_outside_the_window_is_refused(sample_rate):
    encoded = corpus_builders.encode_wav(np.zeros(64), sample_rate, "pcm16")

    with pytest.raises(audio.AudioDecodeError) as raised:
        audio.decode_audio(encoded, "odd.wav")

    assert raised.value.reason.startswith(f"unsupported sample rate: {sample_rate} Hz")


@pytest.mark.parametrize("sample_rate", [8000, 96000])
def test_window_edges_are_accepted_for_every_format(sample_rate):
    waveform = _tone(0.1, sample_rate)

    for encoded in (
        corpus_builders.encode_wav(waveform, sample_rate, "pcm16"),
        corpus_builders.encode_flac(waveform, sample_rate),
    ):
        assert audio.decode_audio(encoded, "edge").sample_rate == sample_rate


def test_long_wav_is_refused_from_its_header():
    encoded = corpus_builders.encode_wav(np.zeros(16000 * 3), 16000, "pcm16")

    with pytest.raises(audio.AudioDecodeError) as raised:
        audio.load_waveform(encoded, "long.wav", max_seconds=2.5)

    assert raised.value.reason == "too long: 3.0 s, over the limit of 2.5 s (--max-clip-seconds)"
    assert len(audio.load_waveform(encoded, "long.wav", max_seconds=3.0)) == 16000 * 3


def test_long_flac_is_refused_from_streaminfo_before_decoding(monkeypatch):
    encoded = corpus_builders.encode_flac(np.zeros(8000 * 4), 8000)
    _forbid_compressed_decoding(monkeypatch)

    with pytest.raises(audio.AudioDecodeError, match=r"too long: 4\.0 s, over the limit of 3 s"):
        audio.decode_audio(encoded, "long.flac", max_seconds=3)


def test_long_vorbis_is_refused_from_its_last_granule_before_decoding(monkeypatch):
    encoded = _vorbis(44100)
    _forbid_compressed_decoding(monkeypatch)

    with pytest.raises(audio.AudioDecodeError, match=r"too long: 0\.5 s, over the limit of 0\.25 s"):
        audio.decode_audio(encoded, "long.ogg", max_seconds=0.25)


def test_max_seconds_must_be_positive():
    with pytest.raises(ValueError, match="max_seconds"):
        audio.decode_audio(corpus_builders.encode_wav(np.zeros(10), 16000), "a.wav", max_seconds=0)
