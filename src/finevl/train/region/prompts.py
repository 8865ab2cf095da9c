"""Region prompts. The two evaluation prompts are upstream's, word for word; the others
say the same things in the world's words. `<regionN>` names the N-th mask of a record."""

from __future__ import annotations

OVERVIEW = "This provides an overview of the picture."
CLASS = "What is the category of {r}? Using only one word or phrase."
SHORT = "What is in {r}? Using a short phrase."
DETAILED = "Can you give me a detailed description of {r}?"
ATTRIBUTE = {
    "color": "What color is {r}?",
    "pattern": "What pattern does {r} have?",
    "size": "How big is {r}?",
}
RELATION = "How is {r} placed relative to {o}?"


def region_question(template: str, *regions: int) -> str:
    """A question in Osprey's shape: the overview line, then the template with regions
    named `<regionN>` (1-based)."""
    names = {k: f"<region{n}>" for k, n in zip(("r", "o"), regions, strict=False)}
    return f"{OVERVIEW}\n{template.format(**names)}"


def all_region_prompts() -> list[str]:
    """Every fixed prompt, for the word tokenizer's corpus."""
    return [OVERVIEW, CLASS, SHORT, DETAILED, *ATTRIBUTE.values(), RELATION]
