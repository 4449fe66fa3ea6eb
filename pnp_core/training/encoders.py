"""Encoders f_W: audio x (B, N) → parameters ν̂ (B, P), with the paper's CQT front end.

Front end (:class:`CQTFrontEnd`)
    |log1p(CQT(x)/ε)| with the constant-Q transform of nnAudio (``CQT1992v2``: one
    strided convolution with complex kernels, magnitude output), as in the paper.
    nnAudio is a maintained, pure-PyTorch package that installs on a CPU torch (its
    declared dependencies are numpy/scipy; installing it never pulls another torch), and
    it is the paper's own front end, so its numbers are the paper's. The CQT settings
    come from the synth's ``cqt`` config (:func:`cqt_settings`): ``fmin: auto`` follows
    the paper's rule, fmin = 32.7 Hz unless 32.7·2^octaves ≥ sr/2, then 0.4·sr/2^octaves
    (FTM: 10 octaves → 8.61 Hz, 120 bins; AM/FM: 6 octaves → 32.7 Hz, 72 bins).
    Padding is zeros (nnAudio's default mirrors the signal): the sounds are silent before
    their onset, and at laptop lengths the lowest kernels are longer than the sound,
    which reflect padding cannot handle.

Backbones
    ``efficientnet_b0`` (paper preset): BatchNorm2d(1) on the CQT image, Conv2d(1→3, 3×3,
    no padding), then EfficientNet-B0 from scratch (package ``efficientnet-pytorch``,
    ``EfficientNet.from_name``: no weights are downloaded) whose 1280 pooled features feed
    the output head. ≈4.0 M parameters with P = 5. The package's B0 matches torchvision's
    (which does not install here) in layout and count; it pads convolutions TF-style
    ("same") and uses BatchNorm eps 1e−3, momentum 0.01.
    ``small_cnn`` (laptop default): BatchNorm2d(1), ``len(channels)`` blocks of
    (3×3 conv, BatchNorm, ReLU, 2×2 max-pool), global average pooling: ~25 k parameters
    with the default channels (16, 32, 64), a few ms per sound on one CPU core.

Output heads (:class:`OutputHead`, paper §6) follow the rescaling:
    ``minmax``/``logminmax``: Linear with its bias frozen at 0 → BatchNorm1d(P) → ×√0.5 →
    tanh, so ν̂ ∈ (−1, 1) like the targets; ``log``: Linear → Linear(P→P);
    ``raw``: Linear → LeakyReLU (Softplus for the DDSP losses, which need θ̂ > 0).
"""

from __future__ import annotations

import math

import torch
from torch import nn

ENCODERS = ("small_cnn", "efficientnet_b0")


def cqt_settings(cqt: dict, sr: int) -> dict:
    """Resolve a synth's ``cqt`` config (fmin ``auto``) into CQT1992v2 keyword arguments."""
    octaves, bpo = int(cqt.get("octaves", 10)), int(cqt.get("bins_per_octave", 12))
    fmin = cqt.get("fmin", "auto")
    if fmin == "auto":
        fmin = 32.70 if 32.70 * 2 ** octaves < sr / 2 else 0.4 * sr / 2 ** octaves
    fmin = float(fmin)
    top = fmin * 2 ** ((octaves * bpo - 1) / bpo)
    if top >= sr / 2:
        raise ValueError(f"CQT: the top bin {top:.1f} Hz (fmin {fmin:g} Hz, {octaves} octaves) is "
                         f"above Nyquist ({sr / 2:g} Hz); lower fmin or octaves")
    return {"sr": int(sr), "fmin": fmin, "n_bins": octaves * bpo, "bins_per_octave": bpo,
            "hop_length": int(cqt.get("hop_length", 256))}


class CQTFrontEnd(nn.Module):
    """x (B, N) → |log1p(CQT(x)/ε)| (B, 1, n_bins, frames), in the module's dtype (float32
    unless converted, e.g. ``.double()`` for evaluation)."""

    def __init__(self, sr: int, fmin: float, n_bins: int, bins_per_octave: int = 12,
                 hop_length: int = 256, log_eps: float = 1e-3) -> None:
        super().__init__()
        from nnAudio.features.cqt import CQT1992v2

        self.cqt = CQT1992v2(sr=sr, hop_length=hop_length, fmin=fmin, n_bins=n_bins,
                             bins_per_octave=bins_per_octave, output_format="Magnitude",
                             pad_mode="constant", verbose=False)
        self.log_eps = float(log_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        S = self.cqt(x.to(self.cqt.cqt_kernels_real.dtype))
        return torch.log1p(S / self.log_eps).abs().unsqueeze(1)


class OutputHead(nn.Module):
    """Features (B, C) → ν̂ (B, P), shaped by the rescaling (see the module doc)."""

    def __init__(self, in_features: int, n_params: int, rescaling: str, spectral: bool = False,
                 bn_var: float = 0.5) -> None:
        super().__init__()
        self.rescaling = rescaling
        minmax = rescaling in ("minmax", "logminmax")
        self.linear = nn.Linear(in_features, n_params, bias=True)
        if minmax:
            nn.init.zeros_(self.linear.bias)
            self.linear.bias.requires_grad_(False)   # frozen at 0, as in the paper
            self.bn = nn.BatchNorm1d(n_params)
            self.scale = math.sqrt(bn_var)
        elif rescaling == "log":
            self.extra = nn.Linear(n_params, n_params)
        elif rescaling == "raw":
            self.act = nn.Softplus() if spectral else nn.LeakyReLU()
        else:
            raise ValueError(f"unknown rescaling {rescaling!r}")

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        y = self.linear(z)
        if self.rescaling in ("minmax", "logminmax"):
            return torch.tanh(self.bn(y) * self.scale)
        if self.rescaling == "log":
            return self.extra(y)
        return self.act(y)


class SmallCNN(nn.Module):
    """BatchNorm2d(1) + conv blocks + global average pooling: (B, 1, F, T) → (B, C)."""

    def __init__(self, channels=(16, 32, 64)) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.BatchNorm2d(1)]
        c_in = 1
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
                       nn.MaxPool2d(2, ceil_mode=True)]
            c_in = c
        self.body = nn.Sequential(*layers)
        self.out_features = c_in

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return self.body(s).mean(dim=(-2, -1))


class EfficientNetB0(nn.Module):
    """BatchNorm2d(1) → Conv2d(1→3, 3×3) → EfficientNet-B0 features, pooled: (B, 1280)."""

    def __init__(self) -> None:
        super().__init__()
        from efficientnet_pytorch import EfficientNet

        self.bn = nn.BatchNorm2d(1)
        self.conv = nn.Conv2d(1, 3, 3)
        # from_name builds the architecture only (random init, nothing downloaded);
        # include_top=False drops its classifier: the paper's head replaces it
        self.net = EfficientNet.from_name("efficientnet-b0", include_top=False)
        self.dropout = nn.Dropout(0.2)
        self.out_features = 1280

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        z = self.net(self.conv(self.bn(s)))          # (B, 1280, 1, 1) after its pooling
        return self.dropout(z.flatten(1))


class Encoder(nn.Module):
    """CQT front end + backbone + output head: x (B, N) → ν̂ (B, P).

    Parameters
    ----------
    cqt : dict, keyword arguments of :class:`CQTFrontEnd` (see :func:`cqt_settings`)
    n_params : P
    rescaling : the run's rescaling (chooses the head)
    kind : one of :data:`ENCODERS`
    spectral : the run trains with a DDSP loss (raw head: Softplus)
    channels : small_cnn widths
    """

    def __init__(self, cqt: dict, n_params: int, rescaling: str, kind: str = "small_cnn",
                 spectral: bool = False, channels=(16, 32, 64), log_eps: float = 1e-3) -> None:
        super().__init__()
        self.front = CQTFrontEnd(**cqt, log_eps=log_eps)
        if kind == "small_cnn":
            self.backbone = SmallCNN(channels)
        elif kind == "efficientnet_b0":
            self.backbone = EfficientNetB0()
        else:
            raise ValueError(f"unknown encoder {kind!r}; choose one of {ENCODERS}")
        self.head = OutputHead(self.backbone.out_features, n_params, rescaling, spectral)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder input |log1p(CQT/ε)| (B, 1, bins, frames)."""
        return self.front(x)

    def from_features(self, s: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(s))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.from_features(self.features(x))


def n_parameters(module: nn.Module, trainable: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable)


__all__ = ["Encoder", "CQTFrontEnd", "OutputHead", "SmallCNN", "EfficientNetB0", "cqt_settings",
           "n_parameters", "ENCODERS"]
