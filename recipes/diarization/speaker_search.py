"""Speaker search across recordings: enrol speakers, identify other recordings of them.

    python recipes/diarization/speaker_search.py --data runs/diarization/data --split valid \
        --speakers so
    python recipes/diarization/speaker_search.py --data runs/diarization/data --split test \
        --threshold 0.6

Half of the split's speakers (seeded) are enrolled with ``--enroll`` utterances each through
:class:`audiofcn.diarization.speakers.SpeakerDB` (the FAISS + SQLite catalog); ``--queries``
other utterances of every speaker are identified. Enrolled speakers' queries should name them
(top-1 accuracy, false rejections), the others should be rejected (false acceptances). Without
``--threshold`` (valid split) the threshold maximising correct decisions is reported.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from audiofcn.diarization.speakers import SpeakerDB
from audiofcn.diarization.training import read_manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("runs/diarization/data"))
    ap.add_argument("--split", choices=["valid", "test"], default="valid")
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--enroll", type=int, default=2)
    ap.add_argument("--queries", type=int, default=2)
    ap.add_argument("--max-speakers", type=int, default=40)
    ap.add_argument("--threshold", type=float, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--speakers", default="",
                    help='speaker-name prefix, e.g. "so": speechocean762 speakers only')
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    spk = {k: v for k, v in read_manifest(args.data / "speakers.jsonl", args.split).items()
           if k.startswith(args.speakers)}
    rng = np.random.default_rng(args.seed)
    names = [n for n in sorted(spk) if len(spk[n]) >= args.enroll + args.queries]
    names = [names[i] for i in rng.permutation(len(names))[: args.max_speakers]]
    enrolled = set(names[: len(names) // 2])
    scores = []  # (true speaker enrolled?, true name, best name, best score)
    with tempfile.TemporaryDirectory() as tmp:
        db = SpeakerDB.open(Path(tmp) / "db", create=True, model=args.model)
        for n in names:
            recs = [spk[n][i] for i in rng.permutation(len(spk[n]))]
            if n in enrolled:
                files = []
                for j, r in enumerate(recs[: args.enroll]):
                    x, sr = sf.read(str(args.data / "root" / r["path"]), dtype="float32")
                    files.append(Path(tmp) / f"{n}_{j}.wav")
                    sf.write(files[-1], x, sr)
                db.enroll(n, files)
            for r in recs[args.enroll: args.enroll + args.queries]:
                x, _ = sf.read(str(args.data / "root" / r["path"]), dtype="float32")
                scores.append((n, x))
        results = []
        for n, x in scores:
            ranked = db.rank(db.embed(x))
            results.append((n in enrolled, n, ranked[0].name, ranked[0].score))
        db.close()
    enrolled_q = [r for r in results if r[0]]
    top1 = float(np.mean([r[1] == r[2] for r in enrolled_q]))

    def decisions(t: float) -> dict[str, float]:
        fr = np.mean([not (r[3] >= t and r[1] == r[2]) for r in enrolled_q])
        fa = np.mean([r[3] >= t for r in results if not r[0]])
        ok = np.mean([(r[3] >= t and r[1] == r[2]) if r[0] else r[3] < t for r in results])
        return {"threshold": t, "correct": float(ok), "false_reject": float(fr),
                "false_accept": float(fa)}

    if args.threshold is None:
        best = max((decisions(float(t)) for t in np.arange(0.3, 1.0, 0.005)),
                   key=lambda d: d["correct"])
    else:
        best = decisions(args.threshold)
    print(json.dumps({"split": args.split, "speakers": len(names), "enrolled": len(enrolled),
                      "queries": len(results), "top1_enrolled": round(top1, 4),
                      **{k: round(v, 4) for k, v in best.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
