"""VQA exact-match accuracy on normalised answers, per question family.

Answers are normalised as LLaVA's evaluation does (its `EvalAIAnswerProcessor`, from the
VQA challenge's code, rewritten in its order): lower-cased, commas and question marks
removed, punctuation deleted or spaced, a period only when not a decimal point, number words
to digits, articles dropped, common contractions restored (a subset of its table)."""

from __future__ import annotations

import re
from collections import defaultdict

_NUMBERS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip
_ARTICLES = {"a", "an", "the"}
_CONTRACTIONS = {
    "arent": "aren't", "cant": "can't", "couldnt": "couldn't", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hasnt": "hasn't", "havent": "haven't", "isnt": "isn't", "wasnt": "wasn't",
    "werent": "weren't", "wont": "won't", "wouldnt": "wouldn't",
}  # fmt: skip
_PUNCT = list(';/[]"{}()=+\\_-><@`,?!')  # EvalAI's marks, in its order
_PERIOD = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_DIGIT = re.compile(r"(\d)(,)(\d)")


def _punctuation(text: str) -> str:
    """EvalAI's `process_punctuation`: a mark touching a space, or any mark when the text
    has a digit comma digit, is deleted; otherwise it becomes a space."""
    out = text
    for p in _PUNCT:
        if p + " " in text or " " + p in text or _COMMA_DIGIT.search(text) is not None:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD.sub("", out)


def normalize_answer(answer: str) -> str:
    """An answer as LLaVA's VQA evaluation compares it (`EvalAIAnswerProcessor`, in order:
    lower case with commas and question marks removed, whitespace, punctuation, then number
    words to digits, articles dropped and contractions restored).

    >>> normalize_answer("Two.")
    '2'
    >>> normalize_answer("The  Red Star!")
    'red star'
    >>> normalize_answer("yes, red-blue")
    'yes red blue'
    """
    text = answer.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    text = _punctuation(text.replace("\n", " ").replace("\t", " ").strip())
    words = [_NUMBERS.get(w, w) for w in text.lower().split()]
    words = [_CONTRACTIONS.get(w, w) for w in words if w not in _ARTICLES]
    return " ".join(words)


class VqaAccuracy:
    """Exact match of normalised answers, per family and on average over families (each
    family weighs the same, as a benchmark suite's average does), plus over all questions.

    >>> m = VqaAccuracy()
    >>> m.update("Two", "2", "count")
    >>> m.update("red", "blue", "attribute")
    >>> m.compute()["accuracy/count"], m.compute()["accuracy/average"]
    (1.0, 0.5)
    """

    higher_is_better = True

    def __init__(self) -> None:
        self.correct: dict[str, int] = defaultdict(int)
        self.total: dict[str, int] = defaultdict(int)

    def update(self, prediction: str, answer: str, family: str = "all") -> None:
        self.total[family] += 1
        self.correct[family] += normalize_answer(prediction) == normalize_answer(answer)

    def compute(self) -> dict[str, float]:
        out = {f"accuracy/{f}": self.correct[f] / self.total[f] for f in sorted(self.total)}
        out["accuracy/average"] = sum(out.values()) / len(out) if out else 0.0
        n = sum(self.total.values())
        out["accuracy/all_questions"] = sum(self.correct.values()) / n if n else 0.0
        out["questions"] = n
        return out
