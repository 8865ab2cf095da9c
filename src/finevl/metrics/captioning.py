"""COCO caption metrics (BLEU-1..4, METEOR, ROUGE-L, CIDEr-D) and the CIDEr-D reward for SCST.

`caption_metrics` is the standard evaluation: pycocoevalcap's Java PTBTokenizer, then its
scorers, so numbers compare with published ones. SPICE is left out (`SPICE_NOTE`).

`CiderD` is the self-critical training reward. As upstream CLIP-Caption-Reward does, its
document frequencies come once from the *training* references, not from the batch, and its
tokenizer (`simple_tokenize`) is pure Python, so it can run every step. With the evaluated
set's own references as `train_refs` it equals pycocoevalcap's per-image CIDEr:

    score(c, R) = 10 / |R| * sum_r mean_n [ sum_g min(t_c(g), t_r(g)) * t_r(g) / (|t_c| |t_r|) ]
                  * exp(-(l_c - l_r)^2 / (2 sigma^2))

with t(g) = count(g) * (log N - log max(1, df(g))) over the n-grams g of order n, N the number
of training images, and l the number of bigrams (pycocoevalcap's length).
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
from collections import defaultdict

import numpy as np
from pycocoevalcap.tokenizer.ptbtokenizer import PUNCTUATIONS

from finevl.errors import FinevlError

SPICE_NOTE = "SPICE not computed: it needs Stanford CoreNLP, which cannot be downloaded offline"
METRIC_KEYS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")

# PTB's names for characters; a token is dropped when its PTB name is in pycocoevalcap's list
# (1.2 lists "-LRB-" but PTB -lowerCase writes "-lrb-", so brackets survive there, as here).
_PTB_NAMES = {"(": "-lrb-", ")": "-rrb-", "{": "-lcb-", "}": "-rcb-", "[": "-lsb-", "]": "-rsb-", '"': "''"}
_CLITIC = re.compile(r"(\w)('s|'re|'ll|'ve|'m|'d|n't)\b")
_TOKEN = re.compile(r"(?:[a-z]\.){2,}|'(?:s|re|ll|ve|m|d)\b|n't\b|\w+(?:[-.'/]\w+)*|\S")


def simple_tokenize(text: str) -> str:
    """PTBTokenizer's output without Java, for the reward that runs every step: lowercase,
    split off punctuation and clitics ("it's" -> "it 's"), drop the tokens pycocoevalcap
    drops (its `PUNCTUATIONS`), join with single spaces.

    >>> simple_tokenize('A red star, left of "GO".')
    'a red star left of go'
    """
    text = _CLITIC.sub(r"\1 \2", text.lower())
    tokens = (_PTB_NAMES.get(t, t) for t in _TOKEN.findall(text))
    return " ".join(t for t in tokens if t not in PUNCTUATIONS)


# ----------------------------------------------------------------------------------------
# COCO caption metrics


def _check_ids(preds: dict[int, str], refs: dict[int, list[str]]) -> None:
    if not preds:
        raise FinevlError("caption metrics: no predictions to score")
    missing = sorted(set(preds) - set(refs))
    if missing:
        raise FinevlError(
            f"caption metrics: {len(missing)} predicted image ids have no references, e.g. {missing[:5]}"
        )
    empty = sorted(k for k in preds if not refs[k])
    if empty:
        raise FinevlError(f"caption metrics: image ids with an empty reference list, e.g. {empty[:5]}")


def _ptb_tokenize(texts: dict[int, list[str]]) -> dict[int, list[str]]:
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    return PTBTokenizer().tokenize({k: [{"caption": c} for c in v] for k, v in texts.items()})


def _meteor(gts: dict[int, list[str]], res: dict[int, list[str]]) -> float:
    from pycocoevalcap.meteor.meteor import Meteor

    scorer = Meteor()  # a Java process, killed when the scorer is collected
    try:
        return float(scorer.compute_score(gts, res)[0])
    finally:
        del scorer


def caption_metrics(
    preds: dict[int, str], refs: dict[int, list[str]], meteor: bool = True
) -> dict[str, float | None]:
    """The COCO caption metrics of one caption per image against its references.

    Only the ids in `preds` are scored. METEOR is None when `meteor` is False; CIDEr is
    pycocoevalcap's CIDEr-D with document frequencies from these references. Needs Java.
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    _check_ids(preds, refs)
    if shutil.which("java") is None:
        raise FinevlError("caption metrics need Java (PTBTokenizer, METEOR): install a Java runtime")
    gts = _ptb_tokenize({k: list(refs[k]) for k in preds})
    res = _ptb_tokenize({k: [v] for k, v in preds.items()})
    with contextlib.redirect_stdout(io.StringIO()):  # the scorers print their progress
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
        rouge, _ = Rouge().compute_score(gts, res)
        cider, _ = Cider().compute_score(gts, res)
    out: dict[str, float | None] = {f"Bleu_{n + 1}": float(b) for n, b in enumerate(bleu)}
    out["METEOR"] = _meteor(gts, res) if meteor else None
    out["ROUGE_L"] = float(rouge)
    out["CIDEr"] = float(cider)
    return {k: out[k] for k in METRIC_KEYS}


# ----------------------------------------------------------------------------------------
# CIDEr-D reward with fixed document frequencies

_Vec = tuple[list[dict[tuple[str, ...], float]], list[float], int]


class CiderD:
    """CIDEr-D against fixed training document frequencies: the SCST reward.

    >>> cider = CiderD([["a red star", "a red star on snow"], ["a blue box", "a box"]])
    >>> [round(float(s), 3) for s in cider.score(["a red star", "a box"], [["a red star"]] * 2)]
    [7.5, 0.0]

    (An exact copy scores 7.5: three words have no 4-gram, so 3 of the 4 orders match; "a",
    in every training image, weighs nothing.)
    """

    higher_is_better = True

    def __init__(self, train_refs: list[list[str]], n: int = 4, sigma: float = 6.0) -> None:
        from pycocoevalcap.cider.cider_scorer import cook_refs

        if not train_refs:
            raise FinevlError("CiderD needs training references to fix document frequencies")
        self.n, self.sigma = n, sigma
        self.document_frequency: dict[tuple[str, ...], float] = defaultdict(float)
        for refs in train_refs:
            cooked = cook_refs([simple_tokenize(r) for r in refs], n)
            for ngram in {g for ref in cooked for g in ref}:
                self.document_frequency[ngram] += 1
        self.ref_len = float(np.log(float(len(train_refs))))

    def _vec(self, counts: dict[tuple[str, ...], int]) -> _Vec:
        """tf-idf vectors per n-gram order, their norms, and the bigram count (as upstream)."""
        vec: list[dict[tuple[str, ...], float]] = [{} for _ in range(self.n)]
        norm = [0.0] * self.n
        length = 0
        for ngram, tf in counts.items():
            df = np.log(max(1.0, self.document_frequency.get(ngram, 0.0)))
            k = len(ngram) - 1
            vec[k][ngram] = float(tf) * (self.ref_len - df)
            norm[k] += pow(vec[k][ngram], 2)
            if k == 1:
                length += tf
        return vec, [float(np.sqrt(x)) for x in norm], length

    def _sim(self, hyp: _Vec, ref: _Vec) -> np.ndarray:
        (vec_h, norm_h, len_h), (vec_r, norm_r, len_r) = hyp, ref
        delta = float(len_h - len_r)
        val = np.zeros(self.n)
        for k in range(self.n):
            for ngram, w in vec_h[k].items():
                r = vec_r[k].get(ngram, 0.0)
                val[k] += min(w, r) * r  # clipped to the reference's weight
            if norm_h[k] != 0 and norm_r[k] != 0:
                val[k] /= norm_h[k] * norm_r[k]
            val[k] *= np.e ** (-(delta**2) / (2 * self.sigma**2))
        return val

    def score(self, candidates: list[str], refs: list[list[str]]) -> np.ndarray:
        """Per-candidate CIDEr-D, (N,); candidates sharing a reference list (several samples
        of one image) share its vectors."""
        from pycocoevalcap.cider.cider_scorer import cook_refs, precook

        if len(candidates) != len(refs):
            raise ValueError(f"{len(candidates)} candidates but {len(refs)} reference lists")
        ref_cache: dict[tuple[str, ...], list[_Vec]] = {}
        out = np.zeros(len(candidates))
        for i, (cand, rs) in enumerate(zip(candidates, refs, strict=True)):
            key = tuple(rs)
            if key not in ref_cache:
                cooked = cook_refs([simple_tokenize(r) for r in rs], self.n)
                ref_cache[key] = [self._vec(c) for c in cooked]
            hyp = self._vec(precook(simple_tokenize(cand), self.n))
            total = sum((self._sim(hyp, r) for r in ref_cache[key]), np.zeros(self.n))
            out[i] = float(np.mean(total)) / len(rs) * 10.0
        return out
