"""Load, validate, resample and save audio.

Every failure is an :class:`AudioError` whose message is one line naming the file and the problem,
so the CLI can print it as is. Writes go to a temporary file in the destination folder and are
renamed into place, so a crash never leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

MAX_CHANNELS = 2
# Highest rate any file may declare (768 kHz DXD); a larger header value is corrupt.
MAX_SAMPLE_RATE = 768_000


class AudioError(ValueError):
    """A file cannot be used as audio; ``str(err)`` is ``"<path>: <problem>"``."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclass(frozen=True)
class AudioInfo:
    path: str
    sample_rate: int
    channels: int
    frames: int
    format: str
    subtype: str

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def _declared_wav_shortfall(path: Path) -> int:
    """Bytes missing from a RIFF/WAVE file's data chunk (0 when complete or not a WAV).

    libsndfile silently shortens the frame count of a cut WAV to what is on disk, so a truncated
    download would pass as a short file; the declared chunk size tells the truth.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return 0
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk = f.read(8)
            chunk_size = int.from_bytes(chunk[4:8], "little")
            if chunk[:4] == b"data":
                # 0 and 0xFFFFFFFF mean "unknown/streaming"; don't call those truncated.
                if chunk_size in (0, 0xFFFFFFFF):
                    return 0
                return max(0, pos + 8 + chunk_size - size)
            pos += 8 + chunk_size + (chunk_size & 1)
    return 0


def frames_unknown(frames: int) -> bool:
    """libsndfile reports 2**63 - 1 frames for a stream of unknown length (a FLAC written live,
    whose header was never updated)."""
    return frames >= 2**62


def _open_info(path: Path) -> sf._SoundFileInfo:
    if not path.exists():
        raise AudioError(path, "file not found" if not path.is_symlink() else
                         f"dangling link (to {os.readlink(path)})")
    if path.is_dir():
        raise AudioError(path, "is a directory, not an audio file")
    if not path.is_file():
        raise AudioError(path, "not a regular file (a pipe or device?)")
    if not os.access(path, os.R_OK):
        raise AudioError(path, "permission denied")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as err:
        detail = str(err).split(":")[-1].strip().rstrip(".") or "unknown format"
        if detail.lower() == "system error":  # libsndfile's word for an OS-level failure
            detail = "cannot be opened"
        raise AudioError(path, f"not a readable audio file ({detail})") from None
    if not 1 <= info.samplerate <= MAX_SAMPLE_RATE:
        raise AudioError(path, f"unsupported sample rate {info.samplerate} Hz in the header "
                         f"(1 to {MAX_SAMPLE_RATE} Hz)")
    missing = _declared_wav_shortfall(path)
    if missing:
        raise AudioError(path, f"truncated WAV: data chunk is {missing} bytes short of its "
                         "declared size")
    return info


def audio_info(path: str | os.PathLike[str]) -> AudioInfo:
    """Header information without decoding the samples."""
    p = Path(path)
    info = _open_info(p)
    frames = int(info.frames)
    if frames_unknown(frames):  # count by decoding (a live stream's header has no length)
        from audiofcn.io.stream import _blocks

        frames = sum(b.shape[-1] for b in _blocks(p, info, 1 << 16))
    return AudioInfo(str(p), int(info.samplerate), int(info.channels), frames,
                     info.format, info.subtype)


def check_sample_rate(sr: object, what: str = "sample rate") -> int:
    """``sr`` as an int if it is a whole number of Hz in [1, ``MAX_SAMPLE_RATE``]."""
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or \
            not 1 <= int(sr) <= MAX_SAMPLE_RATE:
        raise ValueError(f"{what} must be a whole number of Hz from 1 to {MAX_SAMPLE_RATE}, "
                         f"got {sr!r}")
    return int(sr)


def resample(audio: torch.Tensor, orig_sr: int, target_sr: int) -> torch.Tensor:
    """Band-limited resampling along the last axis with ``soxr`` (high quality preset).

    ``(..., time)`` -> ``(..., ceil(time * target_sr / orig_sr))``, same dtype and device.
    soxr's polyphase filters cost about the same for any rate pair, unlike a direct windowed-sinc
    kernel whose size grows with the reduced ratio (44101 -> 16000 Hz needed > 8 GB). Not
    differentiable (it runs on the CPU in NumPy).

    Raises:
        ValueError: a rate outside 1 Hz .. ``MAX_SAMPLE_RATE``, or audio without a time axis.
    """
    orig_sr = check_sample_rate(orig_sr, "input sample rate")
    target_sr = check_sample_rate(target_sr, "target sample rate")
    if orig_sr == target_sr:
        return audio
    if audio.dim() == 0:
        raise ValueError("expected audio of shape (..., time), got a scalar")
    import soxr

    n = audio.shape[-1]
    n_out = -(-n * target_sr // orig_sr)
    lead = audio.shape[:-1]
    if n == 0 or audio.numel() == 0:
        return audio.new_zeros(*lead, n_out)
    dtype = np.float64 if audio.dtype == torch.float64 else np.float32
    flat = audio.detach().reshape(-1, n).cpu().numpy().astype(dtype, copy=False)
    # soxr wants (time, channels); every row of the batch is one channel.
    y = soxr.resample(np.ascontiguousarray(flat.T), orig_sr, target_sr, quality="HQ")
    y = y[:n_out] if y.shape[0] >= n_out else np.pad(y, ((0, n_out - y.shape[0]), (0, 0)))
    out = torch.from_numpy(np.ascontiguousarray(y.T)).reshape(*lead, n_out)
    return out.to(device=audio.device, dtype=audio.dtype if audio.is_floating_point()
                  else torch.float32)


def read_frames(f: sf.SoundFile, n: int, unknown_length: bool) -> np.ndarray:
    """Up to ``n`` frames ``(frames, channels)`` float32 from an open file.

    For a stream of unknown length soundfile's own read fails near the end (it seeks to update
    its position, which libsndfile cannot do without a length), so the C call is made directly.
    """
    if not unknown_length:
        return f.read(n, dtype="float32", always_2d=True)
    buf = np.empty((n, f.channels), np.float32)
    got = sf._snd.sf_readf_float(f._file, sf._ffi.cast("float *", buf.ctypes.data), n)
    return buf[: max(int(got), 0)]


def _read_unknown_length(p: Path, start: int, frames: int) -> np.ndarray:
    """``(time, channels)`` float32 from a file whose header has no length."""
    parts = []
    with sf.SoundFile(str(p)) as f:
        channels = f.channels
        if start:  # skip by reading: seeking needs a length
            while start > 0:
                got = read_frames(f, min(start, 1 << 16), True).shape[0]
                if got == 0:
                    break
                start -= got
        left = frames if frames >= 0 else None
        while left is None or left > 0:
            block = read_frames(f, 1 << 16 if left is None else min(left, 1 << 16), True)
            if block.shape[0] == 0:
                break
            parts.append(block)
            left = None if left is None else left - block.shape[0]
    return np.concatenate(parts) if parts else np.zeros((0, channels), np.float32)


def load_audio(
    path: str | os.PathLike[str],
    sr: int | None = None,
    mono: bool = True,
    *,
    offset: float = 0.0,
    duration: float | None = None,
    expected_channels: int | None = None,
) -> tuple[torch.Tensor, int]:
    """Read an audio file as float32 ``(channels, time)`` in [-1, 1].

    Args:
        path: wav/flac/ogg/mp3 or anything libsndfile reads.
        sr: resample to this rate; ``None`` keeps the file's rate.
        mono: average the channels into one.
        offset, duration: seconds to skip and to read (``None`` reads to the end).
        expected_channels: raise if the file does not have exactly this many channels
            (checked before downmixing), e.g. 2 for a stereo-only model.

    Returns:
        ``(audio, sample_rate)`` with audio of shape ``(1 if mono else C, T)``.

    Raises:
        AudioError: missing, empty, corrupt or truncated file, no samples, NaN/Inf samples,
            unsupported channel count.
    """
    p = Path(path)
    info = _open_info(p)
    if info.channels > MAX_CHANNELS and not mono:
        raise AudioError(p, f"unsupported channel count {info.channels} (mono or stereo only)")
    if expected_channels is not None and info.channels != expected_channels:
        raise AudioError(p, f"expected {expected_channels} channel(s), file has {info.channels}")
    start = int(round(offset * info.samplerate))
    frames = -1 if duration is None else int(round(duration * info.samplerate))
    try:
        if frames_unknown(info.frames):  # sf.read would allocate 2**63 frames: read in blocks
            data, file_sr = _read_unknown_length(p, start, frames), info.samplerate
        else:
            data, file_sr = sf.read(str(p), start=start, frames=frames, dtype="float32",
                                    always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise AudioError(p, f"cannot decode audio ({str(err).split(':')[-1].strip()})") from None
    if data.shape[0] == 0:
        raise AudioError(p, "no audio samples (zero length" +
                         (" after offset)" if start else ")"))
    # MP3 headers only estimate the frame count, so the check is for exact formats only.
    exact_length = info.format in ("WAV", "WAVEX", "FLAC", "AIFF", "W64", "RF64")
    if exact_length and 0 < info.frames and not frames_unknown(info.frames) and \
            duration is None and start == 0 and \
            data.shape[0] < info.frames:
        raise AudioError(p, f"truncated: header says {info.frames} frames, read {data.shape[0]}")
    if not np.isfinite(data).all():
        raise AudioError(p, "contains NaN or Inf samples")
    audio = torch.from_numpy(np.ascontiguousarray(data.T))
    if mono and audio.shape[0] > 1:
        audio = audio.mean(dim=0, keepdim=True)
    if sr is not None and sr != file_sr:
        try:
            audio = resample(audio, int(file_sr), int(sr))
        except (ValueError, RuntimeError, MemoryError) as err:
            raise AudioError(p, f"cannot resample {file_sr} -> {sr} Hz ({err})") from None
        file_sr = sr
    return audio, int(file_sr)


# Hidden temporary files are named ``.<name>.audiofcn-tmp-<pid>-<random><suffix>``: the pid tells
# a killed writer's leftovers (its process is gone) from a file another run is writing now.
_TEMP_MARK = ".audiofcn-tmp-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # exists but belongs to someone else (or not a pid: leave it alone)
    return True


def clean_stale_temps(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove the hidden temporary files that killed writers (SIGKILL, power loss) left in
    ``folder``; files of writers still running are kept. Returns what was removed.

    Only this machine's processes can be checked: on a folder shared between machines, a temp
    file of a live writer elsewhere whose pid is unused here would be removed (that writer's
    rename then fails cleanly; nothing is corrupted).
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for e in entries:
        if not e.name.startswith(".") or _TEMP_MARK not in e.name:
            continue
        pid_text = e.name.split(_TEMP_MARK, 1)[1].split("-", 1)[0]
        if not pid_text.isdigit() or _pid_alive(int(pid_text)):
            continue
        with contextlib.suppress(OSError):
            if e.is_file(follow_symlinks=False):
                os.unlink(e.path)
                removed.append(Path(e.path))
    return removed


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` only if the block succeeds.

    The temporary file is hidden and marked with this process's id, so
    :func:`clean_stale_temps` can remove it if the process is killed before the rename.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}{_TEMP_MARK}{os.getpid()}-",
                                    suffix=suffix or dest.suffix, dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates 0600 files; give the result the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_audio(path: str | os.PathLike[str], audio: torch.Tensor | np.ndarray, sr: int,
               subtype: str | None = None) -> Path:
    """Write ``(channels, time)`` or ``(time,)`` audio atomically; the format follows the suffix."""
    data = audio.detach().cpu().numpy() if isinstance(audio, torch.Tensor) else np.asarray(audio)
    if data.ndim == 1:
        data = data[None]
    if data.ndim != 2:
        raise AudioError(path, f"cannot save array of shape {tuple(data.shape)}; "
                         "expected (channels, time)")
    if data.shape[-1] == 0:
        raise AudioError(path, "refusing to write zero-length audio")
    if not np.isfinite(data).all():
        raise AudioError(path, "refusing to write NaN or Inf samples")
    fmt = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}.get(Path(path).suffix.lower())
    if fmt is None:
        raise AudioError(path, "unsupported output format (use .wav, .flac or .ogg)")
    with atomic_output(path) as tmp:
        sf.write(str(tmp), data.T.astype(np.float32), sr, format=fmt, subtype=subtype)
    return Path(path)
