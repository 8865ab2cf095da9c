"""STIC's prompt pools, rewritten in the world's words with upstream's intent: one
step-by-step description prompt (preferred answers), eight plain description prompts (asked
about corrupted images) and eight hallucination-inducing prompts (asked about clean ones)."""

from __future__ import annotations

STEP_BY_STEP = (
    "Describe the image in detail. Think step by step: first the background, then each shape "
    "with its color, size and pattern, then where the shapes are relative to each other, then any text."
)

PLAIN = (
    "Describe the image.",
    "What is in the image?",
    "Describe the shapes in the image.",
    "Give a description of the image.",
    "Tell me what the image shows.",
    "What do you see in the image?",
    "Describe the image in detail.",
    "Describe the scene.",
)

HALLUCINATION = (
    "Imagine more shapes in the image and describe them.",
    "Describe the image, adding shapes that are not there.",
    "Describe the image with a different background.",
    "Imagine the colors of the shapes are different and describe the image.",
    "Describe a scene like this one with more shapes.",
    "Imagine there is text in the image and describe it.",
    "Describe the image, changing where the shapes are.",
    "Imagine a new shape next to the others and describe the image.",
)

BRIEF = "Describe the image briefly."  # alignment: image -> one coarse caption

# Stage 2 (DIFT): the model's own description goes after the image, as upstream's
# "<image>\nImage description:\n{description}\n\n".
DESCRIPTION_PREFIX = "Image description:"


def infuse(question: str, description: str) -> str:
    """A question with the image's description in front of it (DIFT)."""
    return f"{DESCRIPTION_PREFIX}\n{description}\n\n{question}"


def all_prompts() -> list[str]:
    """Every fixed prompt, for the word tokenizer's corpus."""
    return [STEP_BY_STEP, *PLAIN, *HALLUCINATION, BRIEF, DESCRIPTION_PREFIX]
