"""finevl: fine-grained vision-language work around CLIP."""

__version__ = "0.1.0"
