"""STIC self-training of a vision-language model (seed 001): the base model (LM, alignment,
instruction tuning), stage 1 (self-made preferences, DPO with LoRA) and stage 2
(description-infused fine-tuning)."""
