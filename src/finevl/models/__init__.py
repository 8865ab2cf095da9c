"""Models: CLIP (open_clip and Hugging Face families behind one interface); later the
captioner, the grammar head, the LLaVA-style model and the mask-aware region model."""
