"""Networks: the papers' U-Net, projection heads, and a factory that also accepts MONAI networks."""
from .heads import DenseHead, MLPHead, PooledMLPHead, ProjectionHead
from .unet import UNet, convert_reference_state_dict

__all__ = ["UNet", "convert_reference_state_dict", "ProjectionHead", "MLPHead", "PooledMLPHead", "DenseHead"]
