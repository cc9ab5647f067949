"""Audio I/O with validation and atomic writes, and JSONL manifests."""

from audiofcn.io.audio import (
    AudioError,
    AudioInfo,
    atomic_output,
    audio_info,
    clean_stale_temps,
    load_audio,
    resample,
    save_audio,
)
from audiofcn.io.manifest import (
    AudioRecord,
    ManifestError,
    read_manifest,
    validate_manifest,
    write_manifest,
)

__all__ = [
    "AudioError",
    "AudioInfo",
    "AudioRecord",
    "ManifestError",
    "atomic_output",
    "audio_info",
    "clean_stale_temps",
    "load_audio",
    "read_manifest",
    "resample",
    "save_audio",
    "validate_manifest",
    "write_manifest",
]
