"""The base model's training data, drawn from a FineShapes world: world text for the
language model, image-caption pairs for the projector, and instruction turns (descriptions,
VQA in every family, a few hallucination prompts) for instruction tuning."""

from __future__ import annotations

import random
from pathlib import Path

from finevl.data.coco import CocoCaptions
from finevl.data.conversations import Turn
from finevl.data.formats import in_split, read_finecap, read_regions
from finevl.data.jsonio import iter_jsonl
from finevl.errors import FinevlError
from finevl.train.stic.prompts import BRIEF, HALLUCINATION, PLAIN, STEP_BY_STEP


def world_images(folder: str | Path, split: str) -> dict[int, str]:
    """{image id: file path relative to the world folder} of a split, in id order."""
    records = read_finecap(Path(folder) / "finecap.json")
    ids = set(in_split(folder, split, [r.image_id for r in records]))
    return {r.image_id: f"images/{r.file_name}" for r in records if r.image_id in ids}


def split_texts(folder: str | Path, split: str) -> list[str]:
    """The text of a world split (captions, fine captions, region descriptions, questions
    with their answers): never another split's, so no test answer is learned here."""
    folder = Path(folder)
    ids = set(world_images(folder, split))
    texts = [
        c for i, caps in CocoCaptions(folder / "captions.json").captions.items() if i in ids for c in caps
    ]
    texts += [r.caption for r in read_finecap(folder / "finecap.json") if r.image_id in ids]
    texts += [
        t for r in read_regions(folder / "regions.json") if r.image_id in ids for t in (r.short, r.detailed)
    ]
    texts += [
        f"{r['question']} {r['answer']}" for _, r in iter_jsonl(folder / "vqa.jsonl") if r["image_id"] in ids
    ]
    return texts


def lm_texts(folder: str | Path, split: str) -> list[Turn]:
    """A split's text as text-only turns: the language model's first lessons."""
    return [Turn(answer=t) for t in split_texts(folder, split)]


def alignment_pairs(folder: str | Path, image_ids: list[int], files: dict[int, str], seed: int) -> list[Turn]:
    """One coarse caption per image behind the brief prompt (LLaVA's stage-1 shape)."""
    captions = CocoCaptions(Path(folder) / "captions.json").captions
    rng = random.Random(seed)
    return [
        Turn(image=files[i], question=BRIEF, answer=rng.choice(captions[i]), kind="caption")
        for i in image_ids
    ]


def instruction_turns(
    folder: str | Path, image_ids: list[int], files: dict[int, str], hallucination_share: float, seed: int
) -> list[Turn]:
    """Instruction data of `image_ids`: a description (fine caption, behind the step-by-step
    or a plain prompt), every VQA pair, and for a share of images a hallucination prompt
    answered with another image's description (so the base can hallucinate on request)."""
    rng = random.Random(seed)
    fine = {r.image_id: r.caption for r in read_finecap(Path(folder) / "finecap.json")}
    wanted = set(image_ids)
    turns: list[Turn] = []
    for i in image_ids:
        prompt = rng.choice([STEP_BY_STEP, *PLAIN])
        turns.append(Turn(image=files[i], question=prompt, answer=fine[i], kind="description"))
        if rng.random() < hallucination_share:
            pair = rng.sample(image_ids, 2) if len(image_ids) > 1 else [i]
            other = fine[rng.choice([j for j in pair if j != i] or [i])]
            turns.append(
                Turn(image=files[i], question=rng.choice(HALLUCINATION), answer=other, kind="hallucination")
            )
    vqa = Path(folder) / "vqa.jsonl"
    if not vqa.is_file():
        raise FinevlError(f"{folder}: no vqa.jsonl")
    for _, r in iter_jsonl(vqa):
        if r["image_id"] in wanted:
            turns.append(
                Turn(
                    image=files[r["image_id"]],
                    question=r["question"],
                    answer=str(r["answer"]),
                    kind=f"vqa/{r['family']}",
                )
            )
    return turns
