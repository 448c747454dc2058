"""medssl: label-efficient medical image segmentation with self-supervised pre-training."""
__version__ = "0.1.0"
