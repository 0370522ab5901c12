"""PCNet (Jiang et al., IEEE TIP 2021) as a plain torch module, free of ROS.

The attribute names below are not free choices: they reproduce the module tree
of the authors' release so that ``state_dict()`` keys and shapes equal those of
their published checkpoints (``model.image_fea.weight``,
``model.crm.body.0.down_R.weight``, ``model.rrb.recon_B.weight`` ...).

One quirk is kept on purpose: the authors build one ``nn.PReLU`` and hand the
same instance to every block.  It is therefore one parameter (counted once,
giving 627,462 parameters at the defaults) that appears under many keys.
"""
from __future__ import annotations

import torch
from torch import nn

#: Input height and width must be a multiple of this (two stride-2 stages).
SIZE_MULTIPLE = 4


def _conv(c_in: int, c_out: int, k: int, bias: bool, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=bias)


def _up(n_feat: int) -> nn.ConvTranspose2d:
    """Exact 2x upsampling by transposed convolution."""
    return nn.ConvTranspose2d(n_feat, n_feat, 3, stride=2, padding=1, output_padding=1, bias=False)


class DepthwiseSeparableConv(nn.Module):
    """3x3 depth-wise then 1x1 point-wise: most of PCNet's cheapness."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.depth_conv = nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in)
        self.point_conv = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.point_conv(self.depth_conv(x))


class _Gate(nn.Module):
    """1x1 squeeze, PReLU, 1x1 excite, sigmoid: the shared shape of PCNet's attentions."""

    def __init__(self, c_in: int, c_mid: int, c_out: int, bias: bool) -> None:
        super().__init__()
        self.conv_du = nn.Sequential(
            nn.Conv2d(c_in, c_mid, 1, bias=bias),
            nn.PReLU(),
            nn.Conv2d(c_mid, c_out, 1, bias=bias),
            nn.Sigmoid(),
        )


class ChannelAttention(_Gate):
    """Squeeze-and-excitation over globally pooled features."""

    def __init__(self, channels: int, reduction: int, bias: bool) -> None:
        super().__init__(channels, channels // reduction, channels, bias)
        self.avg_pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv_du(self.avg_pool(x))


class PixelAttention(_Gate):
    """Per-pixel gate: selects what moves between the B and R branches."""

    def __init__(self, channels: int, reduction: int, bias: bool) -> None:
        super().__init__(channels, channels // reduction, channels, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv_du(x)


class DSCAttentionBlock(nn.Module):
    """Residual block of two depth-wise separable convs and channel attention."""

    def __init__(self, n_feat: int, reduction: int, bias: bool, act: nn.Module) -> None:
        super().__init__()
        self.body = nn.Sequential(
            DepthwiseSeparableConv(n_feat, n_feat), act, DepthwiseSeparableConv(n_feat, n_feat)
        )
        self.CA = ChannelAttention(n_feat, reduction, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.CA(self.body(x))


class UpFusion(nn.Module):
    """Brings the half-resolution rain features back up (the paper's LFSFB)."""

    def __init__(self, n_feat: int, act: nn.Module) -> None:
        super().__init__()
        self.FFU = _up(n_feat)
        self.act2 = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act2(self.FFU(x))


class CoupledRepresentationBlock(nn.Module):
    """One CRB: refine R at half scale, then swap attended features between B and R."""

    def __init__(self, n_feat: int, k: int, reduction: int, act: nn.Module, bias: bool, num_rcab: int) -> None:
        super().__init__()
        self.down_R = _conv(n_feat, n_feat, k, bias, stride=2)
        self.act1 = act
        self.body = nn.Sequential(*[DSCAttentionBlock(n_feat, reduction, bias, act) for _ in range(num_rcab)])
        self.lfsfb = UpFusion(n_feat, act)
        self.CA_B = PixelAttention(n_feat, reduction, bias)
        self.CA_R = PixelAttention(n_feat, reduction, bias)

    def forward(self, pair: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        x_b, x_r = pair
        x_r = x_r + self.lfsfb(self.body(self.act1(self.down_R(x_r))))
        b_to_r = self.CA_B(x_b)
        r_to_b = self.CA_R(x_r)
        return x_b - b_to_r + r_to_b, x_r - r_to_b + b_to_r

    def forward_fusable(self, pair: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The same block written for graph compilers, which fuse runs of elementwise ops into one memory pass:
        the exchange as one difference added to B and taken from R (three passes instead of four), and the
        PReLU after the up-convolution as elementwise ops that fuse with the residual add (OpenVINO runs a
        PReLU after a transposed convolution as a pass of its own). About 10% faster in OpenVINO on 2 cores,
        within about 1e-6 in fp32; rounding differs, so training and the eager path keep the authors' order."""
        x_b, x_r = pair
        up = self.lfsfb.FFU(self.body(self.act1(self.down_R(x_r))))
        slope = self.lfsfb.act2.weight
        x_r = x_r + (up - (1 - slope) * torch.clamp(up, max=0))       # PReLU(up) = up - (1 - a) min(up, 0)
        moved = self.CA_R(x_r) - self.CA_B(x_b)
        return x_b + moved, x_r - moved


class CoupledRepresentationModule(nn.Module):
    """The cascade of CRBs."""

    def __init__(self, n_feat: int, k: int, reduction: int, act: nn.Module, bias: bool, num_crb: int,
                 num_rcab: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *[CoupledRepresentationBlock(n_feat, k, reduction, act, bias, num_rcab) for _ in range(num_crb)]
        )

    def forward(self, x_b: torch.Tensor, x_r: torch.Tensor, fusable: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor]:
        if not fusable:
            return self.body((x_b, x_r))
        pair = (x_b, x_r)
        for crb in self.body:
            pair = crb.forward_fusable(pair)
        return pair


class Reconstruction(nn.Module):
    """Rebuilds the rain-free image B and, from B and R, the rainy input (the RRB)."""

    def __init__(self, n_feat: int, k: int, bias: bool) -> None:
        super().__init__()
        self.recon_B = _conv(n_feat, 3, k, bias)
        self.recon_R = _conv(n_feat, 3, k, bias)
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_du = nn.Sequential(
            nn.Conv2d(3, n_feat, 1, bias=bias), nn.PReLU(), nn.Conv2d(n_feat, 3, 1, bias=bias), nn.Sigmoid()
        )

    def forward(self, f_b: torch.Tensor, f_r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        img_b = self.recon_B(f_b)
        img_r = self.recon_R(f_r)
        att = self.conv_du(self.avg_pool(img_b + img_r))
        return img_b, img_b * att + img_r * (1 - att)


class PCNetBody(nn.Module):
    """Everything under the checkpoint's ``model.`` prefix."""

    def __init__(self, n_feat: int, k: int, reduction: int, act: nn.Module, bias: bool, num_crb: int,
                 num_rcab: int) -> None:
        super().__init__()
        self.image_fea = _conv(3, n_feat, k, bias)
        self.shallow_fea_B = DepthwiseSeparableConv(n_feat, n_feat)
        self.shallow_fea_R = DepthwiseSeparableConv(n_feat, n_feat)
        self.down_B = _conv(n_feat, n_feat, k, bias, stride=2)
        self.down_R = _conv(n_feat, n_feat, k, bias, stride=2)
        self.crm = CoupledRepresentationModule(n_feat, k, reduction, act, bias, num_crb, num_rcab)
        self.UP_B = nn.Sequential(_up(n_feat), act)
        self.UP_R = nn.Sequential(_up(n_feat), act)
        self.rrb = Reconstruction(n_feat, k, bias)

    def features(self, x: torch.Tensor, fusable: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """The B and R features at half resolution after the CRB cascade."""
        fea = self.image_fea(x)
        f_b = self.down_B(self.shallow_fea_B(fea))
        f_r = self.down_R(self.shallow_fea_R(fea))
        return self.crm(f_b, f_r, fusable)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f_b, f_r = self.features(x)
        return self.rrb(self.UP_B(f_b), self.UP_R(f_r))

    def clean(self, x: torch.Tensor, fusable: bool = False) -> torch.Tensor:
        """B alone: the same numbers as ``forward(x)[0]`` without the R upsampling and re-rendering, which
        only the training loss reads (about 6% of the FLOPs). ``fusable``: see
        ``CoupledRepresentationBlock.forward_fusable``."""
        f_b, _ = self.features(x, fusable)
        return self.rrb.recon_B(self.UP_B(f_b))


class PCNet(nn.Module):
    """Rainy image in [0, 1] (N,3,H,W; H, W multiples of 4) -> (rain-free B, re-rendered rainy image)."""

    def __init__(self, n_feat: int = 32, kernel_size: int = 3, reduction: int = 4, num_crb: int = 20,
                 num_rcab: int = 3, bias: bool = False) -> None:
        super().__init__()
        self.config = {"n_feat": n_feat, "kernel_size": kernel_size, "reduction": reduction, "num_crb": num_crb,
                       "num_rcab": num_rcab, "bias": bias}
        self.model = PCNetBody(n_feat, kernel_size, reduction, nn.PReLU(), bias, num_crb, num_rcab)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model(x)

    def clean(self, x: torch.Tensor, fusable: bool = False) -> torch.Tensor:
        """The rain-free image only: what inference needs; bit-identical to ``forward(x)[0]`` unless
        ``fusable``."""
        return self.model.clean(x, fusable)


#: Names the graph ``CleanOutput`` traces, in the file names of the disk-cached ONNX and OpenVINO graphs, so
#: that a cache made from an older form is not read back. Change it whenever that form changes.
CLEAN_GRAPH = "clean-fusable"


class CleanOutput(nn.Module):
    """PCNet seen as inference sees it, one output (B), for tracers and exporters (torch.compile, ONNX,
    OpenVINO) that take a module's ``forward``: the dead R reconstruction is then never built, and each CRB
    is written so that more of it fuses (within about 1e-6 of ``forward(x)[0]`` in fp32); ``fusable=False``
    keeps the authors' order, for comparisons."""

    def __init__(self, pcnet: PCNet, fusable: bool = True) -> None:
        super().__init__()
        self.pcnet = pcnet
        self.fusable = fusable
        self.training = pcnet.training          # an exporter checks the wrapper's mode, not the wrapped one's

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pcnet.clean(x, fusable=self.fusable)


def count_parameters(model: nn.Module) -> int:
    """Unique trainable parameters (the shared PReLU counts once)."""
    return sum(p.numel() for p in model.parameters())
