"""Nonsense numeric arguments are refused by argparse (exit 2, one usage line), not tracebacks
or silent defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from audiofcn.cli.checks import finite_float, nonnegative_float, positive_float, positive_int
from audiofcn.cli.main import main

BAD = [
    ["tag", "x.wav", "--batch-size", "0"],
    ["tag", "x.wav", "--batch-size", "-3"],
    ["tag", "x.wav", "--hop", "-1"],
    ["tag", "x.wav", "--hop", "0"],
    ["tag", "x.wav", "--hop", "nan"],
    ["tag", "x.wav", "--threads", "0"],
    ["tag", "x.wav", "--top", "0"],
    ["search", "q.wav", "--db", "c", "--start", "nan"],
    ["search", "q.wav", "--db", "c", "--end", "inf"],
    ["search", "q.wav", "--db", "c", "--start", "-1"],
    ["search", "q.wav", "--db", "c", "--per-track", "0"],
    ["search", "q.wav", "--db", "c", "-k", "0"],
    ["search", "q.wav", "--db", "c", "--threads", "0"],
    ["index", "info", "--db", "c", "--threads", "-1"],
    ["separate", "x.wav", "-o", "o", "--chunk-seconds", "nan"],
    ["separate", "x.wav", "-o", "o", "--patch-hop", "0"],
    ["encode", "x.wav", "x.afc", "--kbps", "nan"],
    ["data", "synth", "--out", "o", "--n", "0"],
    ["data", "synth", "--out", "o", "--duration", "inf"],
    ["data", "synth", "--out", "o", "--sr", "0"],
    ["data", "synth", "--out", "o", "--workers", "0"],
]


@pytest.mark.parametrize("argv", BAD, ids=[" ".join(a) for a in BAD])
def test_bad_numbers_are_argparse_errors(argv: list[str], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "error: argument" in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())  # nothing created


def test_type_functions() -> None:
    import argparse

    assert positive_int("3") == 3
    assert positive_float("0.5") == 0.5
    assert finite_float("-2.5") == -2.5
    assert nonnegative_float("0") == 0.0
    for fn, text in [(positive_int, "0"), (positive_int, "1.5"), (positive_float, "0"),
                     (finite_float, "nan"), (finite_float, "-inf"), (finite_float, "1e400"),
                     (nonnegative_float, "-0.1"), (positive_int, "x")]:
        with pytest.raises(argparse.ArgumentTypeError):
            fn(text)
