"""`write_gallery`: a self-contained HTML page of a world's images, masks and text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, PackageLoader, select_autoescape
from PIL import Image, ImageDraw

from finevl.data.coco import CocoCaptions, CocoInstances
from finevl.data.files import claim_output
from finevl.data.formats import in_split, read_finecap
from finevl.data.images import load_image
from finevl.data.jsonio import read_json, write_text_atomic
from finevl.errors import FinevlError
from finevl.report.config import GalleryConfig
from finevl.report.encode import image_data_uri

PALETTE = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (255, 225, 25), (145, 30, 180), (70, 240, 240)]


def overlay_masks(
    image: Image.Image, masks: list[np.ndarray], boxes: list[list[float]], scale: int = 2
) -> Image.Image:
    """Masks painted in their swatch colours over a dimmed grey copy, each box drawn one
    pixel outside it and numbered, so a mask that is not its box shows at a glance."""
    grey = np.asarray(image.convert("L"), dtype=np.float32)[..., None].repeat(3, axis=-1)
    base = grey * 0.35
    for k, mask in enumerate(masks):
        base[mask] = 0.2 * grey[mask] + 0.8 * np.array(PALETTE[k % len(PALETTE)], np.float32)
    out = Image.fromarray(base.clip(0, 255).astype(np.uint8))
    out = out.resize((out.width * scale, out.height * scale), Image.NEAREST)
    draw = ImageDraw.Draw(out)
    for k, (x, y, w, h) in enumerate(boxes):
        colour = PALETTE[k % len(PALETTE)]
        draw.rectangle((x * scale - 1, y * scale - 1, (x + w) * scale, (y + h) * scale), outline=colour)
        draw.text((x * scale + 1, y * scale), str(k + 1), fill=colour)
    return out


def _selected(world: Path, instances: CocoInstances, split: str | None, limit: int) -> list[int]:
    return in_split(world, split, sorted(instances.images))[: max(0, limit)]


def write_gallery(
    world: str | Path, out: str | Path | None = None, limit: int = 48, split: str | None = None
) -> dict[str, Any]:
    """Write `out` (default WORLD/gallery.html) showing the first `limit` images."""
    world = Path(world)
    if not (world / "instances.json").is_file():
        raise FinevlError(f"{world}: not a generated world (no instances.json)")
    out = Path(out) if out else world / "gallery.html"
    instances = CocoInstances(world / "instances.json")
    captions = CocoCaptions(world / "captions.json")
    fine = {r.image_id: r for r in read_finecap(world / "finecap.json")}
    splits = read_json(world / "splits.json") if (world / "splits.json").is_file() else {}
    split_of = {i: name for name, ids in splits.items() for i in ids}
    cards = []
    for image_id in _selected(world, instances, split, limit):
        info = instances.images[image_id]
        image = load_image(world / "images" / info.file_name)
        if image.size != (info.width, info.height):
            raise FinevlError(
                f"{info.file_name}: is {image.width}x{image.height} but instances.json says "
                f"{info.width}x{info.height}"
            )
        anns = instances.annotations.get(image_id, [])
        masks = [instances.mask(a) for a in anns]
        cards.append(
            {
                "id": image_id,
                "split": split_of.get(image_id, ""),
                "file": info.file_name,
                "image": image_data_uri(image),
                "masks": image_data_uri(overlay_masks(image, masks, [a.bbox for a in anns])),
                "fine": fine[image_id].caption if image_id in fine else "",
                "facts": fine[image_id].facts if image_id in fine else {},
                "coarse": captions.captions.get(image_id, []),
                "objects": [
                    {
                        "color": "#{:02x}{:02x}{:02x}".format(*PALETTE[k % len(PALETTE)]),
                        "name": instances.categories[a.category_id].name,
                        "attrs": a.attributes,
                        "area": int(a.area),
                        "bbox": [int(v) for v in a.bbox],
                    }
                    for k, a in enumerate(anns)
                ],
            }
        )
    env = Environment(loader=PackageLoader("finevl.report"), autoescape=select_autoescape())
    html = env.get_template("gallery.html").render(
        world=str(world), cards=cards, summary=read_json(world / "world.json")
    )
    write_text_atomic(out, html)
    return {"gallery": str(out), "images": len(cards)}


def gallery_command(cfg: GalleryConfig, overwrite: bool = False) -> dict[str, Any]:
    """`finevl world show`: `write_gallery` with the command's settings."""
    claim_output(cfg.out or cfg.world / "gallery.html", overwrite)
    return write_gallery(cfg.world, cfg.out, limit=cfg.limit, split=cfg.split)
