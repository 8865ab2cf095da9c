"""LLaVA's instruction-data format (`llava_v1_5_mix665k.json` and kin): a JSON list of
`{"id", "image", "conversations": [{"from": "human", "value": "<image>\\n..."},
{"from": "gpt", "value": "..."}, ...]}`, read into single-turn examples and written back."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from finevl.data.jsonio import read_json, write_json_atomic
from finevl.errors import FinevlError

IMAGE_TAG = "<image>"


class Turn(BaseModel):
    """One question and its answer about an image (None: a text-only example; an empty
    question: the answer is raw text, for language modelling)."""

    image: str | None = None
    question: str = ""
    answer: str = Field(min_length=1)
    kind: str = ""  # what made it (finevl's data: "vqa/count", "description", ...)


class _Message(BaseModel):
    from_: str = Field(alias="from")
    value: str


class _Conversation(BaseModel):
    id: str | int = ""
    image: str | None = None
    conversations: list[_Message]
    kind: str = ""


def read_conversations(path: str | Path) -> list[Turn]:
    """Every human/gpt pair of a LLaVA-format file as a `Turn` (the `<image>` tag removed:
    the chat template puts the image first)."""
    try:
        records = [_Conversation.model_validate(r) for r in read_json(path)]
    except (ValidationError, TypeError) as e:
        raise FinevlError(f"{path}: not LLaVA conversation JSON ({str(e).splitlines()[0]})") from None
    turns = []
    for rec in records:
        msgs = rec.conversations
        for human, gpt in zip(msgs[::2], msgs[1::2], strict=False):
            if human.from_ != "human" or gpt.from_ != "gpt":
                raise FinevlError(f"{path}: conversation {rec.id!r} does not alternate human and gpt turns")
            question = human.value.replace(IMAGE_TAG, "").strip()
            if question and gpt.value.strip():
                turns.append(
                    Turn(image=rec.image, question=question, answer=gpt.value.strip(), kind=rec.kind)
                )
    return turns


def write_conversations(path: str | Path, turns: list[Turn]) -> None:
    """Write turns as LLaVA-format records, one conversation each."""
    records = []
    for k, t in enumerate(turns):
        human = f"{IMAGE_TAG}\n{t.question}" if t.image else t.question
        records.append(
            {
                "id": str(k),
                **({"image": t.image} if t.image else {}),
                "kind": t.kind,
                "conversations": [{"from": "human", "value": human}, {"from": "gpt", "value": t.answer}],
            }
        )
    write_json_atomic(path, records)
