"""Zero-shot classification with prompt-template ensembling (CLIP_benchmark's recipe:
each class embedding is the renormalised mean of its unit template embeddings, built by
open_clip's `build_zero_shot_classifier`; logits are 100 * image @ classifier)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from finevl.apps.config import ZeroshotConfig
from finevl.data.coco import CocoInstances
from finevl.data.files import claim_outputs
from finevl.data.formats import image_folder, in_split, read_finecap
from finevl.data.images import ImageLoader
from finevl.data.jsonio import write_result
from finevl.errors import FinevlError
from finevl.metrics.zeroshot import ZeroShotAccuracy
from finevl.models.clip import Clip, load_placed_clip
from finevl.models.device import dtype_name

TEMPLATES: dict[str, list[str]] = {
    "shape": ["a {}.", "a picture of a {}.", "a {} on a background.", "there is a {} in the image."],
    "color": ["a {} shape.", "a {} object.", "a picture of a {} shape.", "something {}."],
    "size": ["a {} shape.", "a {} object.", "a picture of a {} shape."],
    "pattern": ["a {} shape.", "a {} object.", "a picture of a {} shape."],
    "background": ["a shape on {}.", "a picture of {}.", "some shapes on {}.", "{}."],
    "folder": ["a photo of a {}.", "a picture of a {}.", "a {}.", "an image of a {}."],
}
OBJECT_LABELS = ("shape", "color", "size", "pattern")


def world_labels(
    folder: str | Path, label: str, split: str | None = "test"
) -> tuple[list[Path], list[str], dict[str, str]]:
    """(image paths, labels, prompt name per label) of a world for one label kind.

    Object attributes are only unambiguous with one object, so they use the images that
    have exactly one; `background` uses every image.
    """
    folder = Path(folder)
    inst = CocoInstances(folder / "instances.json")
    ids = sorted(inst.images)
    if split:
        ids = in_split(folder, split, ids)
    if label == "background":
        fine = {r.image_id: r for r in read_finecap(folder / "finecap.json")}
        pairs = [
            (i, fine[i].facts["background"][0].split(": ", 1)[1], fine[i].phrases["background"][0])
            for i in ids
        ]
    elif label in OBJECT_LABELS:
        single = [i for i in ids if len(inst.annotations.get(i, [])) == 1]
        anns = [inst.annotations[i][0] for i in single]
        values = [
            inst.categories[a.category_id].name if label == "shape" else a.attributes[label] for a in anns
        ]
        pairs = [(i, v, v) for i, v in zip(single, values, strict=True)]
    else:
        raise FinevlError(f"--label must be one of background, {', '.join(OBJECT_LABELS)}; not {label!r}")
    if not pairs:
        raise FinevlError(f"{folder}: no images for label {label!r} (object labels need one-object images)")
    paths = [folder / "images" / inst.images[i].file_name for i, _, _ in pairs]
    return paths, [p[1] for p in pairs], {p[1]: p[2] for p in pairs}


def folder_labels(root: str | Path) -> tuple[list[Path], list[str], dict[str, str]]:
    """(image paths, labels, prompt names) of an ImageFolder-style tree (label = sub-folder)."""
    items = [(p, label) for p, label in image_folder(root) if label]
    if not items:
        raise FinevlError(f"{root}: no images in class sub-folders")
    return [p for p, _ in items], [lab for _, lab in items], {lab: lab.replace("_", " ") for _, lab in items}


def zeroshot_classify(
    clip: Clip,
    paths: list[Path],
    labels: list[str],
    names: dict[str, str],
    templates: list[str],
    loader: ImageLoader | None = None,
    batch_size: int = 256,
) -> tuple[dict[str, Any], ZeroShotAccuracy, list[str]]:
    """Classify images among the labels' prompt names; metrics, the accumulator (for the
    confusion matrix) and the class order."""
    from open_clip import build_zero_shot_classifier

    loader = loader or ImageLoader()
    classes = sorted(names)
    classifier = build_zero_shot_classifier(
        clip, clip.tokenize, [names[c] for c in classes], templates, device=clip.device
    ).to("cpu", torch.float32)  # (D, C), beside the images' embeddings
    metric = ZeroShotAccuracy()
    index = {c: k for k, c in enumerate(classes)}
    for i in range(0, len(paths), batch_size):
        loaded = [
            (loader(p), index[lab])
            for p, lab in zip(paths[i : i + batch_size], labels[i : i + batch_size], strict=True)
        ]
        kept = [(im, t) for im, t in loaded if im is not None]
        if kept:
            feats = clip.embed_images([im for im, _ in kept])
            metric.update(100.0 * feats @ classifier, torch.tensor([t for _, t in kept]))
    if not metric.logits:
        raise FinevlError("no readable images to classify")
    return metric.compute(), metric, classes


def zeroshot_command(cfg: ZeroshotConfig, overwrite: bool = False) -> dict[str, Any]:
    """`finevl clip zeroshot`: classify a world's split (by one attribute) or a folder of
    class sub-folders; the results (also written to `cfg.out`)."""
    claim_outputs(overwrite, cfg.out)
    split = None if cfg.split == "all" else cfg.split
    paths, labels, names = (
        world_labels(cfg.world, cfg.label, split) if cfg.world else folder_labels(cfg.folder)
    )  # type: ignore[arg-type]
    loader = ImageLoader(cfg.on_bad_image)  # type: ignore[arg-type]
    clip = load_placed_clip(cfg.model, cfg.weights, cfg.device, cfg.dtype)
    templates = TEMPLATES[cfg.label if cfg.world else "folder"]
    metrics, acc, classes = zeroshot_classify(clip, paths, labels, names, templates, loader)
    result = {
        "dataset": f"{cfg.world}:{cfg.label}:{cfg.split}" if cfg.world else str(cfg.folder),
        "model": cfg.model,
        "task": "zeroshot_classification",
        "dtype": dtype_name(clip.dtype),
        "metrics": metrics,
        "classes": classes,
        "confusion": acc.confusion().tolist(),
        "skipped_images": len(loader.skipped),
    }
    return write_result(result, cfg.out)
