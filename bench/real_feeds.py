"""Precision and recall of the topic matcher on real feeds, against the project's own labels.

    python bench/real_feeds.py [--corpus ../shared/corpus/real-feeds] [--verbose]

Reads every feed of the corpus through the monitor's own document path (parse, normalize),
matches each article, and compares "relevant" with `bench/eval/real-feeds/labels.json`
(entries labelled by reading them; every entry not listed there is off topic; borderline
ones are left out of the score). Skipped when the corpus is absent.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_CORPUS = HERE.parent.parent / "shared" / "corpus" / "real-feeds"
LABELS = HERE / "eval" / "real-feeds" / "labels.json"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    if not args.corpus.is_dir():
        print(f"skipped: the corpus {args.corpus} is absent")
        return 0
    from monitor.match import Matcher, load_profile
    from monitor.parse import ParseError
    from monitor.prepare import read_document

    labels = {(x["file"], x["link"]): x for x in json.loads(LABELS.read_text())["labels"]}
    matcher = Matcher(load_profile())
    now = datetime.now(UTC)
    tp = fp = fn = tn = skipped = 0
    for path in sorted(args.corpus.iterdir()):
        if path.suffix == ".md":
            continue
        try:
            doc = read_document(
                path.read_bytes(),
                f"https://corpus.invalid/{path.name}",
                None,
                f"https://corpus.invalid/{path.name}",
                now,
            )
        except ParseError:
            continue
        for a in doc.articles:
            label = labels.get((path.name, a.url or a.guid)) or labels.get((path.name, a.guid))
            if label and label.get("borderline"):
                skipped += 1
                continue
            truth = bool(label and label["relevant"])
            said = matcher.match_article(a).relevant
            tp += truth and said
            fp += said and not truth
            fn += truth and not said
            tn += not truth and not said
            if args.verbose and said != truth:
                print(f"  {'FP' if said else 'FN'} {path.name}: {a.title[:90]}")
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    print(
        json.dumps(
            {
                "entries": tp + fp + fn + tn,
                "borderline_skipped": skipped,
                "true_positives": tp,
                "false_positives": fp,
                "false_negatives": fn,
                "precision": round(precision, 3),
                "recall": round(recall, 3),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
