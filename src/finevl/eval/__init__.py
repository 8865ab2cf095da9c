"""Benchmark harnesses above `train` and `metrics`: caption, compositional, editing, region
and VQA evaluation, and the attribute judge that scores edits. They read the FineShapes
world's facts (`world`), which the layers below them do not."""
