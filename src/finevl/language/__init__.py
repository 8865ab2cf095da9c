"""The world's language: vocabulary, the scene record, facts and the caption grammar that
reads captions back into facts. The exact oracle that metrics, training data and evaluation
judge against; it knows no model and no pixels (`finevl.world` generates the world with it)."""
