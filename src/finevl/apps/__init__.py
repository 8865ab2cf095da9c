"""Applications of the models: zero-shot classification, retrieval and search, moderation,
retrieval-based captioning; later editing."""
