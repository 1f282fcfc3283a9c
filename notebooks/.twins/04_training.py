# %% [markdown]
# # Lesson 4: Training a diffusion model
#
# Lessons 1-3 built the pieces: a noise schedule, the forward process $q(x_t \mid x_0)$ and a UNet
# $\epsilon_\theta(x_t, t)$. This lesson puts them together and **trains** a noise predictor.
#
# 1. The *simple loss* of DDPM (Ho et al. 2020, Algorithm 1), written out line by line and checked
#    against `course_utils.training.diffusion_loss`.
# 2. A 2-D toy model that trains in seconds; we watch its samples form during training.
# 3. A small image model (a base-32 UNet on scikit-learn's digits at 16x16) with the tricks that make
#    diffusion training work in practice: EMA of the weights (with a warm-up), gradient clipping,
#    mixed precision, a progress bar and a live loss plot.
# 4. Checkpoints: train half-way, stop, resume in a fresh model, and see that the run simply continues.
# 5. A pretrained checkpoint of the same UNet on the same data, to compare with your few-minute model.
#
# **Time.** The whole lesson takes about 12 minutes on a 2-core laptop CPU (the image model is about 11
# minutes of it in float32, about 4 to 7 where the processor computes bfloat16 natively; measured times are in the
# start page's table), much less on a GPU; some recent CPUs train
# about twice as fast (`docs/performance.md` says which and why). With `COURSE_QUICK=1` every training run is
# shortened so that the notebook runs in about a minute; the image model's samples are then still noise and the toy model's still clouds, which is expected.

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
import dataclasses
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import ipywidgets as widgets
from IPython.display import display

from course_utils.checkpoints import load_pretrained
from course_utils.data import load_images, make_toy
from course_utils.device import get_device
from course_utils.nets import MLPDenoiser, UNet, count_parameters
from course_utils.samplers import ddim_sample
from course_utils.schedules import NoiseSchedule
from course_utils.settings import pick, quick_mode, say_if_quick
from course_utils.training import TrainConfig, autocast_dtype, diffusion_loss, train
from course_utils.viz import label_log_axis, plot_loss, plot_points, show_images

torch.manual_seed(0)
device = get_device()
TOY_STEPS = pick(3000, 400)      # optimizer steps of the 2-D model
IMAGE_STEPS = pick(1200, 40)     # optimizer steps of the image model (two halves of IMAGE_STEPS // 2)
print(f"device: {device}, quick mode: {quick_mode()}, toy steps: {TOY_STEPS}, image steps: {IMAGE_STEPS}")
say_if_quick()

# %% [markdown]
# ## 1. The simple loss (Algorithm 1)
#
# Training a DDPM repeats four lines (Ho et al. 2020, Algorithm 1):
#
# 1. take a clean example $x_0 \sim q(x_0)$;
# 2. pick a timestep $t \sim \mathrm{Uniform}(\{1, \dots, T\})$;
# 3. draw noise $\epsilon \sim \mathcal N(0, I)$;
# 4. take a gradient step on
# $$
# L_\text{simple}(\theta) = \big\| \epsilon - \epsilon_\theta\big(\underbrace{\sqrt{\bar\alpha_t}\, x_0 + \sqrt{1 - \bar\alpha_t}\, \epsilon}_{x_t},\; t\big) \big\|^2 .
# $$
#
# The network sees a noisy $x_t$ and must say which noise was added. Nothing runs through the chain
# $x_{t-1} \to x_t$: the closed form of lesson 2 jumps straight to any $t$, so every training example
# costs one forward and one backward pass. In the code, $t$ runs over $0, \dots, T-1$ (code index $t$ is
# the paper's $t+1$, see GLOSSARY.md).
#
# Here it is written out, one line per step, and compared with the package's `diffusion_loss`, which the
# training loop uses. Both draw $t$ and $\epsilon$ from the same seeded generator, in the same order.

# %%
schedule = NoiseSchedule.linear(T=1000).to(device)


def simple_loss(model, schedule, x0, generator):
    """L_simple on one batch x0 (B, ...), written out."""
    B = x0.shape[0]
    t = torch.randint(0, schedule.T, (B,), device=x0.device, generator=generator)  # t ~ U{0..T-1}, (B,)
    eps = torch.randn(x0.shape, device=x0.device, generator=generator)               # eps ~ N(0, I)
    ones = (1,) * (x0.ndim - 1)                                                       # broadcast over (C, H, W)
    sqrt_alpha_bar = schedule.sqrt_alpha_bar[t].reshape(B, *ones)                     # sqrt(alpha_bar_t)
    sqrt_one_minus_alpha_bar = schedule.sqrt_one_minus_alpha_bar[t].reshape(B, *ones) # sqrt(1 - alpha_bar_t)
    xt = sqrt_alpha_bar * x0 + sqrt_one_minus_alpha_bar * eps                        # x_t ~ q(x_t | x_0)
    eps_pred = model(xt, t)                                                           # eps_theta(x_t, t)
    return ((eps - eps_pred) ** 2).mean()                                             # || eps - eps_theta ||^2


x_digits, y_digits = load_images("digits", image_size=16)       # (1500, 1, 16, 16) in [-1, 1]
tiny = UNet(base_channels=8, channel_mults=(1, 2), attention_levels=()).to(device)
x0 = x_digits[:16].to(device)
ours = simple_loss(tiny, schedule, x0, torch.Generator(device=device).manual_seed(123))
package = diffusion_loss(tiny, schedule, x0, generator=torch.Generator(device=device).manual_seed(123))
print(f"L_simple of an untrained network: {ours.item():.3f} (ours), {package.item():.3f} (diffusion_loss)")

# %%
# NBVAL_CHECK_OUTPUT
print("inline L_simple equals course_utils.training.diffusion_loss:", torch.allclose(ours, package))

# %% [markdown]
# **What to notice.** An untrained network's loss is close to 1: its output is near 0, and the target
# $\epsilon$ has unit variance in every pixel, so $\mathbb E\|\epsilon - 0\|^2 / D = 1$ ($D$ the number of pixels). A network that
# predicted the noise perfectly would reach 0, but it cannot: at small $t$ the added noise is tiny and hard
# to tell from the image's own texture, so part of it is unpredictable (at large $t$, by contrast, $x_t$ is
# almost pure noise and $\epsilon \approx x_t$ is easy to predict). The loss falls quickly, to a few
# hundredths on these digits (the pretrained model of section 5 ended its training at 0.023, its model card's
# `final_loss`), and then crawls; a
# diffusion loss curve never "converges to zero".
#
# ## 2. A 2-D toy model that trains in seconds
#
# Before images, the same loss on points in the plane. The data are 8 Gaussian blobs on a circle
# (`make_toy("8gaussians")`), the network is a small MLP, `MLPDenoiser`, that takes $(x_t, t)$ and returns
# $\epsilon_\theta(x_t, t) \in \mathbb R^2$. The training loop is `course_utils.training.train`:
# it draws random batches, computes exactly the loss above, and takes AdamW steps. Its `callback` runs
# every `log_every` steps; we use it to draw samples from the model at a few moments of training.
#
# Samples are drawn with `ddim_sample` in 100 steps, a fast sampler that lesson 5 derives: start from
# $x_T \sim \mathcal N(0, I)$ and denoise step by step with the network. We always sample from the same
# starting noise, so the panels differ only by the network's weights.

# %%
x_toy, _ = make_toy("8gaussians", n=8000)                    # (8000, 2)
toy_config = TrainConfig(steps=TOY_STEPS, batch_size=512, lr=2e-3, ema_decay=0.999, log_every=10)
print(toy_config)

torch.manual_seed(0)
toy_model = MLPDenoiser(hidden_dim=256).to(device)
print(f"MLPDenoiser: {count_parameters(toy_model):,} parameters")

x_T_toy = torch.randn(1000, 2, generator=torch.Generator().manual_seed(1)).to(device)   # fixed starting noise
snapshot_steps = sorted({max(10, round(f * TOY_STEPS / 10) * 10) for f in (0.02, 0.05, 0.1, 0.25, 0.5, 1.0)})
snapshots = {0: ddim_sample(toy_model, schedule, (1000, 2), x_T=x_T_toy, num_steps=100, progress=False).cpu()}


def take_snapshot(state):
    """train's callback: sample from the EMA weights at the chosen steps."""
    if state.step in snapshot_steps:
        snapshots[state.step] = ddim_sample(state.ema_model, schedule, (1000, 2), x_T=x_T_toy,
                                            num_steps=100, progress=False).cpu()


start = time.perf_counter()
toy_state = train(toy_model, schedule, x_toy, toy_config, device=device, callback=take_snapshot)
print(f"{TOY_STEPS} steps in {time.perf_counter() - start:.1f} s (with {len(snapshots)} snapshots of 1000 samples)")

# %%
def panel_lim(points):
    """Axis half-width that shows every point: 3 (the data's scale) unless some points lie further out."""
    return max(3.0, 1.1 * points.abs().max().item())


columns = -(-(len(snapshots) + 1) // 2)                               # two rows: legible on a laptop
fig, axes = plt.subplots(2, columns, figsize=(2.5 * columns, 5.4))
axes = axes.ravel()
for ax in axes[len(snapshots) + 1:]:
    ax.set_axis_off()
plot_points(x_toy[:1000], ax=axes[0], title="training data", c="tab:green")
for ax, (step, points) in zip(axes[1:], snapshots.items()):
    lim = panel_lim(points)
    plot_points(points, ax=ax, lim=lim, title=f"after {step} steps" + (f"\n(axes to ±{lim:.0f})" if lim > 3 else ""))
fig.suptitle("Samples of the 2-D model during training (same starting noise x_T in every panel)")
fig.tight_layout()
plt.show()
untrained = snapshots[0].norm(dim=1).median().item()
print(f"untrained model: median distance of its samples from the centre {untrained:.0f} "
      f"({untrained / x_toy.norm(dim=1).median().item():.0f} times the data's 1.5)")


# %% [markdown]
# **What to notice.** Untrained, the network predicts almost no noise ($\epsilon_\theta \approx 0$), so
# the sampler takes the starting noise for a faint image: its first guess of the clean point, at the 100-step
# grid's first timestep $t = 990$ (lesson 5 explains the grid), is $\hat x_0 = x_T / \sqrt{\bar\alpha_{990}}$, the noise
# scaled up by $1/\sqrt{\bar\alpha_{990}} \approx 144$; with $\epsilon_\theta \approx 0$ every later step keeps that guess, and the
# samples land two orders of magnitude too far out: the line under the figure prints their median distance from
# the centre, about a hundred times the data's, and the panels up to 150 steps have their own, wider axes, given
# in their titles (±616 after 0 steps). In full mode (3,000 steps) the early snapshots, after 60 to 300 steps, are
# still a round cloud about the size of the starting noise; by step 750 a wide ring has formed
# (radius about 1.9 against the data's 1.5, with points still inside it), by step 1,500 the ring has the right
# radius and the eight blobs sit on it, and step 3,000 looks much like step 1,500, the blobs a little sharper. Coarse structure is learned first, fine detail last: the large-$t$ part of the
# loss (where the network only needs to know the overall shape) is easy, the small-$t$ part (the exact
# width of each blob) is slow. (Quick mode stops at 400 steps: all its panels are still clouds.)
#
# Move the slider to step through the snapshots, with the loss curve up to that step.

# %%
def show_snapshot(index=len(snapshots) - 1):
    step = list(snapshots)[index]
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(8, 3.3))
    plot_points(snapshots[step], ax=ax0, lim=panel_lim(snapshots[step]), title=f"samples after {step} steps")
    plot_loss([h for h in toy_state.history if h[0] <= max(step, 10)], ax=ax1, title="loss up to this step")
    ax1.set_xlim(0, TOY_STEPS)
    fig.tight_layout()
    plt.show()


_ = widgets.interact(show_snapshot, index=widgets.IntSlider(value=len(snapshots) - 1, min=0,
                                                            max=len(snapshots) - 1, description="snapshot"))

# %% [markdown]
# ## 3. A small image model, with the tricks that matter
#
# Now the real thing: a UNet on images. To keep it to a few minutes on a CPU we use scikit-learn's
# handwritten digits (8x8, bundled with scikit-learn, no download; the first 1,500 of its 1,797 form the
# training split), upsampled to 16x16, and the
# UNet of lesson 3 with 32 base channels. Four practical details, all switched on through `TrainConfig`:
#
# * **EMA of the weights.** The loss is noisy (a new $t$ and $\epsilon$ every step), so the live weights
#   jitter. We sample from an exponential moving average
#   $\theta_\text{EMA} \leftarrow d\,\theta_\text{EMA} + (1-d)\,\theta$.
#   With the usual $d = 0.9999$ and a short run the average would still be mostly the *random initial
#   weights* ($0.9999^{1000} \approx 0.90$): the samples would be noise. So the decay warms up,
#   $d_\text{step} = \min\big(d, \frac{1 + \text{step}}{10 + \text{step}}\big)$ (as in diffusers),
#   and we use $d = 0.999$. The warm-up reaches 0.999 only at step 8,990 ($\frac{8991}{9000}$), so in the 1,200
#   steps below it alone sets the decay (0.9926 at the last step). If you ever see noise from the EMA model but
#   digits from the live one, this is why.
# * **Gradient clipping** at norm 1: a rare batch of mostly-tiny $t$ can give a huge gradient;
#   clipping keeps one bad step from undoing the run.
# * **Mixed precision**, `mixed_precision="auto"`: the forward and backward passes run in the 16-bit
#   format bfloat16 (`torch.autocast`) where the processor computes it fast, about twice as fast as
#   float32; the weights and the loss stay float32. Many laptop CPUs have no fast bfloat16, and there
#   "auto" keeps float32 (the cell below prints what it chose; `docs/performance.md` explains which
#   processors have it). On a GPU without bfloat16 it picks float16 with a gradient scaler.
# * **A progress bar and a live loss plot**: `train` shows a tqdm bar; its `callback` redraws a figure.
#
# The cell below trains for `IMAGE_STEPS // 2` steps and writes a checkpoint; section 4 resumes it.
# This is about 11 minutes on a 2-core CPU for both halves together in float32 (10.9 minutes on a processor
# without fast bfloat16), 4 to 7 in bfloat16 on one with it (3.9 on an Intel Xeon with AMX; 4.6 to 7.1 on an AMD
# EPYC, 4.7 in the stored run below), and the cell prints the measured time per step on your machine.

# %%
x_train = x_digits                                            # (1500, 1, 16, 16), in [-1, 1]
print(f"training images: {tuple(x_train.shape)}, range [{x_train.min():.0f}, {x_train.max():.0f}]")
show_images(x_train[:32], nrow=16, title="training data: scikit-learn digits at 16x16")
plt.show()


def make_unet():
    return UNet(in_channels=1, base_channels=32, channel_mults=(1, 2, 2), attention_levels=(2,))


image_config = TrainConfig(steps=IMAGE_STEPS // 2, batch_size=128, lr=2e-4, grad_clip=1.0, ema_decay=0.999,
                           mixed_precision="auto", log_every=pick(20, 5))
print(image_config)
print(f"autocast dtype on {device}: {autocast_dtype(image_config.mixed_precision, device)}")
print(f"UNet: {count_parameters(make_unet()):,} parameters")


# %%
def live_loss_plot(total_steps, title, resumed_at=None):
    """A train callback that redraws the loss history in place (one figure, updated every log_every steps)."""
    fig, ax = plt.subplots(figsize=(6, 3))
    handle = display(fig, display_id=True)

    def redraw(state):
        ax.clear()
        plot_loss(state.history, ax=ax, title=f"{title}: step {state.step}/{total_steps}")
        ax.set_xlim(0, total_steps)
        if resumed_at is not None:
            ax.axvline(resumed_at, color="tab:red", linestyle="--", label="resumed from checkpoint")
            ax.legend()
        fig.tight_layout()
        handle.update(fig)

    return fig, redraw


checkpoint_path = Path(tempfile.gettempdir()) / "diffusion_course" / "lesson04_digits_unet.pt"
if checkpoint_path.exists():
    checkpoint_path.unlink()     # start from scratch each time the lesson runs (else train would resume)

torch.manual_seed(0)
model = make_unet()
fig, redraw = live_loss_plot(IMAGE_STEPS, "training loss (first half)")
first = train(model, schedule, x_train, image_config, device=device, checkpoint_path=checkpoint_path,
              callback=redraw)
plt.close(fig)
seconds_per_step = first.seconds / first.step
print(f"{first.step} steps in {first.seconds:.0f} s ({seconds_per_step * 1000:.0f} ms per step); "
      f"checkpoint: {checkpoint_path.name}, {checkpoint_path.stat().st_size / 1e6:.1f} MB")
print(f"the full {IMAGE_STEPS} steps take about {IMAGE_STEPS * seconds_per_step / 60:.1f} minutes here")

# %% [markdown]
# ## 4. Checkpoints and resuming
#
# A checkpoint holds everything needed to continue *as if nothing had happened*: the model, the EMA copy,
# the optimizer's moment estimates, the step, the loss history, and the states of the random generators
# (which batches, timesteps and noise come next). `train` writes it atomically (to a temporary file, then
# a rename), so a crash while saving never leaves a broken file.
#
# To resume, call `train` again with the same `checkpoint_path` and a larger `steps`. Below we do it the
# hard way: a brand-new, randomly initialised model object, as after a kernel restart.

# %%
saved = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
print("the checkpoint holds:", ", ".join(saved))
print(f"saved at step {saved['step']}, last logged loss {saved['history'][-1][1]:.4f}")

torch.manual_seed(1234)          # a different seed: the weights must come from the checkpoint, not from here
resumed_model = make_unet()
fig, redraw = live_loss_plot(IMAGE_STEPS, "training loss (resumed)", resumed_at=first.step)
second = train(resumed_model, schedule, x_train, dataclasses.replace(image_config, steps=IMAGE_STEPS),
               device=device, checkpoint_path=checkpoint_path, callback=redraw)
plt.close(fig)
print(f"resumed at step {first.step}, now at step {second.step}; total training time {second.seconds:.0f} s")

# %%
# NBVAL_CHECK_OUTPUT
print("the history continues the first half's:", second.history[:len(first.history)] == first.history)
print("the resumed run went on from the checkpoint's step:", second.history[len(first.history)][0] > first.step)

# %%
steps, losses = zip(*second.history)
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(steps[:len(first.history)], losses[:len(first.history)], label="first half")
ax.plot(steps[len(first.history) - 1:], losses[len(first.history) - 1:], label="after resuming")
ax.axvline(first.step, color="tab:red", linestyle="--", linewidth=1)
ax.set(xlabel="step", ylabel="loss (mean over log_every steps)", yscale="log", title="one run, in two sittings")
label_log_axis(ax, "y")                                               # plain numbers, as plot_loss writes them
ax.legend()
plt.show()

# %% [markdown]
# No jump at the red line: the resumed run continues the same curve. How exact is "as if nothing had happened"? On a small 2-D model it is cheap to check: train 100 steps in
# one go, and 50 + 50 steps with a checkpoint in between. The weights agree bit for bit, because the
# resumed run draws the same batches, timesteps and noise.

# %%
# NBVAL_CHECK_OUTPUT
small = dataclasses.replace(toy_config, steps=100, batch_size=128)
torch.manual_seed(0)
straight = train(MLPDenoiser(hidden_dim=64), schedule, x_toy, small, device=device, progress=False)
toy_checkpoint = checkpoint_path.with_name("lesson04_toy.pt")
if toy_checkpoint.exists():
    toy_checkpoint.unlink()
torch.manual_seed(0)
train(MLPDenoiser(hidden_dim=64), schedule, x_toy, dataclasses.replace(small, steps=50), device=device,
      checkpoint_path=toy_checkpoint, progress=False)
in_two = train(MLPDenoiser(hidden_dim=64), schedule, x_toy, small, device=device,
               checkpoint_path=toy_checkpoint, progress=False)
same = all(torch.equal(a, b) for a, b in zip(straight.model.parameters(), in_two.model.parameters()))
print("100 steps in one go == 50 + 50 steps resumed:", same)

# %% [markdown]
# ## 5. Looking at the samples: live weights, EMA weights, and a pretrained model
#
# We draw 64 digits with DDIM (`ddim_sample`, lesson 5; 50 steps, 20 in quick mode), from the *same* starting noise
# $x_T$ for every model, so differences come from the weights alone. First the live weights against the
# EMA weights of your model.

# %%
x_T = torch.randn(64, 1, 16, 16, generator=torch.Generator().manual_seed(7)).to(device)
SAMPLE_STEPS = pick(50, 20)
samples_live = ddim_sample(second.model, schedule, x_T.shape, x_T=x_T, num_steps=SAMPLE_STEPS, progress=True)
samples_ema = ddim_sample(second.ema_model, schedule, x_T.shape, x_T=x_T, num_steps=SAMPLE_STEPS, progress=True)

fig, axes = plt.subplots(1, 2, figsize=(12, 6.4))
show_images(samples_live, ax=axes[0], title=f"your model, live weights ({second.step} steps)")
show_images(samples_ema, ax=axes[1], title=f"your model, EMA weights ({second.step} steps)")
plt.show()

# %% [markdown]
# Now a model from `course_utils.checkpoints`, trained by the course with the same UNet on the same data
# (`digits-unet-cond`, a class-conditional UNet; asked for no class, it samples from all ten, the way
# lesson 6 explains). Your few-minute model is on the left.

# %%
name, pretrained_model, pretrained_schedule, card = load_pretrained("digits-unet-cond", device=device)
print(f"{name}: {card['steps']} steps of batch {card['batch_size']}, "
      f"{card['wall_time_s'] / 60:.0f} minutes of training on {card['dataset']['name']}")
samples_pretrained = ddim_sample(pretrained_model, pretrained_schedule, x_T.shape, x_T=x_T,
                                 num_steps=SAMPLE_STEPS, progress=False)
fig, axes = plt.subplots(1, 2, figsize=(12, 6.4))
show_images(samples_ema, ax=axes[0], title=f"your model (EMA, {second.step} steps, {second.seconds / 60:.1f} min)")
show_images(samples_pretrained, ax=axes[1], title=f"pretrained {name}")
plt.show()

# %% [markdown]
# **What to notice.** In full mode your EMA model draws digit-like shapes, many of them readable, while
# about one tile in six is still noise; the pretrained model draws the same kind of soft digits (the data are
# scikit-learn's 8x8 digits enlarged to 16x16, hence the blur in both) with almost no noise tiles. The gap is not
# training time: the pretrained model ran the same `train` on about as many examples (2000 steps of batch
# 64, against your 1200 of batch 128), but with a five times larger learning rate (1e-3 instead of 2e-4)
# and class labels with label dropout (its EMA decay of 0.998 never took over: after 2,000 steps the warm-up's
# $\frac{2000}{2009} \approx 0.9955$ is still below it, so both EMAs ran on the warm-up alone).
# After this short run the live and the EMA weights draw nearly the same digits from the same $x_T$, the EMA
# ones with a few noise tiles fewer; the EMA pays off most in long runs, where it averages away the
# step-to-step jitter. (In quick mode your model has trained for 40 steps, and every one of its tiles is still
# black-and-white noise, live and EMA alike: the loop works, it needs the full run's 1,200 steps to draw
# digits.)
#
# Things to try: double `IMAGE_STEPS` (the checkpoint lets you do it in two sittings); set
# `mixed_precision="none"` and compare the time per step with `"auto"` (where the processor has fast
# bfloat16, "auto" already uses it and "none", float32, is slower; where it does not, the two are the same, and
# forcing `"bf16"` there is 7 to 20 times slower); set
# `ema_decay=0.9999` and compare the EMA samples: they do not change at all. Why? (Section 3: which decay does
# the warm-up give at step 1,200?)
#
# ## Next
#
# Worksheet [`exercises/04_training.ipynb`](../exercises/04_training.ipynb): write the simple loss, one training step and an EMA of the weights
# with the warm-up of section 3 yourself, then train a small 2-D model with them, and run the worksheet's
# experiment cell that trains without the warm-up to see what goes wrong.
#
# Then **Lesson 5** ([`05_ddpm_vs_ddim.ipynb`](05_ddpm_vs_ddim.ipynb)): sampling, with DDPM's 1,000 steps and DDIM's
# few.
