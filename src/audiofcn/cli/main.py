"""``audiofcn`` entry point.

Each command lives in its own module with ``register(subparsers)``; a command's handler returns
an exit code. Library errors with one-line messages (bad audio, bad checkpoints, bad bitstreams)
are printed as ``audiofcn: error: <message>`` with exit status 1, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from audiofcn import __version__

# One module per command group; each adds its subcommands. Imported lazily at start-up only for
# argument parsing: heavy imports (torch models, faiss) happen inside the handlers.
COMMAND_MODULES = [
    "audiofcn.cli.info",
    "audiofcn.cli.data",
    "audiofcn.cli.demo",
    "audiofcn.cli.aec",
    "audiofcn.cli.separate",
    "audiofcn.cli.tag",
    "audiofcn.cli.codec",
    "audiofcn.cli.similarity",
    "audiofcn.cli.diarize",
]


class UserError(Exception):
    """An error to report in one line (bad input, missing file) rather than as a traceback."""


def os_error_message(err: OSError) -> str:
    """``"<path>: <reason>"`` for an OSError (the destination of a failed rename, if any)."""
    path = err.filename2 if err.filename2 is not None else err.filename
    reason = err.strerror.lower() if err.strerror else (str(err) or type(err).__name__)
    return f"{path}: {reason}" if path is not None else reason


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="audiofcn",
        description="Fully convolutional networks for music and audio: tagging, codec, "
                    "separation, echo cancellation, similarity search.")
    parser.add_argument("--version", action="version", version=f"audiofcn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from audiofcn.io.audio import AudioError
    from audiofcn.io.manifest import ManifestError
    from audiofcn.models.base import CheckpointError

    expected = (UserError, AudioError, ManifestError, CheckpointError)
    try:
        return int(args.func(args) or 0)
    except expected as err:
        print(f"audiofcn: error: {err}", file=sys.stderr)
        return 1
    except OSError as err:  # unwritable output, full disk, missing file: one line, no traceback
        print(f"audiofcn: error: {os_error_message(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("audiofcn: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    # Under `python -m audiofcn.cli.main` this file runs as __main__; the command modules
    # import UserError from `audiofcn.cli.main`, so dispatch through that module's main() or
    # its errors would not be caught here.
    from audiofcn.cli.main import main as package_main

    sys.exit(package_main())
