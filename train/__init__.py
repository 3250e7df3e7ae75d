"""Training kit for facade-pix2pix: ``python -m train`` reproduces the bundled weights (the paper's facades
recipe) or retrains on your own paired images. See ``python -m train --help``."""

from .config import TrainConfig

__all__ = ["TrainConfig"]
