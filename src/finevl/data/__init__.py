"""Data formats and loading: COCO captions and instances, finecap, regions, JSONL pairs,
image folders, WebDataset shards, safe image loading, the word tokenizer, dataset checks."""
