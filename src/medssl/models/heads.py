"""Projection heads shared by the pre-training methods (after lightly's ``ProjectionHead``)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

__all__ = ["DenseHead", "MLPHead", "PooledMLPHead", "ProjectionHead"]


class ProjectionHead(nn.Sequential):
    """Linear blocks built from ``(in, out, norm, act)`` tuples.

    Args:
        blocks: each ``(in_features, out_features, batch_norm_or_None, activation_or_None)``.
    """

    def __init__(self, blocks: Sequence[tuple[int, int, nn.Module | None, nn.Module | None]]) -> None:
        layers: list[nn.Module] = []
        for cin, cout, norm, act in blocks:
            layers.append(nn.Linear(cin, cout, bias=norm is None))
            if norm is not None:
                layers.append(norm)
            if act is not None:
                layers.append(act)
        super().__init__(*layers)


class MLPHead(ProjectionHead):
    """``Linear(in, hidden) -> [BN] -> ReLU -> Linear(hidden, out)`` (the papers' image-level head without BN)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, batch_norm: bool = False) -> None:
        super().__init__(
            [
                (in_dim, hidden_dim, nn.BatchNorm1d(hidden_dim) if batch_norm else None, nn.ReLU(inplace=True)),
                (hidden_dim, out_dim, None, None),
            ]
        )


class PooledMLPHead(nn.Module):
    """Global average pool of a ``(B, C, H, W)`` map, then an :class:`MLPHead`.

    METHODS.md section 1: pool -> Linear(512, 512) -> ReLU -> Linear(512, d).
    """

    def __init__(self, in_dim: int = 512, hidden_dim: int = 512, out_dim: int = 128, batch_norm: bool = False) -> None:
        super().__init__()
        self.mlp = MLPHead(in_dim, hidden_dim, out_dim, batch_norm)

    def forward(self, x: Tensor) -> Tensor:
        return self.mlp(x.mean(dim=(-2, -1)) if x.ndim == 4 else x)


class DenseHead(nn.Sequential):
    """Pixel projector: conv3x3 -> BN -> LeakyReLU -> conv3x3 -> BN -> LeakyReLU (MACL's G_pix)."""

    def __init__(self, in_channels: int = 512, out_channels: int = 128, slope: float = 0.01) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.LeakyReLU(slope, inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.LeakyReLU(slope, inplace=True),
        )
