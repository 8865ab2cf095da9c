"""Training loops: contrastive CLIP; later MLE and SCST captioning, grammar head, STIC, regions."""
