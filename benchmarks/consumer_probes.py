"""Linear probes of what each consumer of a CLIP's image tower reads (`finevl.eval.probes`):
the captioner's image tokens, the LLaVA's image tokens and the region extractor's mask
pools, per object attribute and for pairwise relations. JSON out, one row per CLIP, each
saved as it finishes (a rerun skips rows already there).

    python benchmarks/consumer_probes.py --world W --clip NAME=DIR [--clip ...] --out probes.json

The probe fits on the objects of the world's first `--fit-images` images and is scored on
the objects of the rest of its first `--limit` (use a world the towers never trained on).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from finevl.data.imagetext import load_image_text  # noqa: E402
from finevl.data.owners import owner_maps  # noqa: E402
from finevl.eval.probes import probe_consumers, probe_set  # noqa: E402
from finevl.models.clip import load_clip  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", required=True)
    ap.add_argument("--clip", action="append", required=True, help="NAME=checkpoint (repeatable)")
    ap.add_argument("--fit-images", type=int, default=1500)
    ap.add_argument("--limit", type=int, default=2000, help="The world's first N images in all.")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    if not 0 < args.fit_images < args.limit:
        ap.error("--fit-images must be between 0 and --limit (the rest are scored)")
    if any("=" not in spec for spec in args.clip):
        ap.error("--clip takes NAME=checkpoint")
    out = Path(args.out)
    rows = json.loads(out.read_text()) if out.is_file() else {}
    for spec in args.clip:
        name, _, path = spec.partition("=")
        if name in rows:
            continue
        start = time.time()
        clip = load_clip(path).eval()
        data = load_image_text(args.world, clip.image_size, limit=args.limit)
        owners = owner_maps(args.world, clip.image_size, limit=args.limit)
        scenes = [r.scene for r in data.fine if r is not None and r.scene]
        if len(scenes) != len(data):
            sys.exit(f"error: {args.world}: not a FineShapes world (images without scene records)")
        k = args.fit_images
        fit = probe_set(clip, data.images[:k], owners[:k], scenes[:k])
        test = probe_set(clip, data.images[k:], owners[k:], scenes[k:])
        rows[name] = {
            "model": path,
            "world": args.world,
            "fit_objects": len(fit.labels["shape"]),
            "test_objects": len(test.labels["shape"]),
            "test_pairs": len(test.pairs),
            "probes": probe_consumers(fit, test),
            "seconds": round(time.time() - start, 1),
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(rows, indent=1))
        print(name, json.dumps(rows[name]["probes"]), flush=True)


if __name__ == "__main__":
    main()
