"""Osprey-style region understanding (seed 003): stage data, the stage trainer, the pipeline."""
