# %% [markdown]
# # Lesson 6: Guidance
#
# An unconditional model draws *some* digit. To ask for a particular one we condition the model on a class
# $y$, and to make it obey more strongly we *guide* it. This lesson covers:
#
# 1. class-conditional noise predictors $\epsilon_\theta(x_t, t, y)$;
# 2. **classifier guidance** (Dhariwal and Nichol 2021): push the sampler along the gradient of a classifier
#    trained on *noisy* images;
# 3. **classifier-free guidance** (Ho and Salimans 2022): one network trained with label dropout gives both
#    $\epsilon_\theta(x_t, t, y)$ and $\epsilon_\theta(x_t, t, \varnothing)$, and their difference is
#    amplified; first on 2-D data, trained here in seconds, then on images;
# 4. a sweep of the guidance scale $w$ with a measured trade-off: class accuracy up, diversity down;
# 5. a widget for $w$ and the class.
#
# **Time.** About 5 minutes on a quiet 2-core CPU in full mode (248 s measured with nbconvert on 2026-12-04,
# 264 s on 2026-12-02; 8.7 minutes with other work sharing the cores); about a minute with `COURSE_QUICK=1`
# (fewer samples, fewer steps, a shorter 2-D training run).

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

import matplotlib.pyplot as plt
import torch
import ipywidgets as widgets

from course_utils import metrics
from course_utils.analytic import GaussianMixtureEps
from course_utils.checkpoints import load_pretrained
from course_utils.data import EIGHT_GAUSSIANS, have, load_images_or_digits, make_toy
from course_utils.device import get_device
from course_utils.forward import q_sample
from course_utils.guidance import cfg_combine, predict_eps
from course_utils.nets import MLPDenoiser
from course_utils.samplers import ddim_sample
from course_utils.settings import pick, quick_mode, say_if_quick
from course_utils.training import TrainConfig, train
from course_utils.viz import plot_points, show_images

torch.manual_seed(0)
device = get_device()
STEPS = pick(50, 10)            # DDIM steps for every image sample of this lesson
N_PER_CLASS = pick(12, 4)  # samples per class in the sweep of w (12: the lesson stays within 10 minutes)
TOY_STEPS = pick(3000, 400)               # training steps of the 2-D conditional model
print(f"device: {device}, quick mode: {quick_mode()}, DDIM steps: {STEPS}, samples per class: {N_PER_CLASS}")
say_if_quick()

# %% [markdown]
# ## 1. Class-conditional models
#
# A conditional noise predictor takes the class as a third input, $\epsilon_\theta(x_t, t, y)$. In the
# course's UNet the class goes through an embedding table (`nn.Embedding(num_classes + 1, ...)`) and is
# added to the time embedding, so every ResBlock sees it. The extra row, index `num_classes`, is the
# **null class** $\varnothing$ ("no label"), written `y = -1` or `y=None` in the code. During training each
# label is replaced by $\varnothing$ with probability `TrainConfig.label_dropout` (10% by default), so the
# same network also learns the unconditional $\epsilon_\theta(x_t, t, \varnothing)$; section 3 uses that.
#
# Below, the pretrained conditional model draws 8 samples of each class, with plain conditioning.

# %%
name, model, schedule, card = load_pretrained("mnist-unet-cond", "digits-unet-cond", device=device)
image_shape, num_classes = tuple(card["image_shape"]), card["num_classes"]
card_dataset = card["dataset"]["name"]                                          # "mnist" or "digits"
print(f"conditional model: {name}, images {image_shape}, {num_classes} classes")

y_grid = torch.arange(num_classes).repeat_interleave(8).to(device)          # 0,0,...,0,1,1,... (80,)
x_T_grid = torch.randn(len(y_grid), *image_shape, generator=torch.Generator().manual_seed(0)).to(device)
conditional = ddim_sample(model, schedule, x_T_grid.shape, x_T=x_T_grid, y=y_grid, num_steps=STEPS)
show_images(conditional, nrow=8, title=f"{name}: one row per class (y = 0 ... 9), DDIM {STEPS} steps", figsize=(6, 7.5))
plt.show()

# %% [markdown]
# ## 2. Classifier guidance
#
# Bayes' rule for the noisy marginals, $p(x_t \mid y) \propto p(x_t)\, p(y \mid x_t)$, gives for the scores
#
# $$
# \nabla_{x_t} \log p(x_t \mid y) = \nabla_{x_t} \log p(x_t) + \nabla_{x_t} \log p(y \mid x_t).
# $$
#
# The diffusion model supplies the first term, since $\epsilon_\theta(x_t, t) \approx -\sqrt{1-\bar\alpha_t}\,\nabla_{x_t}\log p(x_t)$.
# A classifier $p_\phi(y \mid x_t, t)$ supplies the second, scaled by $s$ to make it stronger
# (Dhariwal and Nichol 2021, Algorithm 2):
#
# $$
# \hat\epsilon(x_t, t) = \epsilon_\theta(x_t, t) - s\,\sqrt{1 - \bar\alpha_t}\;\nabla_{x_t} \log p_\phi(y \mid x_t, t).
# $$
#
# The classifier must work on **noisy** images: during sampling it sees $x_t$ for every $t$. An ordinary
# classifier, trained on clean digits, is lost at large $t$ and its gradient there is meaningless. The
# course ships both; here is their accuracy on test images noised to each $t$. The noisy classifier keeps 93%
# at $t = 300$, where the clean one is down to 41%, and 55% at $t = 500$ against 11%; from $t \approx 800$ on
# both are at chance (always guessing the commonest digit of these test images scores 13.5%; the noisy one still
# has 20% at $t = 700$), since $\sqrt{\bar\alpha_t} \le 0.04$ leaves no digit to see. So over the first steps of sampling the guidance term
# carries little, and guidance acts in the middle of the chain.

# %%
_, noisy_classifier, _, _ = load_pretrained("mnist-noisy-classifier", device=device)
_, clean_classifier, _, _ = load_pretrained("mnist-classifier", device=device)
x_test, y_test, test_name = load_images_or_digits(card_dataset, split="test", image_size=image_shape[-1])
x_test, y_test = x_test[:512].to(device), y_test[:512].to(device)
real_test = have("mnist", test_name, cell="classifies real MNIST test images with the MNIST classifiers")
if real_test:
    ts = [0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 999]
    accuracy = {"noisy classifier p(y | x_t, t)": [], "clean classifier p(y | x)": []}
    g = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for t_value in ts:
            t = torch.full((len(x_test),), t_value, device=device, dtype=torch.long)
            xt = q_sample(x_test, t, torch.randn(x_test.shape, generator=g, device=device), schedule)
            accuracy["noisy classifier p(y | x_t, t)"].append((noisy_classifier(xt, t).argmax(-1) == y_test).float().mean().item())
            accuracy["clean classifier p(y | x)"].append((clean_classifier(xt).argmax(-1) == y_test).float().mean().item())

    fig, ax = plt.subplots(figsize=(6, 3.2))
    for label, acc in accuracy.items():
        ax.plot(ts, acc, "o-", label=label)
    ax.axhline(0.1, color="gray", linestyle=":", label="chance")
    ax.set(xlabel="timestep t", ylabel="accuracy", ylim=(0, 1.02), title=f"classifying noisy {test_name} test images")
    ax.legend()
    plt.show()

# %% [markdown]
# Now guidance itself. The diffusion model here is **unconditional**: it never sees $y$ (the conditional
# model asked for the null class $\varnothing$ plays that role, `guidance_scale=0`). All knowledge of the class
# comes from the noisy classifier's gradient, through the samplers' `classifier=` and `classifier_scale=`
# arguments. Each row is one class; each column one scale $s$.

# %%
classifier_scales = [0.0, 1.0, 3.0, 10.0]
y_cg = torch.arange(num_classes).to(device)                                    # one sample per class
x_T_cg = torch.randn(num_classes, *image_shape, generator=torch.Generator().manual_seed(1)).to(device)
guided = {}
for scale in classifier_scales:
    guided[scale] = ddim_sample(model, schedule, x_T_cg.shape, x_T=x_T_cg, y=y_cg, guidance_scale=0.0,
                                classifier=noisy_classifier, classifier_scale=scale, num_steps=STEPS, progress=True)

fig, axes = plt.subplots(1, len(classifier_scales), figsize=(2.2 * len(classifier_scales), 8))
for ax, (scale, x) in zip(axes, guided.items()):
    acc = metrics.class_accuracy(x, y_cg.cpu(), clean_classifier)
    show_images(x, nrow=1, ax=ax, title=f"s = {scale:g}\n{round(acc * len(x))} of {len(x)} right",   # one each
                row_labels=[f"y = {k}" for k in range(num_classes)] if ax is axes[0] else None)
fig.suptitle("classifier guidance of an unconditional model; row k asks for digit k")
plt.show()

# %% [markdown]
# **What to notice.** With $s = 0$ the rows are whatever the unconditional model draws from each $x_T$:
# about one in ten matches its row by chance. As $s$ grows more rows show the requested digit, and
# with a large $s$ the strokes get heavy and stylised: the sampler climbs the classifier's confidence,
# not the data density. The counts in the titles are the clean classifier's verdicts, not a reader's: at $s = 10$
# it calls row 0's open, C-like stroke a 0. Classifier guidance needs an extra network trained on noisy data and a
# backward pass through it at every step.
#
# ## 3. Classifier-free guidance
#
# Ho and Salimans drop the classifier. A model trained with label dropout predicts both
# $\epsilon_\theta(x_t, t, y)$ and $\epsilon_\theta(x_t, t, \varnothing)$; by Bayes' rule their
# difference is (up to the factor $-\sqrt{1-\bar\alpha_t}$) an implicit classifier's gradient
# $\nabla_{x_t} \log p(y \mid x_t)$, so
#
# $$
# \hat\epsilon = \epsilon_\theta(x_t, t, \varnothing) + w\,\big(\epsilon_\theta(x_t, t, y) - \epsilon_\theta(x_t, t, \varnothing)\big)
# $$
#
# with $w = 0$ the unconditional model, $w = 1$ the plain conditional one and $w > 1$ guided (their
# Eq. 6 writes $1 + w$ for our $w$). Cost: two network calls per step (batched into one in `predict_eps`).
#
# ### On 2-D data, trained here
#
# The 8 Gaussians again, with the blob index as the class. `TrainConfig(label_dropout=0.2)` replaces a
# fifth of the labels by the null class during training.

# %%
x_toy, y_toy = make_toy("8gaussians", n=8000)                               # points (8000, 2), blob index (8000,)
toy_config = TrainConfig(steps=TOY_STEPS, batch_size=512, lr=2e-3, ema_decay=0.999, label_dropout=0.2, log_every=50)
print(toy_config)
torch.manual_seed(0)
toy_model = MLPDenoiser(hidden_dim=256, num_classes=8)
toy_state = train(toy_model, schedule, x_toy, toy_config, y=y_toy, device=device)
toy = toy_state.ema_model
print(f"final loss {toy_state.history[-1][1]:.3f}, {toy_state.seconds:.0f} s")

# %%
# classifier-free guidance written out, against the package (cfg_combine and predict_eps)
x = torch.randn(64, 2, device=device)
t = torch.full((64,), 500, device=device, dtype=torch.long)
y = torch.randint(0, 8, (64,), device=device)
w = 3.0
with torch.no_grad():
    eps_pred_uncond = toy(x, t, None)                  # eps_theta(x_t, t, null)
    eps_pred_cond = toy(x, t, y)                       # eps_theta(x_t, t, y)
    eps_pred_guided = eps_pred_uncond + w * (eps_pred_cond - eps_pred_uncond)
    package = predict_eps(toy, x, t, y=y, guidance_scale=w)

# %%
# NBVAL_CHECK_OUTPUT
print("written out == guidance.cfg_combine:",
      torch.allclose(eps_pred_guided, cfg_combine(eps_pred_uncond, eps_pred_cond, w)))
print("written out == predict_eps(guidance_scale=w):", torch.allclose(eps_pred_guided, package, atol=1e-5))

# %%
y_toy_sample = torch.arange(8).repeat(250).to(device)                     # 2000 points, 250 per class
x_T_toy = torch.randn(2000, 2, generator=torch.Generator().manual_seed(1)).to(device)
toy_ws = [0.0, 1.0, 3.0, 8.0]
means = torch.tensor(EIGHT_GAUSSIANS.means)                                # (8, 2) the blobs' centres
data_spread = (x_toy[:2000] - means[y_toy[:2000]]).norm(dim=-1).median()
fig, axes = plt.subplots(1, len(toy_ws) + 1, figsize=(2.8 * (len(toy_ws) + 1), 3.4))
plot_points(x_toy[:2000], ax=axes[0], c=y_toy[:2000], lim=5,
            title=f"data, coloured by class\nmedian distance {data_spread:.2f}")
for ax, w in zip(axes[1:], toy_ws):
    points = ddim_sample(toy, schedule, x_T_toy.shape, x_T=x_T_toy, y=y_toy_sample, guidance_scale=w,
                         num_steps=100, progress=False).cpu()
    nearest = (points[:, None] - means[None]).norm(dim=-1).argmin(-1)      # the closest blob of each point
    hit = (nearest == y_toy_sample.cpu()).float().mean()
    spread = (points - means[y_toy_sample.cpu()]).norm(dim=-1).median()     # distance to the blob asked for
    plot_points(points, ax=ax, c=y_toy_sample.cpu(), lim=5,
                title=f"w = {w:g}: {hit:.0%} nearest\nmedian distance {spread:.2f}")
fig.suptitle("classifier-free guidance on 2-D data: colour = the class asked for; % of points nearest the blob "
             "asked for, median distance to its centre")
fig.tight_layout()
plt.show()

# %% [markdown]
# **What to notice.** At $w = 0$ the class is ignored, and the points fill one ring with no blobs at all,
# colours mixed: 13% land nearest the blob they asked for, about the one in eight of chance. The
# unconditional prediction (the null class, a fifth of the training labels) has learned the ring but not the
# blobs, the small-$t$ weakness that the score figure below measures. At $w = 1$ the points land in their own
# blob, as tight as the data (median distance to its centre 0.11, the data's 0.12). At larger $w$ they are
# pushed *outwards*, away from the other classes, into radial streaks: at $w = 3$ most stay near their blob
# (median 0.16) with tails reaching out, at $w = 8$ the streaks run far past the data (median 2.25), two of
# them past the edge of the panel (the full run's 3,000-step toy model: in quick mode, 400 steps, the guided
# points collapse onto the blob centres instead, median 0.04 at $w = 3$ and 8). The
# nearest-blob share stays at 100% throughout, since a point far out in the right direction is still nearest
# its own blob: the distance shows what the share hides.
#
# Why outwards: at every noise level the guided prediction is the score of
# $p_t(x \mid y)\,p_t(y \mid x)^{w-1}$, the conditional score plus $(w-1)$ times the implicit classifier's
# gradient, which points away from the other classes. That is *not* the same as sampling the sharpened
# distribution $p(x \mid y)\,p(y \mid x)^{w-1}$ of clean data: for blobs this far apart $p(y \mid x) \approx 1$
# over the whole blob, so that distribution is the blob itself, and the guided sampler overshoots it. Guidance
# buys certainty about the class, not a more accurate sample.

# %% [markdown]
# ### Score and noise, seen
#
# Section 2 used $\epsilon_\theta(x_t, t) \approx -\sqrt{1-\bar\alpha_t}\,\nabla_{x_t}\log p_t(x_t)$: the noise
# prediction is the **score** of the noisy data, $\nabla_{x_t}\log p_t$, up to a factor. The score is an arrow
# at every point that says which way the noisy data gets more likely, and how steeply. For the 8 Gaussians the
# exact score is known in closed form (`course_utils.analytic.GaussianMixtureEps` returns the exact
# $\epsilon^*$), so we can draw it next to the one the model above learned, $-\epsilon_\theta(x_t, t,
# \varnothing)/\sqrt{1-\bar\alpha_t}$ (unconditional: the null class). Arrows are drawn on a grid, over a
# cloud of noisy points $x_t \sim q(x_t)$ in grey. Far from the data the score grows without bound, so an
# arrow's length grows with $g = |\text{score}|$ but saturates (length $\propto g / (g + g_0)$, with $g_0$ the
# exact score's typical size on the grey points; the same in both rows): directions are exact, lengths are only
# compared. The
# titles give the model's error against the exact score, averaged over the grey points (where the model was
# trained).

# %%
exact_eps = GaussianMixtureEps(EIGHT_GAUSSIANS, schedule.to("cpu"))         # the exact eps*(x_t, t)
axis = torch.linspace(-3, 3, 15)
grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), dim=-1).reshape(-1, 2)   # (225, 2)
score_ts = [20, 150, 500]
fig, axes = plt.subplots(2, len(score_ts), figsize=(3.6 * len(score_ts), 7.2), sharex=True, sharey=True)
for col, t_value in enumerate(score_ts):
    sqrt_one_minus_alpha_bar = (1 - schedule.alpha_bar[t_value].cpu()).sqrt()
    cloud_t = torch.full((1000,), t_value, dtype=torch.long)
    cloud = q_sample(x_toy[:1000], cloud_t, torch.randn(1000, 2, generator=torch.Generator().manual_seed(2)),
                     schedule.to("cpu"))                                     # x_t ~ q(x_t), (1000, 2)
    grid_t = torch.full((len(grid),), t_value, dtype=torch.long)
    with torch.no_grad():
        fields = {"exact score": -exact_eps(grid, grid_t) / sqrt_one_minus_alpha_bar,
                  "model: -eps_theta / sqrt(1 - alpha_bar)":
                      -toy(grid.to(device), grid_t.to(device)).cpu() / sqrt_one_minus_alpha_bar}
        on_cloud = (-exact_eps(cloud, cloud_t) / sqrt_one_minus_alpha_bar,
                    -toy(cloud.to(device), cloud_t.to(device)).cpu() / sqrt_one_minus_alpha_bar)
    error = (on_cloud[1] - on_cloud[0]).norm(dim=-1).mean() / on_cloud[0].norm(dim=-1).mean()
    typical = on_cloud[0].norm(dim=-1).median()                             # |exact score| at a typical x_t
    for row, (label, field) in enumerate(fields.items()):
        ax = axes[row, col]
        ax.scatter(cloud[:, 0], cloud[:, 1], s=2, color="0.75")
        length = field.norm(dim=-1, keepdim=True)
        arrows = 0.35 * field / (length + typical)                           # direction kept, length saturates
        ax.quiver(grid[:, 0], grid[:, 1], arrows[:, 0], arrows[:, 1], angles="xy", scale_units="xy", scale=1,
                  width=0.006, color="C0" if row == 0 else "C3")
        title = f"t = {t_value}: {label}" if row == 0 else f"t = {t_value}: model, error {error:.0%} of |score|"
        ax.set(title=title, xlim=(-3.2, 3.2), ylim=(-3.2, 3.2), aspect="equal")
fig.suptitle("the score of the noisy 8 Gaussians: exact (top) and learned (bottom)")
fig.tight_layout()
plt.show()

# %% [markdown]
# **What to notice.** At $t = 500$ the noisy data is one broad blob, and the score points to its centre from
# everywhere; the model's field matches it to 1%. At $t = 150$ the exact field already knows the ring: near the
# centre its arrows turn outwards, towards it; the model follows with a 15% error. At $t = 20$ the exact score
# points into each of the eight blobs, with sharp turns between neighbouring blobs; the model has the ring's
# pull but not the blobs' sharp one, and its error reaches 62%. This is where a diffusion model is weakest: at
# small $t$ the score is large and changes over short distances, and that is the fine detail (the width of each
# blob: lesson 4's slowest part to learn). A sampler follows these arrows from $t = T$ down, so it settles the
# broad structure first and the detail last.

# %% [markdown]
# ## 4. The guidance scale on images: accuracy against diversity
#
# We sweep $w \in \{0, 1, 2, 3, 5, 8\}$ on the pretrained conditional model: `N_PER_CLASS` samples of each
# class, from the same starting noise for every $w$. Three measurements:
#
# * **accuracy**: the fraction of samples that the clean classifier assigns to the class asked for;
# * **diversity**: the mean pairwise distance between the classifier's feature vectors (its
#   penultimate layer) of samples *within* one class, averaged over classes. Ten copies of one
#   perfect digit would score 100% accuracy and zero diversity. The classes are the ones *asked for*.
#   That is only meaningful from $w = 1$ on, where more than 90% of the samples show the digit asked for.
#   At $w = 0$ the samples ignore the class asked for, so each "class" holds all ten digits and the number
#   measures the spread across digits, not within one: **the diversity curve starts at $w = 1$**; the
#   value at $w = 0$ is not comparable with the others.
# * and, for the whole set, the course's **FID** (`course_utils.metrics`) against real test images, which
#   penalises both wrong digits and missing variety (with 120 samples, 40 in quick mode, it is noisy and
#   biased upwards; compare the values with each other only).

# %%
guidance_scales = [0.0, 1.0, 2.0, 3.0, 5.0, 8.0]
y_sweep = torch.arange(num_classes).repeat(N_PER_CLASS).to(device)       # 0..9, 0..9, ... (10 * N_PER_CLASS,)
x_T_sweep = torch.randn(len(y_sweep), *image_shape, generator=torch.Generator().manual_seed(2)).to(device)


def within_class_diversity(features, y):
    """Mean pairwise Euclidean distance of feature vectors (N, F) within each class, averaged over classes."""
    spreads = []
    for k in y.unique():
        f = features[y == k]
        if len(f) < 2:                                                     # no pair to measure: left out
            continue
        d = torch.cdist(f, f)                                              # (n_k, n_k)
        spreads.append(d.sum() / (len(f) * (len(f) - 1)))
    return torch.stack(spreads).mean().item() if spreads else float("nan")


if real_test:                                                                  # FID needs real MNIST (see above)
    reference_features = metrics.features(x_test, clean_classifier)            # for FID: the 512 real test images
sweep = {}
for w in guidance_scales:
    x = ddim_sample(model, schedule, x_T_sweep.shape, x_T=x_T_sweep, y=y_sweep, guidance_scale=w, num_steps=STEPS)
    features = metrics.features(x, clean_classifier)                          # (N, 128) numpy
    sweep[w] = dict(samples=x, accuracy=metrics.class_accuracy(x, y_sweep.cpu(), clean_classifier),
                    diversity=within_class_diversity(torch.from_numpy(features), y_sweep.cpu()),
                    fid=metrics.fid_from_features(features, reference_features) if real_test else float("nan"))
    print(f"w = {w:>3g}: accuracy {sweep[w]['accuracy']:6.1%}, within-class feature distance "
          f"{sweep[w]['diversity']:.2f}" + (f", FID {sweep[w]['fid']:.1f}" if real_test else ""))

if real_test:
    real_features = torch.from_numpy(metrics.features(x_test[:len(y_sweep)], clean_classifier))
    real_diversity = within_class_diversity(real_features, y_test[:len(y_sweep)].cpu())
    print(f"real test images: within-class feature distance {real_diversity:.2f}")
else:
    print("no FID and no real digits' feature distance here: both compare with real MNIST test images, which this "
          "kernel does not have (see above)")

# %%
fig, axes = plt.subplots(2, 3, figsize=(13, 6))
for ax, (w, result) in zip(axes.flat, sweep.items()):
    show_images(result["samples"][:3 * num_classes], nrow=num_classes, ax=ax,
                title=f"w = {w:g}: accuracy {result['accuracy']:.0%}, diversity {result['diversity']:.2f}")
fig.suptitle("classifier-free guidance: columns are the classes 0 ... 9, three samples each")
fig.tight_layout()
plt.show()

fig, (ax0, ax2) = plt.subplots(1, 2, figsize=(12, 3.6))
ax0.plot(guidance_scales, [sweep[w]["accuracy"] for w in guidance_scales], "o-", color="tab:blue")
ax0.set(xlabel="guidance scale w", ylabel="class accuracy (clean classifier)", ylim=(0, 1.02))
ax0.yaxis.label.set_color("tab:blue")
ax1 = ax0.twinx()
within = [w for w in guidance_scales if w >= 1]                     # w = 0 mixes all digits: not comparable
ax1.plot(within, [sweep[w]["diversity"] for w in within], "s--", color="tab:orange")
levels = [sweep[w]["diversity"] for w in within] + ([real_diversity] if real_test else [])
ax1.set_ylim(min(levels) - 0.5, max(levels) + 0.5)                  # the w = 0 point would stretch the axis
if real_test:                                                       # the real digits' level needs MNIST
    ax1.axhline(real_diversity, color="tab:orange", linestyle=":", linewidth=1)
    ax1.text(guidance_scales[-1], real_diversity, "real data ", ha="right", va="bottom", color="tab:orange")
ax1.set_ylabel(f"within-class feature distance\n(w = 0, all digits mixed: {sweep[0.0]['diversity']:.1f})")
ax1.yaxis.label.set_color("tab:orange")
ax0.set_title(f"the guidance trade-off ({N_PER_CLASS} samples per class, DDIM {STEPS} steps)")
if real_test:
    ax2.plot(guidance_scales, [sweep[w]["fid"] for w in guidance_scales], "o-", color="tab:purple")
    ax2.set(xlabel="guidance scale w", ylabel="FID (lower is better)",
            title=f"FID of all {len(y_sweep)} samples against {len(x_test)} test images")
else:
    ax2.set_axis_off()                                              # no FID without MNIST (see the sweep's cell)
    ax2.text(0.5, 0.5, "FID: skipped\n(it needs real MNIST test images)", ha="center", va="center",
             transform=ax2.transAxes)
fig.tight_layout()
plt.show()

# %% [markdown]
# **What to notice.** Accuracy climbs from 5% at $w = 0$ (the unconditional model ignores the class asked
# for, so chance would match about one sample in ten; 6 of these 120 do) to 95% at $w = 1$ and 100% from
# $w = 2$ on. The diversity curve starts at $w = 1$ (at $w = 0$ each class holds all the digits, see above; that value is
# in its axis label): it
# falls from 13.2 at $w = 1$, a little above the real digits' 12.9, to 10.6 at $w = 2$, already below them,
# and on to 8.5 at $w = 8$; in the grids the digits of one column become more alike, bolder and more
# "prototypical". FID rises with $w$ from $w = 2$ on (27.3 at $w = 2$, 37.8 at $w = 8$), and its
# lowest value, 23.6 at $w = 1$, is within the noise of 120 samples per $w$ (FID differences of a few units are):
# past $w = 1$ more guidance buys a few points of accuracy and costs diversity and realism. Text-to-image systems live on this trade-off, typically at $w$ between 3 and 8.
#
# ## 5. Explore: $w$ and the class
#
# Sixteen samples of the chosen class from one fixed $x_T$.

# %%
x_T_widget = torch.randn(16, *image_shape, generator=torch.Generator().manual_seed(3)).to(device)


def cfg_explorer(digit=3, w=1.0):
    y = torch.full((16,), digit, device=device, dtype=torch.long)
    x = ddim_sample(model, schedule, x_T_widget.shape, x_T=x_T_widget, y=y, guidance_scale=w, num_steps=STEPS,
                    progress=False)
    show_images(x, nrow=8, title=f"class {digit}, w = {w:g}", figsize=(8, 2.3))
    plt.show()


_ = widgets.interact(cfg_explorer,
                     digit=widgets.Dropdown(options=list(range(num_classes)), value=3, description="class"),
                     w=widgets.SelectionSlider(options=[0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 12.0], value=1.0,
                                               description="w", continuous_update=False))

# %% [markdown]
# ## Next
#
# Worksheet [`exercises/06_guidance.ipynb`](../exercises/06_guidance.ipynb), in this order: write the
# classifier-free guidance combination, then use it inside a deterministic DDIM sampler; the label-dropout loss,
# with which a small conditional model trains, and a small sweep of $w$ with your sampler; last, the
# classifier-guidance term of section 2.
#
# Then **Lesson 7** ([`07_fast_samplers.ipynb`](07_fast_samplers.ipynb)): DDIM seen as Euler's method on an ODE, and two solvers that reach
# the same quality with fewer network calls.
