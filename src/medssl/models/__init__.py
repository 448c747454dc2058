"""Networks: the papers' U-Net, projection heads, and a factory that also accepts MONAI networks."""

from .heads import DenseHead, MLPHead, PooledMLPHead, ProjectionHead
from .unet import UNet, convert_reference_state_dict

__all__ = ["DenseHead", "MLPHead", "PooledMLPHead", "ProjectionHead", "UNet", "convert_reference_state_dict"]
