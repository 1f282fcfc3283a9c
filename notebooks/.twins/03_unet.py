# %% [markdown]
# # Lesson 3: The UNet noise predictor
#
# The network of a diffusion model, $\epsilon_\theta(x_t, t)$, takes a noisy image and its timestep and
# returns its guess of the noise, **an image of the same shape**. Its two inputs call for two ideas:
#
# - the timestep $t$ is a single number, and the network must behave very differently at $t = 10$
#   (remove a faint grain) and at $t = 900$ (invent a digit): a **time embedding** turns $t$ into a
#   vector that every block can use;
# - the output has the input's shape and must be precise to the pixel, yet it needs global context:
#   a **UNet** goes down to a coarse resolution and back up, with **skip connections** that carry the
#   fine detail across.
#
# In this lesson: the sinusoidal time embedding; the ResBlock that injects it; self-attention; the UNet
# with its skips, traced shape by shape; parameter counts; what is left of all this for 2-D points; and an
# explorer of what a *trained* UNet predicts for eight test digits as $t$ moves.
# All code is in `course_utils.nets`; here each part is written out once and compared with the package.

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
import os

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from course_utils.data import have, load_images_or_digits
from course_utils.device import get_device
from course_utils.nets import (AttentionBlock, MLPDenoiser, ResBlock, SinusoidalTimeEmbedding, UNet,
                               count_parameters, sinusoidal_embedding)
from course_utils.settings import pick, quick_mode, wrapped
from course_utils.viz import show_images

torch.manual_seed(0)
device = get_device()
BATCH = pick(16, 4)              # images per forward pass in the timing cell
print(f"device: {device}, quick mode: {quick_mode()}")


# %% [markdown]
# ## 1. The sinusoidal time embedding
#
# The Transformer's position encoding (Vaswani et al. 2017, Sec. 3.5), used for timesteps by DDPM (whose code
# divides by $d/2 - 1$ where Vaswani et al. divide by $d/2$, a negligible difference; we follow Vaswani and Improved
# DDPM): with
# $d$ dimensions and $d/2$ frequencies $\omega_i = 10000^{-i/(d/2)}$, $i = 0..d/2-1$,
# $$
# \mathrm{emb}(t) = \big[\sin(\omega_0 t), \dots, \sin(\omega_{d/2-1} t),\ \cos(\omega_0 t), \dots, \cos(\omega_{d/2-1} t)\big].
# $$
# The frequencies form a geometric series from 1 (period $2\pi$ steps) down to $10^{-4\,(d/2-1)/(d/2)}$, about $1.3\cdot10^{-4}$ for $d = 64$ (period
# $\approx 47{,}000$ steps). Like the bits of a binary counter, the fast dimensions tell neighbouring steps
# apart and the slow ones say roughly where in the chain we are. Every value stays in $[-1, 1]$, whatever
# $t$ is, which a network digests better than a raw $t$ of up to 1000.

# %%
def sinusoidal_inline(t, dim, max_period=10000.0):
    """(B,) timesteps -> (B, dim): [sin(t w_i), cos(t w_i)], w_i = max_period^(-i / (dim/2))."""
    half = dim // 2
    i = torch.arange(half, dtype=torch.float32)
    freqs = max_period ** (-i / half)                     # w_i, (half,)
    args = t.float()[:, None] * freqs[None, :]             # t w_i, (B, half)
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


T, dim = 1000, 64
t_all = torch.arange(T)
emb_inline = sinusoidal_inline(t_all, dim)                 # (1000, 64)
emb = sinusoidal_embedding(t_all, dim)                     # the package's version

# %%
# NBVAL_CHECK_OUTPUT
print("embedding shape:", tuple(emb.shape))
print("inline embedding equals course_utils.nets.sinusoidal_embedding:",
      torch.allclose(emb_inline, emb, atol=1e-4))

# %%
ZOOM = 60                                                  # the first 60 steps, one pixel row each or more
fig, axes = plt.subplots(1, 3, figsize=(14, 4.4), width_ratios=[1, 1, 1.1], layout="constrained")
for ax, rows, title in [(axes[0], emb, f"all of t = 0..{T - 1}: the fast columns, too fine to draw"),
                        (axes[1], emb[:ZOOM], f"zoom on t = 0..{ZOOM - 1}: the fast columns oscillate")]:
    im = ax.imshow(rows, aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1, interpolation="antialiased")
    ax.set_xlabel("dimension (0-31: sin, 32-63: cos)")
    ax.set_ylabel("timestep t"), ax.set_title(title, fontsize=10)
fig.colorbar(im, ax=axes[:2], label="value", fraction=0.04)

unit = F.normalize(emb, dim=1)                             # rows of unit length
for t_ref, colour in zip([100, 500, 900], ["C0", "C1", "k"]):       # orange and green look alike to many
    axes[2].plot(t_all, unit @ unit[t_ref], color=colour, label=f"t = {t_ref}")   # cosine similarity, every t'
axes[2].set_xlabel("timestep t'"), axes[2].set_ylabel("cosine similarity of emb(t) and emb(t')")
axes[2].set_title("how similar are emb(t) and emb(t')?", fontsize=10), axes[2].set_ylim(top=1.2)
axes[2].legend(fontsize=9, loc="upper center", ncol=3)                  # above the peaks, not on them
plt.show()

# %% [markdown]
# **What to notice.** Left: over all 1000 steps the first columns oscillate faster than a few hundred rows of
# pixels can show (muted stripes, or a moiré of bands where the figure is drawn smaller); the zoom (middle) shows
# them: periods of 6 to 15 steps in columns 0-3 (and 32-35, their cosines). Frequency falls to the right, and the
# last columns barely change over 1000 steps, so each row (one $t$) is a distinct pattern. Right: the similarity of $\mathrm{emb}(t)$
# with itself is 1, falls quickly over the first few dozen steps and then wanders between about 0 and 0.6 (the slow
# dimensions are shared by all $t$). No two timesteps get the same code, and nearby timesteps get similar
# codes: a good input for a network that should behave smoothly in $t$.
#
# In the UNet, the embedding goes through a small MLP, `Linear(d, 4d) -> SiLU -> Linear(4d, 4d)`
# (`SinusoidalTimeEmbedding`), so that the network can learn which features of $t$ it needs:

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
time_embed = SinusoidalTimeEmbedding(32, 128)
t = torch.tensor([0, 250, 999])                            # (B,) = (3,)
print("t:", tuple(t.shape), "-> sinusoidal:", tuple(sinusoidal_embedding(t, 32).shape),
      "-> MLP:", tuple(time_embed(t).shape))

# %% [markdown]
# ## 2. The ResBlock: where the time embedding enters
#
# The UNet is built of residual blocks (DDPM, Appendix B, after Wide ResNets). Each takes a feature map
# $x$ of shape $(B, C_\text{in}, H, W)$ and the time embedding $e$ of shape $(B, d_e)$:
# $$
# h = \mathrm{Conv}\big(\mathrm{SiLU}(\mathrm{GN}(x))\big) + W\,\mathrm{SiLU}(e), \qquad
# h = \mathrm{Conv}\big(\mathrm{Dropout}(\mathrm{SiLU}(\mathrm{GN}(h)))\big), \qquad
# \text{out} = \mathrm{skip}(x) + h .
# $$
# (DDPM trains with dropout 0.1 on CIFAR10; the course's `ResBlock` takes it as `dropout=`, 0 by default, so
# below it does nothing.) GN is GroupNorm (BatchNorm would mix examples at different $t$). The term $W\,\mathrm{SiLU}(e)$ is one
# number per channel, added at every pixel: the timestep **shifts each channel's activation**, which the
# layers that follow (the next GroupNorm removes the part of the shift that a group of channels shares, then the
# SiLU) turn into "use this feature at this noise level". The skip is a 1x1 convolution
# when the channel count changes, else the identity. Written out with the block's own layers:

# %%
torch.manual_seed(0)
block = ResBlock(16, 32, temb_dim=128)
x = torch.randn(2, 16, 14, 14)                             # (B, C_in, H, W)
temb = torch.randn(2, 128)                                 # (B, d_e)

h = block.conv1(F.silu(block.norm1(x)))                    # (B, 32, 14, 14)
h = h + block.temb_proj(F.silu(temb))[:, :, None, None]    # + one value per channel, broadcast over H, W
h = block.conv2(F.silu(block.norm2(h)))
out_inline = block.skip(x) + h

# %%
# NBVAL_CHECK_OUTPUT
out = block(x, temb)
print(f"ResBlock(16 -> 32): x {tuple(x.shape)}, temb {tuple(temb.shape)} -> {tuple(out.shape)}")
print("skip connection:", type(block.skip).__name__, "(a 1x1 conv, since the channels change)")
print("inline ResBlock equals course_utils.nets.ResBlock:", torch.allclose(out_inline, out, atol=1e-5))

# %% [markdown]
# ## 3. Self-attention
#
# Convolutions see a small neighbourhood; to relate distant parts of an image (the two ends of a "7"),
# the UNet adds **self-attention** at its coarsest levels. Every pixel position is a token with $C$
# features; after a GroupNorm, a 1x1 convolution makes queries, keys and values, and
# $$
# \mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\Big(\frac{QK^\top}{\sqrt{C}}\Big)V,
# \qquad \text{out} = x + \mathrm{proj}(\mathrm{Attention}(Q, K, V)) .
# $$
# $QK^\top$ has $(HW)^2$ entries: 614,656 per image at 28x28, only 2,401 at 7x7. That is why attention
# lives at low resolution. Written out and compared with `AttentionBlock`:

# %%
torch.manual_seed(0)
attn = AttentionBlock(32)
x = torch.randn(2, 32, 7, 7)                               # (B, C, H, W)
B, C, H, W = x.shape
qkv = attn.qkv(attn.norm(x)).reshape(B, 3, C, H * W)       # (B, 3, C, HW)
q, k, v = qkv.transpose(-1, -2).unbind(1)                  # each (B, HW, C): one token per position
weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(C), dim=-1)   # (B, HW, HW), rows sum to 1
h = weights @ v                                            # (B, HW, C)
out_inline = x + attn.proj(h.transpose(-1, -2).reshape(B, C, H, W))

# %%
# NBVAL_CHECK_OUTPUT
print(f"attention weights: {tuple(weights.shape)}; output {tuple(attn(x).shape)} (same as the input)")
print("inline attention equals course_utils.nets.AttentionBlock:", torch.allclose(out_inline, attn(x), atol=1e-5))

# %% [markdown]
# ## 4. The UNet, level by level
#
# `UNet(base_channels=32, channel_mults=(1, 2, 2), attention_levels=(2,))` for 28x28 MNIST:
#
# ```
# x_t (B,1,28,28) -- conv_in --> (B,32,28,28) ---------------------------------- skip ----+
#   down.0: ResBlock 32->32           @ 28x28  -- skip --+                                 |
#           Conv stride 2             -> 14x14 -- skip --|--+                              |
#   down.1: ResBlock 32->64           @ 14x14  -- skip --|--|--+                           |
#           Conv stride 2             ->  7x7  -- skip --|--|--|--+                        |
#   down.2: ResBlock 64->64 + Attn    @  7x7   -- skip --|--|--|--|--+                     |
#   mid:    ResBlock, Attn, ResBlock  @  7x7             |  |  |  |  |                     |
#   up.0:   2 x (concat skip, ResBlock + Attn) @ 7x7  <--|--|--|--+--+  then upsample -> 14x14
#   up.1:   2 x (concat skip, ResBlock)        @ 14x14 <-|--+--+        then upsample -> 28x28
#   up.2:   2 x (concat skip, ResBlock)        @ 28x28 <-+----------------------------------+
# norm_out, SiLU, conv_out --> eps_pred (B,1,28,28)
# ```
# Going down, each level halves the resolution and may widen the channels (here 32 -> 64 -> 64), so the network sees a
# wider context at each level. Going up, each ResBlock first **concatenates** the feature map saved at the
# same resolution on the way down (the skip), so the fine detail of $x_t$ never has to squeeze through the
# 7x7 bottleneck. Every ResBlock also receives the time embedding.
#
# Forward hooks let us watch the shapes: a hook registered on a module runs after its `forward` and sees
# its output. We print the output of every block of the UNet for a batch of two 28x28 images:

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
unet = UNet(in_channels=1, base_channels=32, channel_mults=(1, 2, 2), attention_levels=(2,)).to(device)
print(wrapped(f"config: {unet.config}"))
print(f"{'module':<10} {'type':<24} {'input':<18}    output")
hooks = []


def print_shape(name):
    def hook(module, inputs, output):
        print(f"{name:<10} {type(module).__name__:<24} {str(tuple(inputs[0].shape)):<18} -> {tuple(output.shape)}")
    return hook


for name, module in unet.named_modules():
    depth = name.count(".")
    if name in ("time_embed", "conv_in", "norm_out", "conv_out") or (depth == 2 and name.split(".")[0] in ("down", "up")) \
            or (depth == 1 and name.startswith("mid")):
        hooks.append(module.register_forward_hook(print_shape(name)))

xt = torch.randn(2, 1, 28, 28, device=device)              # (B, C, H, W)
t = torch.tensor([10, 900], device=device)                 # (B,)
with torch.no_grad():
    eps_pred = unet(xt, t)
for h in hooks:
    h.remove()
print("output", tuple(eps_pred.shape), "== input", tuple(xt.shape), ":", eps_pred.shape == xt.shape)

# %% [markdown]
# **Reading the trace.** `time_embed` turns $t$ into a $(2, 128)$ vector, used by every ResBlock. The down
# path goes 28 -> 14 -> 7 with 32, 64, 64 channels; the `Conv2d` entries are the stride-2 downsamplers. In
# the up path each ResBlock's *input* has more channels than its output because of the concatenated skip,
# for instance `up.0.0` takes $64 + 64 = 128$ channels and `up.2.1` takes $32 + 32$. The `_Upsample` layers double the resolution again
# (nearest-neighbour, then a 3x3 conv; it upsamples to the skip's exact size, so 7 -> 14 works for odd
# sizes too). The output has the input's shape, as a noise prediction must.
#
# What do the levels see? Here are a few channels of the feature maps of an (untrained, randomly
# initialised) UNet at each resolution, for a real digit. The weights are random, so the features mean
# nothing yet; the point is the resolution each level works at.

# %%
x_images, _, source = load_images_or_digits("mnist", split="test", limit=4, image_size=28)
digit = x_images[:1].to(device)                            # (1, 1, 28, 28) in [-1, 1]
feats = {}
names = {"conv_in": "conv_in", "down.0.0": "down.0.0", "down.1.0": "down.1.0", "down.2.1": "down.2 (attn)",
         "mid.2": "mid"}
modules = dict(unet.named_modules())
hooks = [modules[n].register_forward_hook(lambda m, i, o, n=n: feats.__setitem__(n, o.detach()))
         for n in names]
with torch.no_grad():
    unet(digit, torch.tensor([0], device=device))
for h in hooks:
    h.remove()

fig, axes = plt.subplots(1, len(names) + 1, figsize=(2.3 * (len(names) + 1), 2.8))
show_images(digit, ax=axes[0], title=f"input x ({source})")
for ax, (n, label) in zip(axes[1:], names.items()):
    f = feats[n][0, :4]                                    # four channels, (4, h, w)
    f = f / f.abs().amax(dim=(1, 2), keepdim=True).clamp(min=1e-6)   # feature maps are not images: scale to [-1, 1]
    show_images(f[:, None], nrow=2, ax=ax, title=f"{label}\n{tuple(feats[n].shape[1:])}")
fig.suptitle("4 channels of the feature maps at each level (random weights; each channel scaled to [-1, 1])",
             y=1.02)
fig.tight_layout()
plt.show()

# %% [markdown]
# (Feature maps are not images in $[-1, 1]$, so here, and only here, each channel is divided by its
# largest absolute value before display.) The 28x28 maps still look like the digit; at 7x7 each "pixel"
# summarises a patch of the input, and the attention layers mix all 49 positions.
#
# ## 5. Parameter counts
#
# `count_parameters` sums the trainable parameters. Width (`base_channels`) costs quadratically, since
# each convolution has $C_\text{in} \times C_\text{out} \times 9$ weights; depth and extra levels cost
# linearly:

# %%
# NBVAL_CHECK_OUTPUT
configs = {
    "base 16, mults (1, 2), no attention": dict(base_channels=16, channel_mults=(1, 2), attention_levels=()),
    "base 32, mults (1, 2, 2), attention at 7x7": dict(base_channels=32, channel_mults=(1, 2, 2),
                                                       attention_levels=(2,)),
    "base 32, mults (1, 2, 2), attention at every level": dict(base_channels=32, channel_mults=(1, 2, 2),
                                                               attention_levels=(0, 1, 2)),
    "base 64, mults (1, 2, 2), attention at 7x7": dict(base_channels=64, channel_mults=(1, 2, 2),
                                                       attention_levels=(2,)),
    "base 64, mults (1, 2, 2), 2 ResBlocks per level": dict(base_channels=64, channel_mults=(1, 2, 2),
                                                            attention_levels=(2,), num_res_blocks=2),
}
for label, cfg in configs.items():
    print(f"{label:<52} {count_parameters(UNet(**cfg)):>10,}")

print()
print("where the parameters of the base-32 UNet above are:")
for part in ["time_embed", "conv_in", "down", "mid", "up", "norm_out", "conv_out"]:
    print(f"  {part:<10} {count_parameters(getattr(unet, part)):>8,}")

# %% [markdown]
# **What to notice.** Doubling the base width from 32 to 64 multiplies the count by almost 4. Attention
# at every level adds few parameters (a 1x1 conv is cheap) but a lot of compute at 28x28, because of the
# $(HW)^2$ attention matrix. The up path holds more parameters than the down path: it has one more
# ResBlock per level and its inputs are widened by the skips.
#
# How long one forward pass takes on the machine that runs this cell. The number depends on your hardware
# and on what else it is doing (the cell prints the load average: above the number of cores, other jobs
# share the processor and the figure is slower than your machine can do). Run it yourself; a number
# stored in this notebook only says what the last machine to run it measured.

# %%
import time

x_batch = torch.randn(BATCH, 1, 28, 28, device=device)
t_batch = torch.randint(0, 1000, (BATCH,), device=device)
times = []
with torch.no_grad():
    unet(x_batch, t_batch)                                 # warm-up
    for _ in range(5):
        start = time.perf_counter()
        unet(x_batch, t_batch)
        times.append(time.perf_counter() - start)
elapsed = sorted(times)[len(times) // 2]                   # the median of 5 passes
load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
print(f"base-32 UNet, batch {BATCH} of 28x28 on {device}: {1000 * elapsed:.0f} ms per forward pass "
      f"({1000 * elapsed / BATCH:.1f} ms per image; median of 5)")
print(f"load average {load:.1f} on {os.cpu_count()} cores")

# %% [markdown]
# ## 6. For 2-D points: an MLP denoiser
#
# For the toy data of lesson 2, $x_t \in \mathbb R^2$. There is no spatial structure, so the convolutions,
# resolutions and skips all disappear. What stays is the core contract, $(x_t, t) \mapsto \epsilon_\theta(x_t, t)$ of the
# same shape as $x_t$, and the time embedding. `MLPDenoiser` **concatenates** the embedding to the point
# (with only 2 input numbers, adding a per-channel bias would leave the network little to work with) and
# runs a plain MLP:
# $$
# \epsilon_\theta(x_t, t) = \mathrm{MLP}\big([\,x_t,\ \mathrm{emb}(t)\,]\big) \in \mathbb R^2 .
# $$

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
mlp = MLPDenoiser(data_dim=2, hidden_dim=128, time_embed_dim=64, num_layers=3).to(device)
print(wrapped(f"config: {mlp.config}"))
hooks = [mlp.time_embed.register_forward_hook(print_shape("time_embed"))]
hooks += [m.register_forward_hook(print_shape(f"net.{i}")) for i, m in enumerate(mlp.net) if isinstance(m, torch.nn.Linear)]
with torch.no_grad():
    out = mlp(torch.randn(5, 2, device=device), torch.tensor([0, 10, 100, 500, 999], device=device))
for h in hooks:
    h.remove()
print("output", tuple(out.shape))
print(f"MLPDenoiser: {count_parameters(mlp):,} parameters, "
      f"{count_parameters(unet) / count_parameters(mlp):.0f} times fewer than the base-32 UNet")

# %% [markdown]
# The first linear layer sees $2 + 64 = 66$ numbers: the point and its timestep's embedding. Two thirds
# of the MLP's 50,178 parameters sit in its two 128x128 hidden layers; it trains in seconds (lesson 4).
#
# ## 7. Explore: what a trained UNet predicts
#
# Everything above used random weights. Here is the same architecture after training (lesson 4 shows how):
# the course's pretrained MNIST model. Give it a test digit noised to $x_t$ with a known $\epsilon$, and
# compare its prediction $\epsilon_\theta(x_t, t)$ with the true $\epsilon$, and the clean image that the
# prediction implies, $\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\epsilon_\theta)/\sqrt{\bar\alpha_t}$ (lesson 2's
# formula solved for $x_0$), with the digit. First one digit at seven timesteps, then a slider over $t$ for
# eight digits (`course_utils.widgets.prediction_explorer`).

# %%
from course_utils.checkpoints import load_pretrained
from course_utils.forward import q_sample
from course_utils.widgets import prediction_explorer
from IPython.display import display

trained_name, trained_unet, trained_schedule, trained_card = load_pretrained("mnist-unet", "digits-unet-cond", device=device)
x_digits, _, digits_source = load_images_or_digits(trained_card["dataset"]["name"], split="test",
                                                   image_size=trained_card["image_shape"][-1], limit=8)
x_digits = x_digits.to(device)
real_digits = have(trained_card["dataset"]["name"], digits_source,   # the model on the data it was trained on
                   cell="runs the pretrained MNIST model on real MNIST test digits")
if real_digits:
    show_ts = [10, 100, 300, 500, 700, 900, 990]
    x0_one = x_digits[:1].expand(len(show_ts), -1, -1, -1)                # one digit, repeated (7, 1, H, W)
    eps_one = torch.randn(x0_one.shape, generator=torch.Generator().manual_seed(0)).to(device)
    t_one = torch.tensor(show_ts, device=device)
    xt_one = q_sample(x0_one, t_one, eps_one, trained_schedule.to(device))
    with torch.no_grad():
        eps_pred_one = trained_unet(xt_one, t_one)
    sqrt_ab = trained_schedule.sqrt_alpha_bar.to(device)[t_one][:, None, None, None]
    sqrt_1m_ab = trained_schedule.sqrt_one_minus_alpha_bar.to(device)[t_one][:, None, None, None]
    x0_pred_one = (xt_one - sqrt_1m_ab * eps_pred_one) / sqrt_ab

    fig, axes = plt.subplots(4, 1, figsize=(8, 5.9))
    for ax, (label, images) in zip(axes, [("x_t", xt_one),
                                          ("true eps (shown / 3)", eps_one / 3), ("eps_pred (shown / 3)", eps_pred_one / 3),
                                          ("x0_pred (clipped to [-1, 1])", x0_pred_one)]):
        show_images(images, nrow=len(show_ts), ax=ax, title=label,          # each column one t, named below
                    col_labels=[f"t = {t}" for t in show_ts] if ax is axes[-1] else None)
    fig.suptitle(f"{trained_name}, one {digits_source} test digit")
    fig.tight_layout()
    plt.show()
    for t_value, e, x in zip(show_ts, ((eps_pred_one - eps_one) ** 2).mean((1, 2, 3)), ((x0_pred_one - x0_one) ** 2).mean((1, 2, 3))):
        print(f"t = {t_value:>3}: MSE(eps_pred) = {e.item():.3f}, MSE(x0_pred) = {x.item():.3f}")

# %% [markdown]
# **What to notice.** Row by row, the predicted noise looks just like the true noise at every $t$; the
# printed errors tell them apart, and they run in opposite directions. At large $t$ (700-990), $x_t$ is
# almost all noise, so predicting the noise is easy (the error of `eps_pred` is near 0), yet the implied
# $\hat x_0$ is no longer this 7: a blurry average digit at $t = 700$, a shapeless blob at 900 and 990: a tiny error in $\epsilon_\theta$ is divided by
# $\sqrt{\bar\alpha_t}$, which is small there, and the network can only guess an average digit. At small $t$ it is
# the reverse: the faint noise is hard to tell from the digit's own texture (the largest error of
# `eps_pred`, at $t = 10$), but $\hat x_0$ is almost exact, because that error is scaled down by
# $\sqrt{1-\bar\alpha_t}/\sqrt{\bar\alpha_t}$. In between ($t$ = 300-500) $\hat x_0$ is still a plausible digit, but not always the
# one that was noised, and which one depends on the noise drawn as well as on $t$: above, at $t = 500$, the 7
# comes back as a 7 from an image in which you can barely see it; the explorer below draws its own $\epsilon$
# for eight test digits, and in its first view ($t = 500$) half of them come back as a different digit, this
# same 7 as a 9.
# Move the slider: where does $\hat x_0$ stop being *your* digit, and where does it stop being a digit at all?

# %%
if real_digits:         # inside an `if`, a returned widget is not shown by itself: display() it
    display(prediction_explorer(trained_unet, trained_schedule, x_digits, device=device))

# %% [markdown]
# ## Summary
#
# - The timestep enters as a sinusoidal embedding (multi-frequency, bounded, smooth in $t$), refined by
#   an MLP, and added as a per-channel shift inside every ResBlock.
# - The UNet goes down in resolution for context and back up for precision; skip connections carry the
#   detail across; attention is used only at low resolution, where $(HW)^2$ is affordable.
# - Output shape = input shape, whatever the architecture: for images a UNet, for points an MLP.
#
# **Next:** lesson 4 ([`04_training.ipynb`](04_training.ipynb)) trains these networks.
#
# **Exercises:** open the worksheet [`exercises/03_unet.ipynb`](../exercises/03_unet.ipynb).
