"""Audio decoding and resampling: any supported file to a 16 kHz mono float32 waveform.

WAV files are read by a RIFF parser written in numpy (PCM 8-bit unsigned,
16/24/32-bit signed, IEEE float 32/64, ``WAVE_FORMAT_EXTENSIBLE``, any channel
count). FLAC, Ogg Vorbis and MP3 are decoded with tensorflow-io, which is
imported only when such a file is met, so the WAV path stays light. The format
is chosen from the file's magic bytes, never from its name.

Every failure raises ``AudioDecodeError`` whose ``reason`` is short and
specific (``empty file``, ``not audio: ...``, ``truncated: ...``, ...): the
corpus reader writes it to the quarantine list as it is.

``resample`` is the one place in the project where sample rates are converted.
"""

from __future__ import annotations

import dataclasses
import logging
import struct
from collections.abc import Callable
from typing import Any

import numpy as np
import soxr

from components import features
from components.errors import UnusableClipError, first_line

logger = logging.getLogger(__name__)

# WAVE format codes (the fmt chunk's first field).
_WAVE_FORMAT_PCM = 0x0001
_WAVE_FORMAT_IEEE_FLOAT = 0x0003
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE

# A data chunk size that streaming writers use to mean "until the end of the file".
_STREAMING_DATA_SIZE = 0xFFFFFFFF

# The sample rates accepted for every format, in Hz. A rate outside them is refused from the header,
# before any sample is decoded: a corrupt or hostile header (a FLAC declaring 3 Hz) would otherwise
# turn a small file into hundreds of millions of resampled samples.
MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 96000

# File name extensions of the formats decoded here. The decoder itself goes by magic bytes; the corpus
# reader uses these to tell audio files from others, and drops them from an index's filename field.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")

# MPEG audio sample rates by version bits (3 = MPEG-1, 2 = MPEG-2, 0 = MPEG-2.5) and rate index.
_MP3_SAMPLE_RATES: dict[int, tuple[int, int, int]] = {
    3: (44100, 48000, 32000),
    2: (22050, 24000, 16000),
    0: (11025, 12000, 8000),
}


class AudioDecodeError(UnusableClipError):
    """An audio file that cannot be turned into a waveform; ``reason`` goes to the quarantine list."""


@dataclasses.dataclass(frozen=True, eq=False)
class DecodedAudio:
    """A decoded audio file, mixed to mono, at its own sample rate.

    Attributes:
        waveform: Mono float32 samples in [-1, 1].
        sample_rate: Samples per second of ``waveform``.
        num_channels: Number of channels in the source file.
    """

    waveform: np.ndarray
    sample_rate: int
    num_channels: int


def decode_audio(encoded: bytes, filename: str, max_seconds: float | None = None) -> DecodedAudio:
    """Decodes a WAV, FLAC, Ogg Vorbis or MP3 file to a mono waveform.

    The sample rate is checked against ``MIN_SAMPLE_RATE``..``MAX_SAMPLE_RATE``
    from the header, before any sample is decoded, and so is the duration
    where the header gives it (WAV data size, FLAC STREAMINFO, the last Ogg
    page's granule position); MP3 durations are checked once decoded.

    Args:
        encoded: The file's bytes.
        filename: The file's name, used in error messages only.
        max_seconds: Longest accepted duration, in seconds; None accepts any length.

    Returns:
        The mono waveform (channels averaged), its sample rate and the source's channel count.

    Raises:
        AudioDecodeError: If the file is empty, not audio, truncated, unsupported,
            has a sample rate outside the window, is longer than ``max_seconds``,
            holds no samples, or holds NaN/Inf samples.
        ValueError: If ``max_seconds`` is not positive.
    """
    if max_seconds is not None and not max_seconds > 0:
        raise ValueError(f"max_seconds must be positive or None, got {max_seconds!r}")
    if len(encoded) == 0:
        raise AudioDecodeError("empty file", filename)
    header = bytes(encoded[:12])
    if header[:4] in (b"RIFF", b"RIFX", b"RF64") and header[8:12] == b"WAVE":
        if header[:4] != b"RIFF":
            raise AudioDecodeError(f"unsupported wav: {header[:4].decode('ascii')} container", filename)
        samples, sample_rate = _decode_wav(bytes(encoded), filename, max_seconds)
    elif header[:4] == b"fLaC":
        samples, sample_rate = _decode_flac(bytes(encoded), filename, max_seconds)
    elif header[:4] == b"OggS":
        samples, sample_rate = _decode_ogg(bytes(encoded), filename, max_seconds)
    elif _mp3_audio_offset(bytes(encoded)) is not None:
        samples, sample_rate = _decode_mp3(bytes(encoded), filename)
    else:
        raise AudioDecodeError(
            f"not audio: no RIFF/FLAC/Ogg/MP3 signature (starts with {header[:8]!r})", filename
        )
    if samples.ndim == 2:
        _check_duration(samples.shape[0], sample_rate, max_seconds, filename)
    return _to_mono(samples, sample_rate, filename)


def resample(waveform: np.ndarray, source_rate: int, target_rate: int = features.SAMPLE_RATE) -> np.ndarray:
    """Resamples a mono waveform; the project's only sample-rate conversion.

    Uses libsoxr (``soxr``, quality ``HQ``: linear phase; for 48 -> 16 kHz
    flat to 7.3 kHz, -0.4 dB at 7.5 kHz, the top of YAMNet's mel bands, and
    over 130 dB down from 8 kHz, so nothing above the new Nyquist frequency
    folds back; ``tests/unit/test_audio.py`` checks it). It works in float32 and
    releases the GIL, so the embedding job's threads resample in parallel, and
    it takes about a quarter of the CPU time of ``scipy.signal.resample_poly``
    for 48 -> 16 kHz (see README, Benchmarks). The reference example used
    tensorflow-io's resampler instead, which would make tensorflow-io a
    dependency of the WAV path.

    Args:
        waveform: 1-D samples.
        source_rate: Sample rate of ``waveform``, in Hz.
        target_rate: Wanted sample rate, in Hz.

    Returns:
        float32 samples at ``target_rate``; ``ceil(len(waveform) * target_rate / source_rate)`` of them
        (libsoxr rounds the length to the nearest sample; a last sample it leaves out is the filter's
        zero tail).

    Raises:
        ValueError: If a rate is not a positive integer or the waveform is not 1-D.
    """
    for name, rate in (("source_rate", source_rate), ("target_rate", target_rate)):
        if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate <= 0:
            raise ValueError(f"{name} must be a positive integer, got {rate!r}")
    waveform = np.asarray(waveform)
    if waveform.ndim != 1:
        raise ValueError(f"waveform must be 1-D (mono), got shape {waveform.shape}")
    if source_rate == target_rate:
        return waveform.astype(np.float32, copy=True)
    num_samples = -(-waveform.shape[0] * int(target_rate) // int(source_rate))
    if waveform.size == 0:
        return np.zeros(0, dtype=np.float32)
    resampled = soxr.resample(
        np.ascontiguousarray(waveform, dtype=np.float32), int(source_rate), int(target_rate), quality="HQ"
    )
    if resampled.shape[0] < num_samples:
        resampled = np.concatenate([resampled, np.zeros(num_samples - resampled.shape[0], np.float32)])
    return resampled[:num_samples].astype(np.float32, copy=False)


def load_waveform(
    encoded: bytes,
    filename: str,
    target_rate: int = features.SAMPLE_RATE,
    max_seconds: float | None = None,
) -> np.ndarray:
    """Decodes a file, mixes it to mono and resamples it.

    Args:
        encoded: The file's bytes.
        filename: The file's name, used in error messages only.
        target_rate: Sample rate of the result, in Hz.
        max_seconds: Longest accepted duration, in seconds; None accepts any length.

    Returns:
        float32 mono samples at ``target_rate``, clipped to [-1, 1].

    Raises:
        AudioDecodeError: If the file cannot be decoded (see ``decode_audio``), including
            ``out of memory: ...`` when decoding or resampling runs out of memory.
        ValueError: If ``max_seconds`` is not positive.
    """
    try:
        decoded = decode_audio(encoded, filename, max_seconds)
        waveform = resample(decoded.waveform, decoded.sample_rate, target_rate)
    except MemoryError:
        raise AudioDecodeError(f"out of memory: decoding {len(encoded)} bytes", filename) from None
    return np.clip(waveform, -1.0, 1.0, out=waveform)


def _check_sample_rate(sample_rate: int, filename: str) -> None:
    """Refuses a header's sample rate outside ``MIN_SAMPLE_RATE``..``MAX_SAMPLE_RATE``."""
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise AudioDecodeError(
            f"unsupported sample rate: {sample_rate} Hz "
            f"(supported: {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz)",
            filename,
        )


def _check_duration(num_frames: int, sample_rate: int, max_seconds: float | None, filename: str) -> None:
    """Refuses a clip of more than ``max_seconds`` (frames at a sample rate already checked)."""
    if max_seconds is None:
        return
    seconds = num_frames / sample_rate
    if seconds > max_seconds:
        raise AudioDecodeError(
            f"too long: {seconds:.1f} s, over the limit of {max_seconds:g} s (--max-clip-seconds)", filename
        )


def _to_mono(samples: np.ndarray, sample_rate: int, filename: str) -> DecodedAudio:
    """Checks decoded (frames, channels) float samples and averages the channels."""
    if samples.ndim != 2 or samples.shape[1] == 0:
        raise AudioDecodeError(f"not audio: decoder returned shape {samples.shape}", filename)
    if samples.shape[0] == 0:
        raise AudioDecodeError("no samples", filename)
    if not np.all(np.isfinite(samples)):
        raise AudioDecodeError("non-finite samples (NaN or Inf)", filename)
    num_channels = samples.shape[1]
    mono = samples[:, 0] if num_channels == 1 else samples.mean(axis=1, dtype=np.float64)
    waveform = mono.astype(np.float32)
    np.clip(waveform, -1.0, 1.0, out=waveform)
    return DecodedAudio(waveform=waveform, sample_rate=int(sample_rate), num_channels=int(num_channels))


def _decode_wav(encoded: bytes, filename: str, max_seconds: float | None) -> tuple[np.ndarray, int]:
    """Parses a RIFF/WAVE file into (frames, channels) float64 samples and its sample rate."""
    fmt_chunk: bytes | None = None
    data_start: int | None = None
    data_size = 0
    position = 12
    while position + 8 <= len(encoded):
        chunk_id = encoded[position : position + 4]
        (chunk_size,) = struct.unpack_from("<I", encoded, position + 4)
        body_start = position + 8
        if chunk_id == b"fmt ":
            if body_start + chunk_size > len(encoded):
                raise AudioDecodeError(
                    f"truncated: fmt chunk declares {chunk_size} bytes, file has {len(encoded) - body_start}",
                    filename,
                )
            fmt_chunk = encoded[body_start : body_start + chunk_size]
        elif chunk_id == b"data":
            data_start = body_start
            available = len(encoded) - body_start
            if chunk_size == _STREAMING_DATA_SIZE:
                data_size = available
            elif chunk_size > available:
                raise AudioDecodeError(
                    f"truncated: data chunk declares {chunk_size} bytes, file has {available}", filename
                )
            else:
                data_size = chunk_size
            if fmt_chunk is not None:
                break
        position = body_start + chunk_size + (chunk_size & 1)
    if fmt_chunk is None:
        if position != len(encoded):
            raise AudioDecodeError("truncated: file ends before the fmt chunk", filename)
        raise AudioDecodeError("malformed wav: no fmt chunk", filename)
    if data_start is None:
        raise AudioDecodeError("malformed wav: no data chunk", filename)
    format_code, num_channels, sample_rate, bits_per_sample, block_align = _parse_fmt(fmt_chunk, filename)
    container_bytes = block_align // num_channels
    num_frames = data_size // block_align
    _check_duration(num_frames, sample_rate, max_seconds, filename)
    raw = np.frombuffer(encoded, dtype=np.uint8, count=num_frames * block_align, offset=data_start)
    samples = _pcm_to_float(raw, format_code, container_bytes, bits_per_sample, filename)
    return samples.reshape(num_frames, num_channels), sample_rate


def _parse_fmt(fmt_chunk: bytes, filename: str) -> tuple[int, int, int, int, int]:
    """Reads (format code, channels, sample rate, bits per sample, block align) from a fmt chunk."""
    if len(fmt_chunk) < 16:
        raise AudioDecodeError(f"malformed wav: fmt chunk has {len(fmt_chunk)} bytes, needs 16", filename)
    format_code, num_channels, sample_rate, _, block_align, bits_per_sample = struct.unpack_from(
        "<HHIIHH", fmt_chunk
    )
    if format_code == _WAVE_FORMAT_EXTENSIBLE:
        if len(fmt_chunk) < 40:
            raise AudioDecodeError(
                "malformed wav: WAVE_FORMAT_EXTENSIBLE fmt chunk shorter than 40 bytes", filename
            )
        (format_code,) = struct.unpack_from("<H", fmt_chunk, 24)
    if num_channels == 0:
        raise AudioDecodeError("malformed wav: zero channels", filename)
    _check_sample_rate(sample_rate, filename)
    if format_code not in (_WAVE_FORMAT_PCM, _WAVE_FORMAT_IEEE_FLOAT):
        raise AudioDecodeError(f"unsupported wav: format code 0x{format_code:04x}", filename)
    container_bytes = block_align // num_channels if block_align % num_channels == 0 else 0
    supported = {_WAVE_FORMAT_PCM: (1, 2, 3, 4), _WAVE_FORMAT_IEEE_FLOAT: (4, 8)}[format_code]
    if container_bytes not in supported:
        kind = "PCM" if format_code == _WAVE_FORMAT_PCM else "float"
        raise AudioDecodeError(
            f"unsupported wav: {kind} with block align {block_align} for {num_channels} channels", filename
        )
    return format_code, num_channels, sample_rate, bits_per_sample, block_align


def _pcm_to_float(
    raw: np.ndarray, format_code: int, container_bytes: int, bits_per_sample: int, filename: str
) -> np.ndarray:
    """Converts interleaved little-endian sample bytes to float64 in [-1, 1]."""
    if format_code == _WAVE_FORMAT_IEEE_FLOAT:
        dtype = "<f4" if container_bytes == 4 else "<f8"
        return raw.view(dtype).astype(np.float64)
    if container_bytes == 1:
        return (raw.astype(np.float64) - 128.0) / 128.0
    if container_bytes == 2:
        return raw.view("<i2").astype(np.float64) / 32768.0
    if container_bytes == 3:
        triplets = raw.reshape(-1, 3).astype(np.int32)
        values = triplets[:, 0] | (triplets[:, 1] << 8) | (triplets[:, 2] << 16)
        values = np.where(values >= 1 << 23, values - (1 << 24), values)
        return values.astype(np.float64) / float(1 << 23)
    if container_bytes == 4:
        return raw.view("<i4").astype(np.float64) / float(1 << 31)
    raise AudioDecodeError(f"unsupported wav: {container_bytes}-byte PCM ({bits_per_sample} bits)", filename)


def _tensorflow_io_audio():
    """Imports tensorflow-io's audio module lazily (it is slow to import)."""
    import tensorflow as tf
    import tensorflow_io as tfio

    return tf, tfio.audio


def _run_tensorflow_io_decoder(format_name: str, filename: str, decode: Callable[[Any], Any]) -> np.ndarray:
    """Runs a tensorflow-io decoder; a failure becomes ``not audio: FORMAT decoder: ...``.

    Args:
        format_name: The format, as the reason names its decoder (``FLAC``, ``Vorbis``, ``MP3``).
        filename: The clip's file name, for the error.
        decode: Decodes the clip with the ``tensorflow_io.audio`` module it is given, into a tensor.

    Returns:
        The decoded samples, as float64 (not yet scaled).

    Raises:
        AudioDecodeError: If the decoder fails.
    """
    tf, tfio_audio = _tensorflow_io_audio()
    try:
        decoded = decode(tfio_audio).numpy()
    except (tf.errors.OpError, ValueError) as error:
        raise AudioDecodeError(f"not audio: {format_name} decoder: {first_line(error)}", filename) from None
    return decoded.astype(np.float64)


def _decode_flac(encoded: bytes, filename: str, max_seconds: float | None) -> tuple[np.ndarray, int]:
    """Decodes FLAC with tensorflow-io, reading the rate, bit depth and length from STREAMINFO first."""
    if len(encoded) < 42 or encoded[4] & 0x7F != 0:
        raise AudioDecodeError("truncated: FLAC file ends before its STREAMINFO block", filename)
    streaminfo = encoded[8:42]
    sample_rate = (streaminfo[10] << 12) | (streaminfo[11] << 4) | (streaminfo[12] >> 4)
    bits_per_sample = (((streaminfo[12] & 0x01) << 4) | (streaminfo[13] >> 4)) + 1
    total_samples = ((streaminfo[13] & 0x0F) << 32) | int.from_bytes(streaminfo[14:18], "big")
    _check_sample_rate(sample_rate, filename)
    _check_duration(total_samples, sample_rate, max_seconds, filename)
    tf, _ = _tensorflow_io_audio()
    if bits_per_sample <= 8:
        dtype, offset, scale = tf.uint8, 128.0, 128.0
    elif bits_per_sample <= 16:
        dtype, offset, scale = tf.int16, 0.0, 32768.0
    else:
        dtype, offset, scale = tf.int32, 0.0, float(1 << 31)
    decoded = _run_tensorflow_io_decoder(
        "FLAC", filename, lambda tfio_audio: tfio_audio.decode_flac(encoded, dtype=dtype)
    )
    return (decoded - offset) / scale, sample_rate


def _decode_ogg(encoded: bytes, filename: str, max_seconds: float | None) -> tuple[np.ndarray, int]:
    """Decodes Ogg Vorbis with tensorflow-io, reading the rate and length from the Ogg headers first."""
    marker = encoded.find(b"\x01vorbis", 0, 512)
    if marker < 0:
        if encoded.find(b"OpusHead", 0, 512) >= 0:
            raise AudioDecodeError("unsupported: Ogg Opus", filename)
        raise AudioDecodeError("not audio: Ogg stream without a Vorbis identification header", filename)
    if marker + 16 > len(encoded):
        raise AudioDecodeError("truncated: Ogg file ends inside the Vorbis header", filename)
    (sample_rate,) = struct.unpack_from("<I", encoded, marker + 12)
    _check_sample_rate(sample_rate, filename)
    last_granule = _last_ogg_granule(encoded)
    if last_granule is not None:
        _check_duration(last_granule, sample_rate, max_seconds, filename)
    decoded = _run_tensorflow_io_decoder(
        "Vorbis", filename, lambda tfio_audio: tfio_audio.decode_vorbis(encoded)
    )
    return decoded, sample_rate


def _decode_mp3(encoded: bytes, filename: str) -> tuple[np.ndarray, int]:
    """Decodes MP3 with tensorflow-io, reading the rate from the first frame header."""
    offset = _mp3_audio_offset(encoded)
    if offset is None:
        raise AudioDecodeError("not audio: no MPEG audio frame", filename)
    version = (encoded[offset + 1] >> 3) & 0x03
    sample_rate = _MP3_SAMPLE_RATES[version][(encoded[offset + 2] >> 2) & 0x03]
    _check_sample_rate(sample_rate, filename)
    decoded = _run_tensorflow_io_decoder("MP3", filename, lambda tfio_audio: tfio_audio.decode_mp3(encoded))
    return decoded, sample_rate


def _last_ogg_granule(encoded: bytes) -> int | None:
    """The granule position (samples per channel) of the Ogg page that ends the file, or None.

    The last ``OggS`` capture pattern counts only if its page ends exactly at
    the end of the file, so a pattern inside audio data is never taken for it.
    """
    position = encoded.rfind(b"OggS")
    if position < 0 or position + 27 > len(encoded) or encoded[position + 4] != 0:
        return None
    num_segments = encoded[position + 26]
    segments_end = position + 27 + num_segments
    if segments_end > len(encoded) or segments_end + sum(encoded[position + 27 : segments_end]) != len(
        encoded
    ):
        return None
    (granule,) = struct.unpack_from("<q", encoded, position + 6)
    return granule if granule >= 0 else None


def _mp3_audio_offset(encoded: bytes) -> int | None:
    """Returns the offset of the first MPEG audio frame header (after any ID3v2 tag), or None."""
    offset = 0
    if encoded[:3] == b"ID3" and len(encoded) >= 10:
        tag_size = (encoded[6] << 21) | (encoded[7] << 14) | (encoded[8] << 7) | encoded[9]
        offset = 10 + tag_size + (10 if encoded[5] & 0x10 else 0)
        end = min(len(encoded) - 3, offset + 4096)
    else:
        end = min(len(encoded) - 3, 1)
    for position in range(offset, max(end, offset)):
        if _is_mp3_frame_header(encoded[position : position + 4]):
            return position
    return None


def _is_mp3_frame_header(header: bytes) -> bool:
    """Tells whether four bytes are a plausible MPEG audio frame header."""
    if len(header) < 4 or header[0] != 0xFF or header[1] & 0xE0 != 0xE0:
        return False
    version = (header[1] >> 3) & 0x03
    layer = (header[1] >> 1) & 0x03
    bitrate_index = header[2] >> 4
    rate_index = (header[2] >> 2) & 0x03
    return version != 1 and layer != 0 and bitrate_index != 0x0F and rate_index != 0x03
