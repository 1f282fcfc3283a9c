"""Noise predictors eps_theta: a UNet for images and a small MLP for 2-D points.

The UNet follows DDPM (Ho et al. 2020, Appendix B), itself a PixelCNN++ / Wide-ResNet style UNet:
sinusoidal time embedding (Vaswani et al. 2017, Sec. 3.5) -> MLP; ResBlocks with GroupNorm and SiLU,
the time embedding added after the first convolution; self-attention at chosen (low) resolutions;
skip connections from every down block to the matching up block.

Every model is called as ``model(xt, t)`` or ``model(xt, t, y)``: xt (B, C, H, W) or (B, D);
t (B,) int64 timesteps 0..T-1 (or float times for ``time_scale`` models); y (B,) int64 classes with
-1 for the null class (classifier-free guidance), or None for all-null. Returns eps_pred shaped like xt.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .model_inputs import check_image_shape, check_input_dtype, check_time_units, check_timesteps, class_rows


def sinusoidal_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Transformer position encoding of (B,) times: [sin(t w_0..w_{d/2-1}), cos(...)], w_i = max_period^(-i/(d/2)).

    Returns (B, dim).
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None, :]                      # (B, half)
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=-1)      # (B, 2*half)
    return F.pad(emb, (0, dim % 2))                                  # (B, dim)


class SinusoidalTimeEmbedding(nn.Module):
    """t (B,) -> sinusoidal features (B, dim) -> MLP -> (B, out_dim). ``time_scale`` multiplies t first."""

    def __init__(self, dim: int, out_dim: int, *, time_scale: float = 1.0):
        super().__init__()
        self.dim, self.time_scale = dim, time_scale
        self.mlp = nn.Sequential(nn.Linear(dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))

    def forward(self, t: Tensor) -> Tensor:
        return self.mlp(sinusoidal_embedding(t.reshape(t.shape[0]) * self.time_scale, self.dim))


def _groups(channels: int, groups: int) -> int:
    while channels % groups:
        groups //= 2
    return max(groups, 1)


class ResBlock(nn.Module):
    """h = conv(SiLU(GN(x))) + Linear(SiLU(temb)); h = conv(dropout(SiLU(GN(h)))); return skip(x) + h."""

    def __init__(self, in_ch: int, out_ch: int, temb_dim: int, *, dropout: float = 0.0, groups: int = 8):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(in_ch, groups), in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.temb_proj = nn.Linear(temb_dim, out_ch)
        self.norm2 = nn.GroupNorm(_groups(out_ch, groups), out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:            # x (B, in_ch, H, W), temb (B, temb_dim)
        h = self.conv1(F.silu(self.norm1(x)))                        # (B, out_ch, H, W)
        h = h + self.temb_proj(F.silu(temb))[:, :, None, None]       # time embedding added per channel
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    """Single-head self-attention over the H*W positions, with a residual connection."""

    def __init__(self, channels: int, *, groups: int = 8):
        super().__init__()
        self.norm = nn.GroupNorm(_groups(channels, groups), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:                          # (B, C, H, W)
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, C, H * W).transpose(-1, -2).unbind(1)  # each (B, HW, C)
        h = F.scaled_dot_product_attention(q, k, v)                  # softmax(q k^T / sqrt(C)) v, (B, HW, C)
        return x + self.proj(h.transpose(-1, -2).reshape(B, C, H, W))


class UNet(nn.Module):
    """A DDPM UNet. Level i works at resolution image_size / 2^i with base_channels * channel_mults[i] channels.

    Keyword-only configuration; ``attention_levels`` names the levels (0 = full resolution) with self-attention;
    ``num_classes`` adds a class embedding (plus a null class) for conditional models.
    """

    def __init__(self, *, in_channels: int = 1, out_channels: int | None = None, base_channels: int = 32,
                 channel_mults: tuple[int, ...] = (1, 2, 2), num_res_blocks: int = 1,
                 attention_levels: tuple[int, ...] = (2,), num_classes: int | None = None, dropout: float = 0.0,
                 groups: int = 8, time_scale: float = 1.0):
        super().__init__()
        out_channels = out_channels or in_channels
        self.in_channels, self.num_classes = in_channels, num_classes
        self.image_shape: tuple[int, ...] | None = None   # (C, H, W) of a pretrained model's card; None: any size
        self.config = dict(in_channels=in_channels, out_channels=out_channels, base_channels=base_channels,
                           channel_mults=tuple(channel_mults), num_res_blocks=num_res_blocks,
                           attention_levels=tuple(attention_levels), num_classes=num_classes, dropout=dropout,
                           groups=groups, time_scale=time_scale)
        bad = [lvl for lvl in attention_levels if not 0 <= lvl < len(channel_mults)]
        if bad:
            raise ValueError(f"attention_levels {bad} out of range: levels are 0..{len(channel_mults) - 1}")
        temb_dim = 4 * base_channels
        self.time_embed = SinusoidalTimeEmbedding(base_channels, temb_dim, time_scale=time_scale)
        self.class_embed = nn.Embedding(num_classes + 1, temb_dim) if num_classes else None  # last row = null
        self.conv_in = nn.Conv2d(in_channels, base_channels, 3, padding=1)

        block = dict(temb_dim=temb_dim, dropout=dropout, groups=groups)
        chans = [base_channels]
        ch = base_channels
        self.down = nn.ModuleList()
        for level, mult in enumerate(channel_mults):
            stage = nn.ModuleList()
            for _ in range(num_res_blocks):
                stage.append(ResBlock(ch, base_channels * mult, **block))
                ch = base_channels * mult
                if level in attention_levels:
                    stage.append(AttentionBlock(ch, groups=groups))
                chans.append(ch)
            if level < len(channel_mults) - 1:
                stage.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))  # downsample by 2
                chans.append(ch)
            self.down.append(stage)

        self.mid = nn.ModuleList([ResBlock(ch, ch, **block), AttentionBlock(ch, groups=groups),
                                  ResBlock(ch, ch, **block)])

        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mults))):
            stage = nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                stage.append(ResBlock(ch + chans.pop(), base_channels * mult, **block))
                ch = base_channels * mult
                if level in attention_levels:
                    stage.append(AttentionBlock(ch, groups=groups))
            if level > 0:
                stage.append(_Upsample(ch))
            self.up.append(stage)
        self.norm_out = nn.GroupNorm(_groups(ch, groups), ch)
        self.conv_out = nn.Conv2d(ch, out_channels, 3, padding=1)

    def embed(self, t: Tensor, y: Tensor | None, batch: int) -> Tensor:
        """Time embedding plus class embedding (null class where y is None or -1): (B, temb_dim)."""
        call = f"{type(self).__name__}(xt, t{', y' if y is not None else ''})"
        check_timesteps(call, t, batch)
        check_time_units(call, t, self.time_embed.time_scale)
        temb = self.time_embed(t)
        rows = class_rows(call, y, self.num_classes if self.class_embed is not None else None, batch, t.device,
                          model=type(self).__name__)
        if rows is not None:
            temb = temb + self.class_embed(rows)
        return temb

    def forward(self, xt: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        call = f"{type(self).__name__}(xt, t{', y' if y is not None else ''})"
        if xt.ndim != 4 or xt.shape[1] != self.in_channels:
            raise ValueError(f"{call}: expected images of shape (B, {self.in_channels}, H, W), got {tuple(xt.shape)}")
        check_input_dtype(call, xt, self.conv_in.weight)
        check_image_shape(call, xt, self.image_shape)
        temb = self.embed(t, y, xt.shape[0])
        h = self.conv_in(xt)
        skips = [h]
        for stage in self.down:
            for layer in stage:
                h = layer(h, temb) if isinstance(layer, ResBlock) else layer(h)
                if not isinstance(layer, AttentionBlock):
                    skips.append(h)
                else:
                    skips[-1] = h
        for layer in self.mid:
            h = layer(h, temb) if isinstance(layer, ResBlock) else layer(h)
        for stage in self.up:
            for layer in stage:
                if isinstance(layer, ResBlock):
                    h = layer(torch.cat([h, skips.pop()], dim=1), temb)
                elif isinstance(layer, _Upsample):
                    h = layer(h, skips[-1].shape[-2:])
                else:
                    h = layer(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class _Upsample(nn.Module):
    """Nearest-neighbour upsampling to the skip's size, then a 3x3 convolution (handles 7 -> 14 and odd sizes)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor, size) -> Tensor:
        return self.conv(F.interpolate(x, size=tuple(size), mode="nearest"))


class MLPDenoiser(nn.Module):
    """eps_theta for 2-D (or D-dimensional) points: [x_t, emb(t) (+ emb(y))] -> MLP -> eps_pred (B, D)."""

    def __init__(self, *, data_dim: int = 2, hidden_dim: int = 128, time_embed_dim: int = 64, num_layers: int = 3,
                 num_classes: int | None = None, time_scale: float = 1.0):
        super().__init__()
        self.data_dim, self.num_classes = data_dim, num_classes
        self.config = dict(data_dim=data_dim, hidden_dim=hidden_dim, time_embed_dim=time_embed_dim,
                           num_layers=num_layers, num_classes=num_classes, time_scale=time_scale)
        self.time_embed = SinusoidalTimeEmbedding(time_embed_dim, time_embed_dim, time_scale=time_scale)
        self.class_embed = nn.Embedding(num_classes + 1, time_embed_dim) if num_classes else None
        layers, width = [], data_dim + time_embed_dim
        for _ in range(num_layers):
            layers += [nn.Linear(width, hidden_dim), nn.SiLU()]
            width = hidden_dim
        self.net = nn.Sequential(*layers, nn.Linear(width, data_dim))

    def forward(self, xt: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        call = f"{type(self).__name__}(xt, t{', y' if y is not None else ''})"
        if xt.ndim != 2 or xt.shape[1] != self.data_dim:
            raise ValueError(f"{call}: expected points of shape (B, {self.data_dim}), got {tuple(xt.shape)}")
        check_input_dtype(call, xt, self.net[0].weight)
        check_timesteps(call, t, xt.shape[0], per="point", exact=True)
        check_time_units(call, t, self.time_embed.time_scale)
        emb = self.time_embed(t)                                       # (B, time_embed_dim)
        rows = class_rows(call, y, self.num_classes if self.class_embed is not None else None, xt.shape[0],
                          xt.device, model=type(self).__name__)        # (B,): as UNet.embed
        if rows is not None:
            emb = emb + self.class_embed(rows)
        return self.net(torch.cat([xt, emb], dim=-1))                 # (B, D)


class NoisyClassifier(nn.Module):
    """A small CNN classifier p_phi(y | x_t, t) for classifier guidance; ``time_conditioned=False`` makes it a clean
    classifier, called as ``classifier(x)``.

    Returns logits (B, num_classes). Its penultimate activations (``features``) serve the course's metric.
    """

    def __init__(self, *, in_channels: int = 1, num_classes: int = 10, base_channels: int = 32,
                 time_conditioned: bool = True, feature_dim: int = 128):
        super().__init__()
        self.config = dict(in_channels=in_channels, num_classes=num_classes, base_channels=base_channels,
                           time_conditioned=time_conditioned, feature_dim=feature_dim)
        c = base_channels
        self.time_embed = SinusoidalTimeEmbedding(c, 2 * c) if time_conditioned else None
        self.conv1 = nn.Conv2d(in_channels, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, 2 * c, 3, padding=1, stride=2)
        self.conv3 = nn.Conv2d(2 * c, 2 * c, 3, padding=1, stride=2)
        self.norm1, self.norm2, self.norm3 = (nn.GroupNorm(8, c), nn.GroupNorm(8, 2 * c), nn.GroupNorm(8, 2 * c))
        self.fc = nn.Linear(2 * c * 4 * 4, feature_dim)   # from a 4x4 grid of pooled features
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: Tensor, t: Tensor | None = None) -> Tensor:   # x (B, C, H, W) -> (B, feature_dim)
        h = F.silu(self.norm1(self.conv1(x)))
        h = self.conv2(h)
        if self.time_embed is not None:
            if t is None:
                raise ValueError("this classifier is conditioned on the timestep: call it as classifier(xt, t)")
            h = h + self.time_embed(t)[:, :, None, None]
        h = F.silu(self.norm2(h))
        h = F.silu(self.norm3(self.conv3(h)))
        # Pool to a 4x4 grid, not to 1x1: a global average of 9x9-pixel patch features forgets where strokes
        # are (a bag of patches), which held MNIST test accuracy near 90%.
        return F.silu(self.fc(F.adaptive_avg_pool2d(h, 4).flatten(1)))     # (B, 2c*16) -> (B, feature_dim)

    def forward(self, x: Tensor, t: Tensor | None = None) -> Tensor:
        return self.head(self.features(x, t))


def count_parameters(model: nn.Module) -> int:
    """The number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
