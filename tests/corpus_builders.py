"""Builders of small OpenSLR-83-style corpora for tests.

``write_wav``/``encode_wav`` write WAV files in every format the decoder
supports, ``speechlike_waveform`` makes a deterministic voiced-sounding
signal, ``build_openslr_corpus`` lays clips out as the real corpus does
(``line_index_all.csv`` with loose wavs, or the distributed zip archives with
their ``line_index.csv``), and ``build_bad_corpus`` mixes good clips in odd
formats with one entry of each kind the pipeline must quarantine, returning
what a correct reader should report.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import struct
import zipfile
from collections.abc import Sequence

import numpy as np

SAMPLE_FORMATS = ("pcm8", "pcm16", "pcm24", "pcm32", "float32", "float64")

# Archive name of each accent code, as OpenSLR-83 distributes them (e.g. irish_english_male.zip).
ARCHIVE_ACCENT_NAMES = {
    "ir": "irish",
    "mi": "midlands",
    "no": "northern",
    "sc": "scottish",
    "so": "southern",
    "we": "welsh",
}

_GENDER_NAMES = {"m": "male", "f": "female"}

# The --max-clip-seconds under which the bad corpus's long clip is quarantined and its good clips pass.
BAD_CORPUS_MAX_CLIP_SECONDS = 2.0


def quantisation_step(sample_format: str) -> float:
    """Largest rounding error (in [-1, 1] units) of a sample format, plus a little slack."""
    steps = {
        "pcm8": 1.0 / 128,
        "pcm16": 1.0 / 32768,
        "pcm24": 1.0 / (1 << 23),
        "pcm32": 1.0 / (1 << 31),
        "float32": 1e-7,
        "float64": 1e-12,
    }
    return steps[sample_format] * 0.5 + 1e-9


def encode_wav(
    waveform: np.ndarray, sample_rate: int, sample_format: str = "pcm16", extensible: bool = False
) -> bytes:
    """Encodes samples in [-1, 1] as a WAV file.

    Args:
        waveform: (frames,) or (frames, channels) samples.
        sample_rate: Sample rate in Hz.
        sample_format: One of SAMPLE_FORMATS.
        extensible: Write a WAVE_FORMAT_EXTENSIBLE fmt chunk.

    Returns:
        The file's bytes.
    """
    frames = np.asarray(waveform, dtype=np.float64)
    if frames.ndim == 1:
        frames = frames[:, None]
    num_channels = frames.shape[1]
    if sample_format == "pcm8":
        payload = np.clip(np.round(frames * 128.0) + 128.0, 0, 255).astype(np.uint8).tobytes()
        bits, format_code = 8, 1
    elif sample_format == "pcm16":
        payload = np.clip(np.round(frames * 32768.0), -32768, 32767).astype("<i2").tobytes()
        bits, format_code = 16, 1
    elif sample_format == "pcm24":
        values = np.clip(np.round(frames * (1 << 23)), -(1 << 23), (1 << 23) - 1).astype("<i4")
        payload = values.reshape(-1, 1).view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
        bits, format_code = 24, 1
    elif sample_format == "pcm32":
        payload = np.clip(np.round(frames * (1 << 31)), -(1 << 31), (1 << 31) - 1).astype("<i4").tobytes()
        bits, format_code = 32, 1
    elif sample_format == "float32":
        payload = frames.astype("<f4").tobytes()
        bits, format_code = 32, 3
    elif sample_format == "float64":
        payload = frames.astype("<f8").tobytes()
        bits, format_code = 64, 3
    else:
        raise ValueError(f"Unknown sample format {sample_format!r}")
    block_align = num_channels * bits // 8
    base = struct.pack(
        "<HHIIHH",
        0xFFFE if extensible else format_code,
        num_channels,
        sample_rate,
        sample_rate * block_align,
        block_align,
        bits,
    )
    if extensible:
        subformat = struct.pack("<H", format_code) + bytes.fromhex("000000001000800000aa00389b71")
        fmt_body = base + struct.pack("<HHI", 22, bits, 0) + subformat
    else:
        fmt_body = base
    chunks = b"fmt " + struct.pack("<I", len(fmt_body)) + fmt_body
    chunks += b"data" + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) % 2 else b"")
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def write_wav(
    path: str,
    waveform: np.ndarray,
    sample_rate: int,
    sample_format: str = "pcm16",
    channels: int = 1,
    extensible: bool = False,
) -> bytes:
    """Writes a WAV file; a mono waveform is repeated over ``channels`` channels.

    Args:
        path: Where to write.
        waveform: (frames,) or (frames, channels) samples in [-1, 1].
        sample_rate: Sample rate in Hz.
        sample_format: One of SAMPLE_FORMATS.
        channels: Channel count used when ``waveform`` is 1-D.
        extensible: Write a WAVE_FORMAT_EXTENSIBLE fmt chunk.

    Returns:
        The bytes written.
    """
    frames = np.asarray(waveform, dtype=np.float64)
    if frames.ndim == 1 and channels > 1:
        frames = np.repeat(frames[:, None], channels, axis=1)
    encoded = encode_wav(frames, sample_rate, sample_format, extensible)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as wav_file:
        wav_file.write(encoded)
    return encoded


def sine_wave(frequency: float, seconds: float, sample_rate: int, amplitude: float = 0.5) -> np.ndarray:
    """A pure tone, float64."""
    time = np.arange(round(seconds * sample_rate)) / sample_rate
    return amplitude * np.sin(2 * np.pi * frequency * time)


def speechlike_waveform(seed: int, seconds: float, sample_rate: int) -> np.ndarray:
    """A deterministic voiced-sounding signal: a harmonic tone with vibrato and a syllabic envelope.

    Args:
        seed: Chooses the pitch, harmonic weights and syllable rate.
        seconds: Duration.
        sample_rate: Sample rate in Hz.

    Returns:
        float64 samples with peak amplitude 0.6.
    """
    random_state = np.random.RandomState(seed)
    num_samples = round(seconds * sample_rate)
    time = np.arange(num_samples) / sample_rate
    fundamental = random_state.uniform(100.0, 220.0)
    vibrato = 1.0 + 0.02 * np.sin(2 * np.pi * random_state.uniform(4.0, 6.0) * time)
    phase = 2 * np.pi * np.cumsum(fundamental * vibrato) / sample_rate
    waveform = np.zeros(num_samples)
    for harmonic in range(1, 6):
        if harmonic * fundamental * 1.05 >= sample_rate / 2:
            break
        waveform += random_state.uniform(0.3, 1.0) / harmonic * np.sin(harmonic * phase)
    syllable_rate = random_state.uniform(3.0, 5.0)
    envelope = 0.55 - 0.45 * np.cos(2 * np.pi * syllable_rate * time)
    waveform *= envelope
    peak = np.max(np.abs(waveform)) if num_samples else 0.0
    return waveform * (0.6 / peak) if peak > 0 else waveform


def clip_seed(clip_id: str) -> int:
    """A stable seed derived from a clip id."""
    return int.from_bytes(hashlib.sha256(clip_id.encode()).digest()[:4], "big")


@dataclasses.dataclass(frozen=True)
class ClipSpec:
    """One clip of a test corpus.

    Attributes:
        clip_id: Filename stem, e.g. ``irm_00001_00000001``.
        transcript: Index transcript (may hold commas).
        seconds: Duration.
        sample_rate: Sample rate of the file.
        sample_format: One of SAMPLE_FORMATS.
        channels: Channel count; channel c holds the mono signal scaled by ``1 - 0.25 * c``.
        silent: Write digital silence instead of a speech-like signal.
        content: Raw file bytes to write instead of a generated WAV (for bad files).
        write_file: False leaves the file out while the index still lists it.
        extensible: Write a WAVE_FORMAT_EXTENSIBLE header.
    """

    clip_id: str
    transcript: str = "The birch canoe slid on the smooth planks."
    seconds: float = 1.5
    sample_rate: int = 16000
    sample_format: str = "pcm16"
    channels: int = 1
    silent: bool = False
    content: bytes | None = None
    write_file: bool = True
    extensible: bool = False

    def frames(self) -> np.ndarray:
        """The (frames, channels) samples written for this clip."""
        if self.silent:
            mono = np.zeros(round(self.seconds * self.sample_rate))
        else:
            mono = speechlike_waveform(clip_seed(self.clip_id), self.seconds, self.sample_rate)
        gains = 1.0 - 0.25 * np.arange(self.channels)
        return mono[:, None] * gains[None, :]

    def mono_waveform(self) -> np.ndarray:
        """The mono signal a correct decoder returns (channels averaged), before quantisation."""
        return self.frames().mean(axis=1)

    def file_bytes(self) -> bytes:
        """The bytes written for this clip."""
        if self.content is not None:
            return self.content
        return encode_wav(self.frames(), self.sample_rate, self.sample_format, self.extensible)


def archive_name(clip_id: str) -> str:
    """OpenSLR-83 archive name of a clip, e.g. ``irish_english_male.zip`` for ``irm_...``."""
    accent = ARCHIVE_ACCENT_NAMES.get(clip_id[:2], clip_id[:2])
    gender = _GENDER_NAMES.get(clip_id[2:3], clip_id[2:3])
    return f"{accent}_english_{gender}.zip"


def index_line(row_number: int, clip_id: str, transcript: str) -> str:
    """One index row in the OpenSLR-83 format (leading space before the filename and transcript)."""
    return f"EN{row_number:04d}, {clip_id}, {transcript}"


def build_openslr_corpus(
    root: str,
    clips: Sequence[ClipSpec],
    as_zip: bool = False,
    archive_subfolder: bool = True,
    subdirectory: str = "",
    extra_index_lines: Sequence[str] = (),
    index_filename: str = "line_index_all.csv",
) -> str:
    """Writes clips in the OpenSLR-83 layout.

    Loose layout: ``<root>/<index_filename>`` listing every clip, and the wavs
    in ``<root>/<subdirectory>``. Zip layout: one archive per accent and
    gender (``irish_english_male.zip``, ...) holding ``line_index.csv`` and
    the wavs, inside a folder named after the archive when ``archive_subfolder``.

    Args:
        root: Corpus directory (created).
        clips: The clips.
        as_zip: Use the zip layout.
        archive_subfolder: In the zip layout, put members in a folder inside the archive.
        subdirectory: In the loose layout, the folder of the wavs relative to ``root``.
        extra_index_lines: Raw lines appended to the loose index (for duplicates and bad rows).
        index_filename: Name of the loose index.

    Returns:
        ``root``.
    """
    os.makedirs(root, exist_ok=True)
    if not as_zip:
        wav_dir = os.path.join(root, subdirectory)
        os.makedirs(wav_dir, exist_ok=True)
        lines = [index_line(number, clip.clip_id, clip.transcript) for number, clip in enumerate(clips, 1)]
        for clip in clips:
            if clip.write_file:
                with open(os.path.join(wav_dir, f"{clip.clip_id}.wav"), "wb") as wav_file:
                    wav_file.write(clip.file_bytes())
        with open(os.path.join(root, index_filename), "w", encoding="utf-8") as index_file:
            index_file.write("\n".join([*lines, *extra_index_lines]) + "\n")
        return root
    by_archive: dict[str, list[ClipSpec]] = {}
    for clip in clips:
        by_archive.setdefault(archive_name(clip.clip_id), []).append(clip)
    for name, archive_clips in sorted(by_archive.items()):
        folder = name[: -len(".zip")] + "/" if archive_subfolder else ""
        lines = [
            index_line(number, clip.clip_id, clip.transcript) for number, clip in enumerate(archive_clips, 1)
        ]
        with zipfile.ZipFile(os.path.join(root, name), "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(folder + "line_index.csv", "\n".join(lines) + "\n")
            for clip in archive_clips:
                if clip.write_file:
                    archive.writestr(folder + f"{clip.clip_id}.wav", clip.file_bytes())
    return root


def write_corrupt_archive(path: str, clip: ClipSpec) -> None:
    """Writes a zip holding ``line_index.csv`` and one wav whose stored bytes fail the CRC check."""
    payload = clip.file_bytes()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("line_index.csv", index_line(1, clip.clip_id, clip.transcript) + "\n")
        archive.writestr(f"{clip.clip_id}.wav", payload)
    with open(path, "rb") as archive_file:
        content = bytearray(archive_file.read())
    position = content.find(payload) + len(payload) // 2
    content[position] ^= 0xFF
    with open(path, "wb") as archive_file:
        archive_file.write(bytes(content))


def truncated_wav(clip: ClipSpec, keep_fraction: float = 0.5) -> bytes:
    """A WAV file cut after ``keep_fraction`` of its bytes; its header still declares the full size."""
    full = clip.file_bytes() if clip.content is None else clip.content
    return full[: int(len(full) * keep_fraction)]


@dataclasses.dataclass
class BuiltCorpus:
    """A test corpus and what a correct pipeline should report about it.

    Attributes:
        root: The corpus directory.
        good_clips: Clip id to spec of every clip that must come through.
        index_quarantine: (filename, reason prefix) that ``read_corpus`` must report.
        read_quarantine: (clip id, reason prefix) found when the clip bytes are read and decoded.
        duplicate_rows: Expected duplicate index row count.
        kinds: Clip id to a short description (``stereo``, ``short``, ``silence``, ``truncated``, ...).
    """

    root: str
    good_clips: dict[str, ClipSpec]
    index_quarantine: list[tuple[str, str]]
    read_quarantine: list[tuple[str, str]]
    duplicate_rows: int
    kinds: dict[str, str]

    @property
    def good_clip_ids(self) -> list[str]:
        """Sorted ids of the clips that must come through."""
        return sorted(self.good_clips)

    @property
    def expected_quarantine(self) -> list[tuple[str, str]]:
        """Every (filename, reason prefix) the whole pipeline must quarantine, sorted."""
        return sorted(self.index_quarantine + self.read_quarantine)


def build_bad_corpus(root: str) -> BuiltCorpus:
    """Writes a corpus of good clips in odd formats and one entry of each bad kind.

    Good clips (several accents, genders and speakers): stereo 44.1 kHz PCM16,
    8 kHz PCM8, 96 kHz PCM24, 22.05 kHz PCM32, 16 kHz float32, 48 kHz float64
    four-channel WAVE_FORMAT_EXTENSIBLE, a 0.5 s clip (shorter than one patch),
    digital silence, plain 16 kHz PCM16 clips, and clips inside a zip archive.
    Bad entries: a zero-byte file, a ``.wav`` that is not audio, a truncated
    file, an index row whose file is missing, a filename with accent code
    ``xx``, a zip member with a CRC error, a FLAC whose STREAMINFO declares a
    sample rate of 0 Hz, a clip longer than ``BAD_CORPUS_MAX_CLIP_SECONDS``, a
    duplicate index row and a malformed index row.

    Args:
        root: Corpus directory (created).

    Returns:
        The corpus and the expected outcome.
    """
    good = [
        ClipSpec("irm_00001_00000001", "Glue the sheet to the dark blue background.", 1.2, 44100, "pcm16", 2),
        ClipSpec("irf_00002_00000002", "It's easy to tell the depth, of a well.", 1.5, 8000, "pcm8"),
        ClipSpec("mim_00003_00000003", "These days a chicken leg is a rare dish.", 1.3, 96000, "pcm24"),
        ClipSpec("mif_00004_00000004", "Rice is often served in round bowls.", 1.4, 22050, "pcm32"),
        ClipSpec("nom_00005_00000005", "The juice of lemons makes fine punch.", 1.1, 16000, "float32"),
        ClipSpec(
            "nof_00006_00000006",
            "The box was thrown beside the parked truck.",
            1.2,
            48000,
            "float64",
            4,
            extensible=True,
        ),
        ClipSpec("scm_00007_00000007", "Four hours of steady work faced us.", 0.5, 16000, "pcm16"),
        ClipSpec(
            "scf_00008_00000008",
            "A large size in stockings is hard to sell.",
            1.5,
            16000,
            "pcm16",
            silent=True,
        ),
        ClipSpec("som_00009_00000009", "The boy was there when the sun rose.", 1.5, 16000, "pcm16"),
        ClipSpec("sof_00010_00000010", "A rod is used to catch pink salmon.", 1.5, 16000, "pcm16"),
        ClipSpec(
            "wem_00011_00000011", "The source of the huge river is the clear spring.", 1.5, 16000, "pcm16"
        ),
        ClipSpec("wef_00012_00000012", "Kick the ball straight and follow through.", 1.5, 16000, "pcm16"),
    ]
    kinds = {
        "irm_00001_00000001": "stereo 44.1 kHz pcm16",
        "irf_00002_00000002": "8 kHz pcm8",
        "mim_00003_00000003": "96 kHz pcm24",
        "mif_00004_00000004": "22.05 kHz pcm32",
        "nom_00005_00000005": "float32",
        "nof_00006_00000006": "4-channel 48 kHz float64 extensible",
        "scm_00007_00000007": "short",
        "scf_00008_00000008": "silence",
        "som_00009_00000009": "plain",
        "sof_00010_00000010": "plain",
        "wem_00011_00000011": "plain",
        "wef_00012_00000012": "plain",
    }
    truncated_source = ClipSpec("som_00013_00000013", seconds=1.5)
    bad = [
        ClipSpec("sof_00014_00000014", content=b""),
        ClipSpec("wem_00015_00000015", content=b"<html><body>404 Not Found</body></html>\n"),
        ClipSpec("som_00013_00000013", content=truncated_wav(truncated_source)),
        ClipSpec("wef_00016_00000016", write_file=False),
        ClipSpec("xxm_00017_00000017"),
        ClipSpec(
            "mim_00019_00000019",
            content=encode_flac(speechlike_waveform(19, 1.0, 16000), 16000, declared_rate=0),
        ),
        ClipSpec("mif_00020_00000020", seconds=BAD_CORPUS_MAX_CLIP_SECONDS + 1.0, sample_rate=8000),
    ]
    kinds.update(
        {
            "sof_00014_00000014": "empty",
            "wem_00015_00000015": "not audio",
            "som_00013_00000013": "truncated",
            "wef_00016_00000016": "missing",
            "xxm_00017_00000017": "unknown accent",
            "mim_00019_00000019": "FLAC declaring 0 Hz",
            "mif_00020_00000020": "too long",
        }
    )
    loose = good[:10] + bad
    duplicate_line = index_line(99, good[0].clip_id, good[0].transcript)
    malformed_line = "this row has no commas at all"
    build_openslr_corpus(root, loose, subdirectory="wavs", extra_index_lines=[duplicate_line, malformed_line])
    build_openslr_corpus(root, good[10:], as_zip=True)
    corrupt = ClipSpec("scm_00018_00000018", "The pipe began to rust while new.", 1.0)
    write_corrupt_archive(os.path.join(root, "scottish_english_male.zip"), corrupt)
    kinds[corrupt.clip_id] = "corrupt archive member"
    index_path = os.path.join(os.path.abspath(root), "line_index_all.csv")
    malformed_location = f"{index_path}:{len(loose) + 2}"
    kinds[malformed_location] = "malformed row"
    return BuiltCorpus(
        root=root,
        good_clips={clip.clip_id: clip for clip in good},
        index_quarantine=sorted(
            [
                ("sof_00014_00000014", "empty file"),
                ("wef_00016_00000016", "missing file"),
                ("xxm_00017_00000017", "unknown accent code 'xx'"),
                (malformed_location, "malformed index row"),
            ]
        ),
        read_quarantine=sorted(
            [
                ("wem_00015_00000015", "not audio"),
                ("som_00013_00000013", "truncated"),
                ("scm_00018_00000018", "unreadable archive member"),
                ("mim_00019_00000019", "unsupported sample rate: 0 Hz"),
                ("mif_00020_00000020", "too long: 3.0 s"),
            ]
        ),
        duplicate_rows=1,
        kinds=kinds,
    )


def _crc(data: bytes, width: int, polynomial: int) -> int:
    """A CRC as FLAC and Ogg compute it: most significant bit first, initial value 0, no final XOR.

    Args:
        data: The bytes to check.
        width: The CRC's width in bits (8, 16 or 32).
        polynomial: The generator polynomial, without its top bit.

    Returns:
        The CRC.
    """
    top_bit = 1 << (width - 1)
    mask = (1 << width) - 1
    crc = 0
    for byte in data:
        crc ^= byte << (width - 8)
        for _ in range(8):
            crc = ((crc << 1) ^ polynomial) & mask if crc & top_bit else (crc << 1) & mask
    return crc


def _crc8(data: bytes) -> int:
    """FLAC frame header CRC-8 (polynomial 0x07)."""
    return _crc(data, width=8, polynomial=0x07)


def _crc16(data: bytes) -> int:
    """FLAC frame CRC-16 (polynomial 0x8005)."""
    return _crc(data, width=16, polynomial=0x8005)


def encode_flac(
    waveform: np.ndarray, sample_rate: int, declared_rate: int | None = None, block_size: int = 4096
) -> bytes:
    """Encodes mono samples in [-1, 1] as a 16-bit FLAC file with verbatim (uncompressed) subframes.

    Args:
        waveform: 1-D samples.
        sample_rate: Sample rate written to STREAMINFO unless ``declared_rate`` is given.
        declared_rate: A STREAMINFO sample rate to write instead (e.g. 0 or 3, for broken files);
            the frames take their rate from STREAMINFO.
        block_size: Samples per frame (at most 65536).

    Returns:
        The file's bytes: ``fLaC``, one STREAMINFO block and the frames.
    """
    samples = np.clip(np.round(np.asarray(waveform, dtype=np.float64) * 32768.0), -32768, 32767)
    samples = samples.astype(">i2")
    rate = sample_rate if declared_rate is None else declared_rate
    frames = []
    for frame_number, start in enumerate(range(0, len(samples), block_size)):
        block = samples[start : start + block_size]
        if frame_number >= 128:
            raise ValueError("encode_flac writes at most 128 frames")
        # Sync, fixed block size; block size as 16-bit (n - 1) at the end, rate from STREAMINFO;
        # mono, 16 bits per sample; frame number (one UTF-8-coded byte).
        header = bytes([0xFF, 0xF8, 0x70, 0x08, frame_number]) + struct.pack(">H", len(block) - 1)
        header += bytes([_crc8(header)])
        frame = header + b"\x02" + block.tobytes()  # One VERBATIM subframe.
        frames.append(frame + struct.pack(">H", _crc16(frame)))
    streaminfo = struct.pack(">HH", block_size, block_size) + bytes(6)
    packed = (rate << 44) | (0 << 41) | (15 << 36) | len(samples)
    streaminfo += packed.to_bytes(8, "big") + bytes(16)
    return b"fLaC" + bytes([0x80]) + len(streaminfo).to_bytes(3, "big") + streaminfo + b"".join(frames)


def _ogg_crc(data: bytes) -> int:
    """Ogg page CRC-32 (polynomial 0x04C11DB7)."""
    return _crc(data, width=32, polynomial=0x04C11DB7)


def set_vorbis_sample_rate(encoded: bytes, sample_rate: int) -> bytes:
    """Rewrites the sample rate of an Ogg Vorbis file's identification header, fixing the page CRC.

    Args:
        encoded: A valid Ogg Vorbis file.
        sample_rate: The rate to declare.

    Returns:
        The patched file, whose first page still passes its CRC check.
    """
    content = bytearray(encoded)
    marker = content.find(b"\x01vorbis")
    struct.pack_into("<I", content, marker + 12, sample_rate)
    num_segments = content[26]
    page_end = 27 + num_segments + sum(content[27 : 27 + num_segments])
    struct.pack_into("<I", content, 22, 0)
    struct.pack_into("<I", content, 22, _ogg_crc(bytes(content[:page_end])))
    return bytes(content)


def write_zip_with_declared_size(path: str, member_name: str, content: bytes, declared_size: int) -> None:
    """Writes a deflated zip of one member whose headers declare ``declared_size`` uncompressed bytes.

    The member's real content is small, as in a zip bomb whose member claims gigabytes; the local
    header and the central directory both carry the declared size.

    Args:
        path: Where to write the archive.
        member_name: The member's name.
        content: The member's real bytes.
        declared_size: The uncompressed size the headers declare (below 4 GiB).
    """
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member_name, content)
    with open(path, "rb") as archive_file:
        data = bytearray(archive_file.read())
    struct.pack_into("<I", data, 22, declared_size)  # Local file header: uncompressed size.
    central = data.find(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, declared_size)  # Central directory: uncompressed size.
    with open(path, "wb") as archive_file:
        archive_file.write(bytes(data))
