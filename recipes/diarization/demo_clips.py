"""Write the utterances that ``audiofcn demo`` builds its diarization conversation from.

    python recipes/diarization/demo_clips.py --speechocean ~/data/speechocean762 \
        --out src/audiofcn/pretrained/diarization_demo

Two utterances each of three speechocean762 ``test/`` speakers (an adult woman, an adult man, a
child; never trained on), trimmed to their speech, 16 kHz mono FLAC, plus ``ATTRIBUTION.md``.
speechocean762 is CC BY 4.0 (a copy of jimbozhang/speechocean762).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import soundfile as sf

SPEAKERS = {"0024": "adult woman", "1030": "adult man", "0044": "child"}
PER_SPEAKER = 2


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from prepare import kaldi_list, speech_bounds

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--speechocean", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    lines = []
    for spk, who in SPEAKERS.items():
        rels = [rel for rel, s in kaldi_list(args.speechocean, "test") if s == spk]
        for i, rel in enumerate(rels[:PER_SPEAKER]):
            x, sr = sf.read(str(args.speechocean / rel), dtype="float32")
            a, b = speech_bounds(x, sr)
            name = f"spk{spk}_{i}.flac"
            sf.write(args.out / name, x[a:b], sr, subtype="PCM_16")
            lines.append(f"| {name} | speechocean762 `{rel}` | speaker {spk} ({who}) |")
    (args.out / "ATTRIBUTION.md").write_text(
        "# Diarization demo utterances\n\nFrom speechocean762 (Junbo Zhang et al., 2021; a "
        "copy of jimbozhang/speechocean762), licensed CC BY 4.0 "
        "(https://creativecommons.org/licenses/by/4.0/). Trimmed to the speech and re-encoded "
        "as 16 kHz FLAC by `recipes/diarization/demo_clips.py`; otherwise unchanged.\n\n"
        "| file | source | speaker |\n|---|---|---|\n" + "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
