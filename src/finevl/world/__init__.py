"""FineShapes, the embedded world: scenes with exact ground truth, their pixels, masks,
captions (fine and coarse), facts, region descriptions and VQA, and the parser that reads
the world's language back into facts. Import the submodules (`scene`, `render`, `language`,
`facts`, `grammar`, `vqa`, `generate`) directly; this package imports nothing heavy."""
