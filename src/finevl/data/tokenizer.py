"""A word-level tokenizer for the language models, trained with `tokenizers` on a corpus
and saved as a `PreTrainedTokenizerFast` directory. (CLIP text towers use open_clip's
real BPE tokenizer instead.)"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from finevl.data.config import TokenizerConfig
from finevl.data.files import atomic_dir, claim_output
from finevl.errors import FinevlError

SPECIAL_TOKENS = ["<pad>", "<unk>", "<s>", "</s>", "<image>"]
DEFAULT_MAX_LENGTH = 128


def train_word_tokenizer(texts: Iterable[str], out_dir: str | Path, max_length: int = DEFAULT_MAX_LENGTH):
    """Train a lower-cased word-level tokenizer (words, numbers, punctuation) and save it.

    Returns the `PreTrainedTokenizerFast`; `AutoTokenizer.from_pretrained(out_dir)` loads it.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FinevlError(f"{out_dir}: exists and is not a folder")
    if max_length < 8:
        raise FinevlError(f"--max-length must be at least 8, not {max_length}")

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Punctuation(),
            pre_tokenizers.Digits(individual_digits=False),
        ]
    )
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    tok.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=SPECIAL_TOKENS, min_frequency=1))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        additional_special_tokens=["<image>"],
        model_max_length=max_length,
    )
    with atomic_dir(out_dir) as tmp:
        fast.save_pretrained(str(tmp))
    return fast


def load_tokenizer(path: str | Path):
    """Load a saved tokenizer directory (local only, never remote code)."""
    from transformers import PreTrainedTokenizerFast

    if not (Path(path) / "tokenizer.json").is_file():
        raise FinevlError(f"{path}: no tokenizer.json (make one with `finevl data tokenizer`)")
    return PreTrainedTokenizerFast.from_pretrained(str(path))


def check_caption(tokenizer, text: str, where: str) -> list[int]:
    """Token ids of a caption; an empty or over-long caption is a `FinevlError` at `where`."""
    if not text or not text.strip():
        raise FinevlError(f"{where}: empty caption")
    ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
    limit = tokenizer.model_max_length
    if len(ids) > limit:
        raise FinevlError(f"{where}: caption has {len(ids)} tokens, over the tokenizer's limit of {limit}")
    return ids


def corpus_texts(folder: str | Path) -> list[str]:
    """All text of a dataset folder: captions, fine captions, regions, VQA questions and answers."""
    from finevl.data.coco import CocoCaptions
    from finevl.data.formats import read_finecap, read_regions
    from finevl.data.jsonio import iter_jsonl

    folder = Path(folder)
    texts: list[str] = []
    if (folder / "captions.json").exists():
        texts += [c for caps in CocoCaptions(folder / "captions.json").captions.values() for c in caps]
    if (folder / "finecap.json").exists():
        texts += [r.caption for r in read_finecap(folder / "finecap.json")]
    if (folder / "regions.json").exists():
        texts += [t for r in read_regions(folder / "regions.json") for t in (r.short, r.detailed)]
    if (folder / "vqa.jsonl").exists():
        texts += [f"{r['question']} {r['answer']}" for _, r in iter_jsonl(folder / "vqa.jsonl")]
    if not texts:
        raise FinevlError(f"{folder}: no text found (captions.json, finecap.json, regions.json or vqa.jsonl)")
    return texts


def tokenizer_command(cfg: TokenizerConfig, overwrite: bool = False) -> dict[str, Any]:
    """`finevl data tokenizer`: a word tokenizer of a dataset's text, saved to `cfg.out`."""
    claim_output(cfg.out, overwrite, folder=True)
    tokenizer = train_word_tokenizer(corpus_texts(cfg.folder), cfg.out, max_length=cfg.max_length)
    return {"tokenizer": str(cfg.out), "vocab_size": len(tokenizer), "max_length": cfg.max_length}
