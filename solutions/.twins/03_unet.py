# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-01", "locked": true, "schema_version": 3, "solution": false, "task": false}
# # Worksheet 3: the pieces of the noise predictor
#
# Companion of lesson 3 (`notebooks/03_unet.ipynb`). The UNet $\epsilon_\theta(x_t, t)$ must know the step
# $t$. You build the three pieces that bring $t$ into the network, as `course_utils.nets` does, then the
# network itself:
#
# 1. `sinusoidal_embedding`: the Transformer's position encoding of $t$;
# 2. `SinusoidalTimeEmbedding`: that encoding followed by a small MLP (a module: you write its `forward`);
# 3. `ResBlock`: a residual block whose features are shifted by the time embedding (its `forward`);
# 4. `SmallUNet`: a two-level UNet's forward pass, with its skip connections, from those blocks.
#
# For the modules, keep the given `__init__`: the checks build your module with a fixed seed and compare it
# with the reference built from the same weights.
#
# **How a worksheet works.** Each exercise is a function with its docstring and a `# YOUR CODE HERE` to replace.
# Run the check cell right after it: it prints its verdict, ✅ when your function agrees with the course's
# reference on small fixed inputs, ❌ with what is wrong and a hint, or ⏳ while the function still raises
# `NotImplementedError` (the TODO as given). Cells further down that need your function say they are skipped
# until it passes. Your instructor may run more (hidden) tests when grading.

# %%
# Course set-up (the same cell opens every notebook; written by `make generated`).
import importlib.util

if importlib.util.find_spec("course_utils") is None:
    raise ModuleNotFoundError(
        "This kernel cannot import the course package `course_utils`. In the course folder, run "
        "`make lab` (it installs everything and opens JupyterLab with the right kernel), or install the "
        "folder into this kernel's Python with `pip install -e PATH/TO/THE/COURSE`. On Colab, upload the "
        "course folder, run `%pip install -e /content/FOLDER`, then restart the runtime.")

# %%
import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

from course_utils import checks
from course_utils.checks import (check_ResBlock, check_SinusoidalTimeEmbedding, check_sinusoidal_embedding,
                                 check_SmallUNet, run_check)
from course_utils.nets import UNet, count_parameters

_ = torch.manual_seed(0)          # the same random numbers on every run


# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-04", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 1. Sinusoidal features of $t$
#
# Vaswani et al. (2017, Sec. 3.5) encode a position with sines and cosines of geometrically spaced
# frequencies. With $d$ = `dim` (even) and $H = d/2$ (`half` in the code):
#
# $$\omega_i = \text{max\_period}^{-i/H}, \quad i = 0, \dots, H-1, \qquad
# \text{emb}(t) = \big[\sin(t\,\omega_0), \dots, \sin(t\,\omega_{H-1}),\ \cos(t\,\omega_0), \dots, \cos(t\,\omega_{H-1})\big]$$
#
# (all the sines first, then all the cosines). `t` has shape (B,) (integers or floats); the result is (B, dim).

# %% nbgrader={"grade": false, "grade_id": "sinusoidal_embedding", "locked": false, "schema_version": 3, "solution": true, "task": false}
def sinusoidal_embedding(t, dim, max_period=10000.0):
    """(B,) times -> (B, dim) float32 features [sin(t w_0..w_{H-1}), cos(t w_0..w_{H-1})], w_i = max_period^(-i/H),
    H = half = dim/2 (float32 like the Linear layers that read them)."""
    ### BEGIN SOLUTION
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)   # (H,)
    args = t.float()[:, None] * freqs[None, :]                                                # (B, H)
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)                              # (B, dim)
    ### END SOLUTION


# %% course={"check": "sinusoidal_embedding", "target": "sinusoidal_embedding"} deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_sinusoidal_embedding", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# NBVAL_CHECK_OUTPUT
check_sinusoidal_embedding(sinusoidal_embedding)
### BEGIN HIDDEN TESTS
assert run_check("sinusoidal_embedding", sinusoidal_embedding, hidden=True).passed, "hidden tests failed"
### END HIDDEN TESTS

# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-05", "locked": true, "schema_version": 3, "solution": false, "task": false}
# Each row of the picture is one step $t$: its left half holds the sines, its right half the cosines, and in
# each half the fast frequencies (left) tell close steps apart, the slow ones (right) far-apart steps. The right panel holds the cosine similarity of every pair of steps: nearby steps get similar embeddings
# (along the bright diagonal; 0.97 one step apart, 0.66 ten apart), and the similarity falls away from it, though not
# steadily: the faint parallel stripes are gaps at which several frequencies come back into phase (0.49 fifty steps
# apart, 0.56 a hundred apart, 0.36 two hundred apart).

# %%
if checks.ready("sinusoidal_embedding", sinusoidal_embedding, "the picture"):
    emb = sinusoidal_embedding(torch.arange(1000), 64)                 # (1000, 64)
    unit = F.normalize(emb, dim=1)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    im1 = ax1.imshow(emb, aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")  # as lesson 3
    ax1.set_xlabel("feature"), ax1.set_ylabel("t"), ax1.set_title("sinusoidal_embedding(t, 64)")
    fig.colorbar(im1, ax=ax1, label="value")
    im2 = ax2.imshow(unit @ unit.T, cmap="viridis")
    ax2.set_xlabel("t"), ax2.set_ylabel("t"), ax2.set_title("cosine similarity of embeddings")
    fig.colorbar(im2, ax=ax2, label="cosine similarity")
    fig.tight_layout()
    plt.show()


# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-07", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 2. The time-embedding module
#
# The UNet passes the sinusoidal features through an MLP (Linear, SiLU, Linear) so that it can learn which
# features matter: $\text{temb}(t) = \text{MLP}(\text{emb}(t))$. Write `forward` with your
# `sinusoidal_embedding` and `self.mlp`.

# %% nbgrader={"grade": false, "grade_id": "SinusoidalTimeEmbedding", "locked": false, "schema_version": 3, "solution": true, "task": false}
class SinusoidalTimeEmbedding(nn.Module):
    """t (B,) -> sinusoidal features (B, dim) -> Linear, SiLU, Linear -> (B, out_dim)."""

    def __init__(self, dim, out_dim):
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))

    def forward(self, t):
        ### BEGIN SOLUTION
        return self.mlp(sinusoidal_embedding(t, self.dim))
        ### END SOLUTION


# %% course={"check": "SinusoidalTimeEmbedding", "target": "SinusoidalTimeEmbedding"} deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_SinusoidalTimeEmbedding", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# NBVAL_CHECK_OUTPUT
check_SinusoidalTimeEmbedding(SinusoidalTimeEmbedding)
### BEGIN HIDDEN TESTS
assert run_check("SinusoidalTimeEmbedding", SinusoidalTimeEmbedding, hidden=True).passed, "hidden tests failed"
### END HIDDEN TESTS

# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-08", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 3. A residual block conditioned on time
#
# DDPM's ResBlock (Ho et al. 2020, Appendix B, after Wide ResNets) adds the projected time embedding to
# every channel after the first convolution:
#
# $$h = \text{conv}_1(\text{SiLU}(\text{GN}_1(x))) + W\,\text{SiLU}(\text{temb}), \qquad
# h = \text{conv}_2(\text{SiLU}(\text{GN}_2(h))), \qquad \text{out} = \text{skip}(x) + h$$
#
# `x` is (B, in_ch, H, W), `temb` is (B, temb_dim); `self.temb_proj(...)` is (B, out_ch): add
# `[:, :, None, None]` to broadcast it over H and W. `self.skip` is a 1x1 convolution when the channel
# count changes, else the identity. The output is (B, out_ch, H, W).

# %% nbgrader={"grade": false, "grade_id": "ResBlock", "locked": false, "schema_version": 3, "solution": true, "task": false}
class ResBlock(nn.Module):
    """x (B, in_ch, H, W), temb (B, temb_dim) -> (B, out_ch, H, W)."""

    def __init__(self, in_ch, out_ch, temb_dim, groups=8):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.temb_proj = nn.Linear(temb_dim, out_ch)
        self.norm2 = nn.GroupNorm(groups, out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x, temb):
        ### BEGIN SOLUTION
        h = self.conv1(F.silu(self.norm1(x)))                         # (B, out_ch, H, W)
        h = h + self.temb_proj(F.silu(temb))[:, :, None, None]        # time embedding, per channel
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h
        ### END SOLUTION


# %% course={"check": "ResBlock", "target": "ResBlock"} deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_ResBlock", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# NBVAL_CHECK_OUTPUT
check_ResBlock(ResBlock)
### BEGIN HIDDEN TESTS
assert run_check("ResBlock", ResBlock, hidden=True).passed, "hidden tests failed"
### END HIDDEN TESTS

# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-09", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ### Putting the pieces together
#
# A time embedding feeding a ResBlock: the same block gives different outputs at different steps.

# %%
# NBVAL_CHECK_OUTPUT
if (checks.ready("SinusoidalTimeEmbedding", SinusoidalTimeEmbedding, "this cell")
        and checks.ready("ResBlock", ResBlock, "this cell")):
    torch.manual_seed(0)
    time_embed, block = SinusoidalTimeEmbedding(32, 128), ResBlock(32, 64, 128)
    x = torch.randn(1, 32, 16, 16)
    outs = [block(x, time_embed(torch.tensor([t]))) for t in (0, 500)]
    print("output shape:", tuple(outs[0].shape))
    print("the outputs at t = 0 and t = 500 differ:", not torch.allclose(outs[0], outs[1]))


# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-unet", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 4. The UNet: down, bottleneck, up, with skip connections
#
# A UNet (Ronneberger et al. 2015; DDPM's network, Ho et al. 2020, Appendix B) encodes the image at lower and
# lower resolutions, then decodes it back up. At each resolution on the way up it also gets the features the
# way down computed at that resolution: the **skip connections**, which carry the fine detail the bottleneck has
# lost. `SmallUNet` has two levels. Its blocks are given in `__init__` (keep it: the check loads weights by these
# names); write `forward(x, t)`:
#
# - **Shapes.** `x` is (B, in_ch, H, W) with H and W divisible by 4, `t` is (B,); the output has the shape of `x`.
# - **Time.** Every ResBlock gets the same time embedding, `self.time_embed(t)` (B, temb_dim).
# - **Down.** `conv_in`, then `down1` at full resolution; `downsample1` halves H and W, then `down2`;
#   `downsample2` halves them again, then the bottleneck `mid` at a quarter of the resolution.
# - **Up.** Double the resolution (nearest-neighbour upsampling: `F.interpolate` with `scale_factor=2`), then
#   concatenate, along the channels, the upsampled features **first** and the output of the down block at that
#   resolution **second**, and apply the up block: `up2` at half resolution (with `down2`'s output), `up1` at full
#   resolution (with `down1`'s output).
# - **Head.** `norm_out`, SiLU, `conv_out`.
#
# The channel counts in `__init__` tell you what each block receives. The check builds your network with a fixed
# seed (8x8 images, 1 channel, ch = 8; the hidden tests add 4x12 images with 3 channels and 12x8 with ch = 16)
# and compares its output with the reference computed from the same weights. Your `ResBlock` and `SinusoidalTimeEmbedding` must pass their checks
# first.

# %% nbgrader={"grade": false, "grade_id": "SmallUNet", "locked": false, "schema_version": 3, "solution": true, "task": false}
class SmallUNet(nn.Module):
    """A two-level UNet: x (B, in_ch, H, W), H and W divisible by 4, and t (B,) -> eps_pred (B, in_ch, H, W)."""

    def __init__(self, in_ch=1, ch=16, temb_dim=64, groups=8):
        super().__init__()
        self.time_embed = SinusoidalTimeEmbedding(ch, temb_dim)
        self.conv_in = nn.Conv2d(in_ch, ch, 3, padding=1)
        self.down1 = ResBlock(ch, ch, temb_dim, groups)                       # H x W
        self.downsample1 = nn.Conv2d(ch, ch, 3, stride=2, padding=1)          # -> H/2 x W/2
        self.down2 = ResBlock(ch, 2 * ch, temb_dim, groups)                   # H/2 x W/2
        self.downsample2 = nn.Conv2d(2 * ch, 2 * ch, 3, stride=2, padding=1)  # -> H/4 x W/4
        self.mid = ResBlock(2 * ch, 2 * ch, temb_dim, groups)                 # the bottleneck, H/4 x W/4
        self.up2 = ResBlock(4 * ch, 2 * ch, temb_dim, groups)                 # H/2: 2ch upsampled + 2ch skip
        self.up1 = ResBlock(3 * ch, ch, temb_dim, groups)                     # H: 2ch upsampled + ch skip
        self.norm_out = nn.GroupNorm(groups, ch)
        self.conv_out = nn.Conv2d(ch, in_ch, 3, padding=1)

    def forward(self, x, t):
        ### BEGIN SOLUTION
        temb = self.time_embed(t)                                            # (B, temb_dim)
        h1 = self.down1(self.conv_in(x), temb)                               # (B, ch, H, W)
        h2 = self.down2(self.downsample1(h1), temb)                          # (B, 2ch, H/2, W/2)
        h = self.mid(self.downsample2(h2), temb)                             # (B, 2ch, H/4, W/4)
        h = F.interpolate(h, scale_factor=2, mode="nearest")                 # (B, 2ch, H/2, W/2)
        h = self.up2(torch.cat([h, h2], dim=1), temb)                        # skip from down2 -> (B, 2ch, H/2, W/2)
        h = F.interpolate(h, scale_factor=2, mode="nearest")                 # (B, 2ch, H, W)
        h = self.up1(torch.cat([h, h1], dim=1), temb)                        # skip from down1 -> (B, ch, H, W)
        return self.conv_out(F.silu(self.norm_out(h)))                       # (B, in_ch, H, W)
        ### END SOLUTION


# %% course={"check": "SmallUNet", "target": "SmallUNet"} deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_SmallUNet", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# NBVAL_CHECK_OUTPUT
check_SmallUNet(SmallUNet)
### BEGIN HIDDEN TESTS
assert run_check("SmallUNet", SmallUNet, hidden=True).passed, "hidden tests failed"
### END HIDDEN TESTS

# %%
# NBVAL_CHECK_OUTPUT
if checks.ready("SmallUNet", SmallUNet, "this cell"):
    torch.manual_seed(0)
    small = SmallUNet(in_ch=1, ch=16, temb_dim=64)
    eps_pred = small(torch.randn(4, 1, 28, 28), torch.tensor([0, 10, 500, 999]))
    print(f"SmallUNet(ch=16): {count_parameters(small):,} parameters; 28x28 images in, {tuple(eps_pred.shape)} out")

# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-11", "locked": true, "schema_version": 3, "solution": false, "task": false}
# The course's UNet (`course_utils.nets.UNet`) is the same design with more levels, a skip connection from every
# block of the way down (each ResBlock and each downsampling), two ResBlocks per level on the way up to take them,
# and self-attention at low resolution:

# %%
# NBVAL_CHECK_OUTPUT
unet = UNet(in_channels=1, base_channels=32, channel_mults=(1, 2, 2))
print(f"UNet(base_channels=32): {count_parameters(unet):,} parameters, "
      f"{sum(1 for m in unet.modules() if type(m).__name__ == 'ResBlock')} ResBlocks")

# %% [markdown] deletable=false editable=false nbgrader={"grade": false, "grade_id": "md-13", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## Next
#
# Worksheet 4 (`exercises/04_training.ipynb`): the loss and the training step.
