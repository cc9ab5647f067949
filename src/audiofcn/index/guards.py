"""Validation and error translation for the catalog: arguments checked before anything is
stored, SQLite failures turned into one line that names the file and the way back."""

from __future__ import annotations

import functools
import math
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from audiofcn.index.records import CatalogError

DB_NAME = "catalog.sqlite"  # Catalog.DB
APPROX_KINDS = ("ivfpq", "hnsw")
_F = TypeVar("_F", bound=Callable[..., Any])


def damaged_database(db_file: Path, err: Exception) -> CatalogError:
    """One line for an SQLite file that cannot be read: what is wrong and the way back."""
    if isinstance(err, sqlite3.OperationalError) and "locked" in str(err):
        return CatalogError(f"{db_file.parent}: another process is changing this catalog "
                            "(database locked); try again when it has finished")
    return CatalogError(f"{db_file}: damaged or not a catalog database ({err}); it holds the "
                        "embeddings and cannot be rebuilt from the index file: restore it from "
                        "a backup, or move the folder away and run `audiofcn index add` on "
                        "the audio again")


def sqlite_errors(method: _F) -> _F:
    """Turn an SQLite failure inside a catalog method into :func:`damaged_database`."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as err:
            raise damaged_database(self.root / DB_NAME, err) from None

    return wrapper  # type: ignore[return-value]


def check_new_catalog_args(hop_seconds: float | None, approx_threshold: int,
                           approx_kind: str) -> None:
    """Raise :class:`CatalogError` for settings a new catalog must not store."""
    if hop_seconds is not None and not (isinstance(hop_seconds, int | float) and
                                        math.isfinite(hop_seconds) and hop_seconds > 0):
        raise CatalogError(f"hop must be a positive number of seconds, got {hop_seconds!r}")
    if isinstance(approx_threshold, bool) or not isinstance(approx_threshold, int) or \
            approx_threshold < 1:
        raise CatalogError(f"approx_threshold must be a whole number >= 1, got "
                           f"{approx_threshold!r}")
    if approx_kind not in APPROX_KINDS:
        raise CatalogError(f"approx_kind must be one of {', '.join(APPROX_KINDS)}, got "
                           f"{approx_kind!r}")


def load_embedding_model(model_path: str | os.PathLike[str]) -> Any:
    from audiofcn.models import load_model

    model = load_model(model_path)  # CheckpointError (one line) when unreadable
    cfg = getattr(model, "config", None)
    if not all(hasattr(cfg, a) for a in ("segment_seconds", "embedding_dim", "sample_rate")):
        raise CatalogError(f"{model_path}: not an embedding model (it holds a "
                           f"{type(model).__name__}); pass an EmbeddingNet checkpoint such as "
                           "the shipped embedding_small.safetensors")
    return model


def check_folder(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise CatalogError(f"{root}: not a folder (a catalog is a folder; --db names it)")
