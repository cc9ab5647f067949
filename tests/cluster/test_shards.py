"""Shard plans without Ray: resume, damaged shards, a changed job starts over."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pa = pytest.importorskip("pyarrow")

from audiofcn.cluster.shards import ShardError, ShardPlan, table_to_parquet  # noqa: E402


def _payload(inputs: list[str]) -> bytes:
    return table_to_parquet(pa.table({"x": inputs}))


def test_plan_resume_and_damage(tmp_path: Path) -> None:
    inputs = [f"f{i}" for i in range(5)]
    plan = ShardPlan.create_or_resume(tmp_path, "t", inputs, 2, {"m": 1})
    assert plan.shards == [["f0", "f1"], ["f2", "f3"], ["f4"]] and plan.pending() == [0, 1, 2]
    for i in plan.pending():
        plan.write_shard(i, _payload(plan.shards[i]))
    with pytest.raises(ShardError, match="rows"):
        plan.write_shard(0, _payload(["only one"]))
    assert plan.read_all().column("x").to_pylist() == inputs
    again = ShardPlan.create_or_resume(tmp_path, "t", inputs, 2, {"m": 1})
    assert again.pending() == [] and again.resumed == 3
    plan.shard_path(1).write_bytes(b"PAR1 garbage")  # same marker, other bytes
    (tmp_path / "shard-00002.done").write_text("{not json")
    assert again.pending() == [1, 2]
    with pytest.raises(ShardError, match="not finished"):
        again.read_all()
    other = ShardPlan.create_or_resume(tmp_path, "t", inputs, 2, {"m": 2})  # new model
    assert other.pending() == [0, 1, 2] and other.resumed == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json"]
    assert json.loads((tmp_path / "plan.json").read_text())["key"] == other.key
    other.remove()
    assert not tmp_path.exists()
