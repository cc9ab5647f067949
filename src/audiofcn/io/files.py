"""Finding audio files in folders, with what could not be looked at reported, not skipped."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".opus")


def find_audio_files(inputs: Iterable[str | os.PathLike[str]]
                     ) -> tuple[list[Path], list[str]]:
    """Files named in ``inputs`` plus the audio files found recursively in its folders.

    Returns ``(files, problems)``: files in sorted order per input (hidden files, such as
    audiofcn's own temporary files, are left out; a dangling link with an audio suffix is kept,
    so reading it reports it), and one-line ``"<path>: <problem>"`` entries for folders that
    could not be listed (permission denied, ...).
    """
    files: list[Path] = []
    problems: list[str] = []

    def unreadable(err: OSError) -> None:
        reason = "permission denied" if isinstance(err, PermissionError) else \
            (err.strerror or str(err)).lower()
        problems.append(f"{err.filename}: cannot list folder ({reason})")

    for item in inputs:
        root = Path(item)
        if not root.is_dir():
            files.append(root)
            continue
        found = []
        for folder, subfolders, names in os.walk(root, onerror=unreadable):
            subfolders[:] = [d for d in subfolders if not d.startswith(".")]
            found += [Path(folder) / n for n in names
                      if not n.startswith(".") and Path(n).suffix.lower() in AUDIO_EXTENSIONS]
        files.extend(sorted(found))
    return files, problems
