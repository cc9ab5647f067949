"""Non-deep baseline for the tagging tables: log-mel statistics + logistic regression.

  python recipes/tagging/baseline.py --manifest runs/tagging/instruments/manifest.jsonl \
      --out runs/tagging/runs/instruments_baseline

Features: mean and standard deviation over time of the 64-bin log-mel (16 kHz, n_fft 512,
hop 256) of the whole track; one L2-regularised logistic regression per tag (scikit-learn) on
the train split; evaluated on the test split with the same metrics as evaluate.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--audio-root")
    args = p.parse_args(argv)

    import numpy as np
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from audiofcn.eval.tagging import tagging_scores, write_report
    from audiofcn.frontend import LogMelConfig, LogMelFrontend, MelConfig, STFTConfig
    from audiofcn.io import load_audio, read_manifest
    from audiofcn.train.classification import multi_hot

    torch.set_num_threads(1)
    root = Path(args.audio_root) if args.audio_root else Path(args.manifest).parent
    records = read_manifest(args.manifest)
    labels = sorted({t for r in records for t in r.tags})
    fe = LogMelFrontend(LogMelConfig(mel=MelConfig(16000, STFTConfig(512, 256), 64)))

    def features(split: str) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for r in records:
            if r.split != split:
                continue
            audio, _ = load_audio(r.resolve(root), sr=16000)
            with torch.inference_mode():
                m = fe(audio[0])
            xs.append(np.concatenate([m.mean(-1).numpy(), m.std(-1).numpy()]))
            ys.append(multi_hot(r.tags, labels).numpy())
        return np.stack(xs), np.stack(ys)

    x_train, y_train = features("train")
    x_test, y_test = features("test")
    scaler = StandardScaler().fit(x_train)
    scores = np.zeros_like(y_test)
    for j in range(len(labels)):
        if y_train[:, j].min() == y_train[:, j].max():
            scores[:, j] = y_train[0, j]
            continue
        clf = LogisticRegression(max_iter=2000).fit(scaler.transform(x_train), y_train[:, j])
        scores[:, j] = clf.predict_proba(scaler.transform(x_test))[:, 1]
    report = tagging_scores(y_test, scores, labels)
    report.update(model="logmel_stats_logreg", num_parameters=int(2 * 64 * len(labels)
                                                                     + len(labels)),
                  protocol="whole-track log-mel mean+std, logistic regression per tag")
    write_report(report, Path(args.out) / "report_test.json")
    print(f"baseline test: ROC-AUC {report['roc_auc_macro']:.4f}, "
          f"PR-AUC {report['pr_auc_macro']:.4f} over {report['n_evaluated_tags']} tags")
    return 0


if __name__ == "__main__":
    sys.exit(main())
