"""Segment-level similarity catalog: FAISS index + SQLite (tracks, segments, tags).

Open with :meth:`Catalog.create` / :meth:`Catalog.open`; see :mod:`audiofcn.index.catalog` for the
layout and the crash-safety protocol and :mod:`audiofcn.index.store` for the index kinds.
"""

from audiofcn.index.catalog import Catalog
from audiofcn.index.embedder import SegmentEmbedder, Segments
from audiofcn.index.records import AddReport, CatalogError, SegmentHit, TrackResult
from audiofcn.index.store import IndexFileError, IndexParams, build_index, set_faiss_threads

__all__ = ["AddReport", "Catalog", "CatalogError", "IndexFileError", "IndexParams", "SegmentHit",
           "SegmentEmbedder", "Segments", "TrackResult", "build_index", "set_faiss_threads"]
