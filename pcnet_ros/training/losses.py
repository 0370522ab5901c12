"""The paper's training objective: Charbonnier + edge + SSIM on B, plus the rain-reconstruction term."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
import torch.nn.functional as F


def charbonnier(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Smooth L1 that stays differentiable at zero."""
    d = x - y
    return torch.mean(torch.sqrt(d * d + eps * eps))


def _gauss_kernel(size: int, sigma: float, channels: int) -> torch.Tensor:
    r = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


class EdgeLoss(nn.Module):
    """Charbonnier distance between Laplacian-pyramid detail layers (sharp streak edges)."""

    def __init__(self) -> None:
        super().__init__()
        k = torch.tensor([0.05, 0.25, 0.4, 0.25, 0.05])
        self.register_buffer("kernel", (k[:, None] * k[None, :]).expand(3, 1, 5, 5).contiguous())

    def _blur(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), self.kernel, groups=3)

    def _detail(self, x: torch.Tensor) -> torch.Tensor:
        low = self._blur(x)
        up = torch.zeros_like(low)
        up[:, :, ::2, ::2] = low[:, :, ::2, ::2] * 4
        return x - self._blur(up)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return charbonnier(self._detail(x), self._detail(y))


class SSIM(nn.Module):
    """Differentiable mean SSIM over RGB channels of images in [0, 1]."""

    def __init__(self, window: int = 11, sigma: float = 1.5) -> None:
        super().__init__()
        self.register_buffer("kernel", _gauss_kernel(window, sigma, 3))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        c1, c2 = 0.01**2, 0.03**2
        blur = lambda t: F.conv2d(t, self.kernel, groups=3)  # noqa: E731
        mu_x, mu_y = blur(x), blur(y)
        var_x = blur(x * x) - mu_x**2
        var_y = blur(y * y) - mu_y**2
        cov = blur(x * y) - mu_x * mu_y
        s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
        return s.mean()


class PCNetLoss(nn.Module):
    """Weights from the authors' training script: B is pulled to the clean target,
    the re-rendered rainy image to the input (the coupling that teaches R)."""

    def __init__(self) -> None:
        super().__init__()
        self.edge = EdgeLoss()
        self.ssim = SSIM()

    def forward(self, clean_pred: torch.Tensor, rain_pred: torch.Tensor, clean: torch.Tensor,
                rainy: torch.Tensor) -> torch.Tensor:
        char = charbonnier(clean_pred, clean) + 0.2 * charbonnier(rain_pred, rainy)
        edge = self.edge(clean_pred, clean)
        ssim = self.ssim(clean_pred, clean) + 0.2 * self.ssim(rain_pred, rainy)
        return 0.3 * char + 0.2 * edge - 0.15 * ssim


def log_mse(x: torch.Tensor, y: torch.Tensor, floor: float = 1e-10) -> torch.Tensor:
    """Batch mean of each sample's 10 log10(MSE): minus its PSNR at peak 1 (floored where the error is zero)."""
    mse = (x - y).square().flatten(1).mean(1)
    return 10.0 * torch.log10(mse + floor).mean()


class _CoupledDistance(nn.Module):
    """One distance, taken as the paper's loss takes its terms: B to the clean target, plus 0.2 x the re-rendered
    rainy image to the input (the coupling that teaches R)."""

    distance: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

    def forward(self, clean_pred: torch.Tensor, rain_pred: torch.Tensor, clean: torch.Tensor,
                rainy: torch.Tensor) -> torch.Tensor:
        return self.distance(clean_pred, clean) + 0.2 * self.distance(rain_pred, rainy)


class SquaredErrorLoss(_CoupledDistance):
    """Mean squared error, the quantity PSNR reports: for a short last fine-tune that trades the paper's perceptual
    terms for the benchmark's metric."""

    distance = staticmethod(F.mse_loss)


class PSNRLoss(_CoupledDistance):
    """Minus the mean per-sample PSNR. The benchmarks average PSNR over images, in dB; a batch MSE gives the hardest
    images most of the gradient (an image at 30 dB weighs 10x one at 40), this one weighs every image's dB alike, as
    the score does."""

    distance = staticmethod(log_mse)


LOSSES: dict[str, type[nn.Module]] = {"paper": PCNetLoss, "mse": SquaredErrorLoss, "psnr": PSNRLoss}
