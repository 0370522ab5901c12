"""PSNR and SSIM on the luma (Y) channel, as deraining papers report them.

Y follows ITU-R BT.601 in studio range (MATLAB's ``rgb2ycbcr``), computed on
8-bit RGB; SSIM uses the usual 11x11 Gaussian window with sigma 1.5.
"""
from __future__ import annotations

import cv2
import numpy as np

_BT601 = np.array([65.481, 128.553, 24.966]) / 255.0


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB -> HxW float64 Y in [16, 235]."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {rgb.shape}")
    return rgb.astype(np.float64) @ _BT601 + 16.0


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """PSNR in dB between two same-shape arrays on a 0..peak scale (inf if identical)."""
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(peak * peak / mse))


def ssim(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """Mean SSIM (Wang et al. 2004) of two single-channel images."""
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"expected two same-shape 2-D images, got {a.shape} and {b.shape}")
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    a = a.astype(np.float64)
    b = b.astype(np.float64)

    def blur(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)[5:-5, 5:-5]

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return float(np.mean(num / den))


def y_psnr_ssim(pred_rgb: np.ndarray, target_rgb: np.ndarray) -> tuple[float, float]:
    """(PSNR, SSIM) on Y of two uint8 RGB images."""
    y_p, y_t = rgb_to_y(pred_rgb), rgb_to_y(target_rgb)
    return psnr(y_p, y_t), ssim(y_p, y_t)
