"""Metrics with an update/compute shape and a functional twin: zero-shot, retrieval,
CLIP-S; later captioning, FineCapEval facts, region and VQA metrics."""
