"""Checks shared by the commands: argparse types for numbers, and the refusal to write over an
input file.

The type functions raise :class:`argparse.ArgumentTypeError`, so a bad value is an argparse
error (usage line, exit status 2) before any file is read or written.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Iterable


def _number(text: str, cast: type) -> float:
    try:
        value = cast(text)
    except (TypeError, ValueError):
        kind = "an integer" if cast is int else "a number"
        raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None
    if cast is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1."""
    value = int(_number(text, int))
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def finite_float(text: str) -> float:
    """Any finite number (no nan, inf or overflow such as 1e400)."""
    return float(_number(text, float))


def positive_float(text: str) -> float:
    """A finite number > 0."""
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def nonnegative_float(text: str) -> float:
    """A finite number >= 0."""
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def _same_file(a: str, b: str) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)  # hard links, bind mounts
    except OSError:  # one of them does not exist (yet)
        return False


def refuse_overwriting_inputs(outputs: Iterable[str | os.PathLike[str]],
                              inputs: Iterable[str | os.PathLike[str]]) -> None:
    """Raise ``UserError`` if an output path resolves to one of the inputs.

    Symbolic links, ``..``, relative paths and hard links are all resolved, so no spelling of an
    input's path lets a command replace the recording it is reading.
    """
    from audiofcn.cli.main import UserError

    ins = [os.fspath(p) for p in inputs]
    for out in outputs:
        o = os.fspath(out)
        for i in ins:
            if _same_file(o, i):
                raise UserError(f"{o}: is the input file {i}; refusing to overwrite an input "
                                "(choose another output path)")


def prepare_output(path: str | os.PathLike[str], *, folder: bool = False) -> None:
    """Check, before any work, that ``path`` (a file, or a folder with ``folder=True``) can be
    written, and remove the hidden temporary files a killed earlier run left next to it.

    Raises ``UserError`` naming the problem: the path is a folder (or a file where a folder is
    wanted), an ancestor is a file, or the nearest existing folder is not writable.
    """
    from pathlib import Path

    from audiofcn.cli.main import UserError
    from audiofcn.io.audio import clean_stale_temps

    p = Path(path)
    if not folder and p.is_dir():
        raise UserError(f"{p}: is a directory; give an output file name")
    if folder and p.exists() and not p.is_dir():
        raise UserError(f"{p}: exists and is not a directory")
    parent = p if folder else p.parent
    ancestor = parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if ancestor.exists() and not ancestor.is_dir():
        raise UserError(f"{p}: cannot create it: {ancestor} is not a directory")
    if ancestor.exists() and not os.access(ancestor, os.W_OK | os.X_OK):
        raise UserError(f"{p}: permission denied (cannot write in {ancestor})")
    if parent.is_dir():
        clean_stale_temps(parent)
