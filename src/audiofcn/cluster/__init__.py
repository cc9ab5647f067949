"""Catalogs beyond one machine: tagging and indexing as Ray Data jobs over sharded output.

- :mod:`audiofcn.cluster.shards`: the shard plan (a manifest of which files go in which shard),
  Parquet shard files and their done markers, so an interrupted run resumes where it stopped.
  Pure Python + pyarrow; no Ray.
- :mod:`audiofcn.cluster.engine`: connect to (or start) a Ray cluster and run a shard worker
  over the pending shards as Ray Data actors, one per CPU (or GPU).
- :mod:`audiofcn.cluster.tagging` / :mod:`audiofcn.cluster.indexing`: the workers for
  ``audiofcn tag --engine ray`` and ``audiofcn index add --engine ray`` and the final merges.

Ray is imported only by :mod:`audiofcn.cluster.engine`, i.e. only when ``--engine ray`` is used;
install it with ``pip install 'audiofcn[cluster]'``.
"""
