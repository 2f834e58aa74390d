"""The trainer: the epoch loop, and `fit`, which fits any model through the model contract."""

from pipeline.training.loop import fit, select_device

__all__ = ["fit", "select_device"]
