# %% [markdown]
# # Lesson 7: faster samplers (Heun, DPM-Solver++) and the diffusers library
#
# Lesson 5 cut sampling from 1000 network calls (DDPM) to 50 (DDIM). This lesson goes further, to 10-20 calls,
# by reading deterministic DDIM for what it is: **Euler's method** on an ordinary differential equation, the
# probability-flow ODE. Euler is the crudest ODE solver there is; better solvers reach the same point with
# fewer, larger steps.
#
# 1. DDIM is Euler's method on the ODE $d\bar x / d\sigma = \epsilon_\theta$, written in the coordinates
#    $\sigma = \sqrt{1-\bar\alpha_t}/\sqrt{\bar\alpha_t}$ and $\bar x = x_t / \sqrt{\bar\alpha_t}$ (DDIM, Sec. 4.3).
# 2. Two second-order solvers: **Heun** (Karras et al. 2022, "EDM", Algorithm 1) and **DPM-Solver++(2M)**
#    (Lu et al. 2022, Algorithm 2), and what each costs in network calls.
# 3. Their trajectories on 2-D data with the *exact* noise predictor, against the exact ODE path.
# 4. Sample quality against network calls on the trained `mnist-unet` (300 samples per point, from stored
#    benchmark runs), on three time grids, and a few live samples.
# 5. The same trained network driven by the schedulers of Hugging Face's `diffusers` library, the library you
#    will use after this course, and what its settings mean in the course's terms.
# 6. A widget: solver, number of network calls and time grid, from one fixed $x_T$.
#
# **Time.** Half a minute or less in full mode on an idle 2-core CPU (nbconvert: 27 s on the AVX2-only machine of
# 2026-12-03, 22 s on the Intel Xeon with AMX of 2026-12-05) and about 15 s (13 s on that Xeon) with
# `COURSE_QUICK=1` (fewer points and images); longer when other jobs share the cores. Section 4's quality figure
# reads stored results: the three benchmark runs behind it sampled for 47 minutes on one of these 2-core machines
# (31 of them for the log-SNR grid, under load).

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
import time

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

from course_utils.analytic import GaussianMixtureEps
from course_utils.checkpoints import load_pretrained
from course_utils.data import EIGHT_GAUSSIANS
from course_utils.device import get_device
from course_utils.progress import tqdm
from course_utils.samplers import ddim_sample, ddim_step, ddim_timesteps
from course_utils.schedules import NoiseSchedule
from course_utils.settings import pick, quick_mode, say_if_quick, wrapped
from course_utils.solvers import (SOLVERS, dpmpp_2m_sample, edm_sigma, heun_sample, network_calls, solve,
                                  solver_timesteps, steps_for_calls)
from course_utils.viz import label_log_axis, show_images

torch.manual_seed(0)
device = get_device()
N_POINTS = pick(2000, 500)           # 2-D points per solver
N_SHOW = pick(16, 8)                 # images per live figure
print(f"device: {device}, quick mode: {quick_mode()}, 2-D points: {N_POINTS}, images per figure: {N_SHOW}")
say_if_quick()

# %% [markdown]
# ## 1. DDIM is Euler's method
#
# Deterministic DDIM ($\eta = 0$, lesson 5) jumps from $t$ to an earlier $t'$ with
#
# $$
# x_{t'} = \sqrt{\bar\alpha_{t'}}\,\underbrace{\frac{x_t - \sqrt{1-\bar\alpha_t}\,\epsilon_\theta(x_t, t)}{\sqrt{\bar\alpha_t}}}_{\hat x_0}
#          + \sqrt{1-\bar\alpha_{t'}}\;\epsilon_\theta(x_t, t).
# $$
#
# Divide both sides by $\sqrt{\bar\alpha_{t'}}$ and name two quantities (DDIM Sec. 4.3, Eq. 13-14), a *noise
# level* and a *rescaled point*:
#
# $$
# \sigma_t = \frac{\sqrt{1-\bar\alpha_t}}{\sqrt{\bar\alpha_t}}, \qquad \bar x_t = \frac{x_t}{\sqrt{\bar\alpha_t}}
# \qquad\Longrightarrow\qquad
# \bar x_{t'} = \bar x_t + (\sigma_{t'} - \sigma_t)\,\epsilon_\theta(x_t, t).
# $$
#
# That is one step of **Euler's method** for the ordinary differential equation
#
# $$
# \frac{d\bar x}{d\sigma} = \epsilon_\theta(x_t, t),
# $$
#
# the *probability-flow ODE*: the slope is the predicted noise, the step is the change of noise level. In
# these coordinates the forward process is simply $\bar x_t = x_0 + \sigma_t\,\epsilon$ (divide
# $q(x_t \mid x_0)$ by $\sqrt{\bar\alpha_t}$): noise of standard deviation $\sigma_t$ added to the data, and
# the ODE walks $\sigma$ down to 0, where $\bar x = x_0$. Karras et al. (EDM) call the same two quantities
# $\sigma$ and $x$. In the code they are `edm_sigma(alpha_bar)` and `x_bar = x / alpha_bar.sqrt()`: a bare
# `sigma` keeps lesson 5's meaning there (the standard deviation of the noise a DDIM step adds, 0 throughout this
# lesson), see GLOSSARY.md.
#
# Euler's method is *first order*: its error at the end shrinks in proportion to the step size. Halve the
# steps' size (twice the network calls), halve the error. Below: one DDIM step and one Euler step agree, and
# $\sigma$ spans four decades between $t = 999$ and $t = 0$.

# %%
# NBVAL_CHECK_OUTPUT
schedule_2d = NoiseSchedule.linear()                        # T = 1000, like mnist-unet's
exact_eps = GaussianMixtureEps(EIGHT_GAUSSIANS, schedule_2d)
alpha_bar = schedule_2d.alpha_bar.double()
g = torch.Generator().manual_seed(0)
xt = torch.randn(500, 2, generator=g, dtype=torch.float64)
worst = 0.0
for t, t_prev in [(999, 722), (302, 30), (30, 0)]:
    eps_pred = exact_eps(xt, torch.full((500,), t))
    x_ddim, _ = ddim_step(xt, eps_pred, alpha_bar[t], alpha_bar[t_prev])
    edm_sigma_t, edm_sigma_prev = edm_sigma(alpha_bar[t]), edm_sigma(alpha_bar[t_prev])
    x_bar_euler = xt / alpha_bar[t].sqrt() + (edm_sigma_prev - edm_sigma_t) * eps_pred   # Euler in sigma
    worst = max(worst, (alpha_bar[t_prev].sqrt() * x_bar_euler - x_ddim).abs().max().item())
print("one DDIM step == one Euler step of d x_bar / d sigma = eps_theta:", worst < 1e-10)
print("sigma at t = 999, 500, 100, 0:", [round(edm_sigma(alpha_bar[t]).item(), 3) for t in (999, 500, 100, 0)])

# %% [markdown]
# ## 2. Two second-order solvers
#
# **Heun's method** (EDM Algorithm 1) takes the Euler step as a *prediction*, asks the network for the slope
# at its end point too, and redoes the step with the average of the two slopes:
#
# $$
# \tilde x = \bar x_t + (\sigma_{t'} - \sigma_t)\,\epsilon_\theta(x_t, t), \qquad
# \bar x_{t'} = \bar x_t + (\sigma_{t'} - \sigma_t)\,\tfrac12\big(\epsilon_\theta(x_t, t) + \epsilon_\theta(\sqrt{\bar\alpha_{t'}}\,\tilde x, t')\big).
# $$
#
# Second order (halve the steps, quarter the error), but **two network calls per step**. The last step, to
# clean data ($\sigma = 0$, where there is no network to ask), stays Euler, so $N$ steps cost $2N - 1$
# calls. Comparisons below are at equal *calls*, not equal steps: Heun gets $(c + 1) / 2$ steps for $c$ calls.
#
# **DPM-Solver++(2M)** (Lu et al. 2022, Algorithm 2) works with the *data prediction*
# $\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\epsilon_\theta)/\sqrt{\bar\alpha_t}$ and with the half log-SNR
# $\lambda_t = \log(\sqrt{\bar\alpha_t}/\sqrt{1-\bar\alpha_t}) = -\log\sigma_t$ as its clock. In these
# variables the ODE has a linear part that can be solved exactly; only $\hat x_0$ along the way must be
# approximated. With $h = \lambda_{t'} - \lambda_t$ and DPM-Solver's $\alpha_t = \sqrt{\bar\alpha_t}$,
# $\sigma^{\text{DPM}}_t = \sqrt{1-\bar\alpha_t}$:
#
# $$
# x_{t'} = \frac{\sigma^{\text{DPM}}_{t'}}{\sigma^{\text{DPM}}_t}\,x_t - \alpha_{t'}\,(e^{-h} - 1)\,D, \qquad
# D = \Big(1 + \frac{1}{2r}\Big)\hat x_0 - \frac{1}{2r}\,\hat x_0^{\text{last}}, \quad r = \frac{h_{\text{last}}}{h}.
# $$
#
# With $D = \hat x_0$ (hold the data prediction constant over the step) this is exactly DDIM. The "2M" part
# extrapolates $\hat x_0$ linearly in $\lambda$ from the current and the previous step's prediction, which is
# already known: **second order for one network call per step**. The first step has no previous prediction
# and the last step (to clean data, $\lambda = +\infty$) cannot extrapolate: both are first order.
#
# Heun, written out for the 2-D points in a dozen lines, is the package's `heun_sample`:

# %%
def heun_loop(model, schedule, x_T, timesteps):
    """Heun's method on d x_bar / d sigma = eps_theta over `timesteps`, then an Euler step to sigma = 0."""
    alpha_bar = torch.cat([schedule.alpha_bar.double()[timesteps], torch.ones(1, dtype=torch.float64)])
    edm_sigmas = edm_sigma(alpha_bar)                                      # at each grid point, 0 at the end
    x = x_T
    for k, t in enumerate(timesteps):
        step = edm_sigmas[k + 1] - edm_sigmas[k]                           # < 0: towards the data
        eps_pred = model(x, torch.full((len(x),), t))                      # eps_theta(x_t, t): the slope
        x_bar = x / alpha_bar[k].sqrt()
        x_bar_prev = x_bar + step * eps_pred                               # Euler: the prediction
        if k + 1 < len(timesteps):                                         # Heun: average the two slopes
            x_pred = (alpha_bar[k + 1].sqrt() * x_bar_prev).float()
            eps_pred_next = model(x_pred, torch.full((len(x),), timesteps[k + 1]))
            x_bar_prev = x_bar + step * (eps_pred + eps_pred_next) / 2
        x = (alpha_bar[k + 1].sqrt() * x_bar_prev).float()
    return x


# %%
# NBVAL_CHECK_OUTPUT
x_T_2d = torch.randn(N_POINTS, 2, generator=torch.Generator().manual_seed(1))
grid = solver_timesteps(schedule_2d, 10).tolist()
print("the time grid of 10 steps (even in lambda):", grid)
ours = heun_loop(exact_eps, schedule_2d, x_T_2d, grid)
package = heun_sample(exact_eps, schedule_2d, x_T_2d.shape, x_T=x_T_2d, num_steps=10, progress=False)
print("our Heun loop equals heun_sample:", torch.allclose(ours, package, atol=1e-4))
print("network calls for 10 steps:", {solver: network_calls(solver, 10) for solver in SOLVERS})

# %% [markdown]
# **The time grid.** All three solvers here run on the same `solver_timesteps(schedule, N)`: $N$ timesteps from
# $t = 999$ (where $x_T \sim \mathcal N(0, I)$ is the forward process's own end point) to $t = 0$, evenly spaced
# in $\lambda$ (DPM-Solver's "logSNR" grid), then one last step to clean data. Even in $\lambda$ means many
# small steps near the data, where the trajectories bend, and few at high noise, where they run straight.
# Lesson 5's DDIM grid (`ddim_timesteps`: 980, 960, ..., 0 for 50 steps) is even in $t$ instead.
#
# ## 3. Trajectories against the exact ODE path
#
# With the exact noise predictor of eight Gaussians, the only error left is the solver's. The reference is
# DDIM on the full grid of 1000 steps from the same $x_T$: Euler with steps so small that its own error is
# tiny (`tests/test_solvers.py` checks it against the closed-form solution for a single Gaussian: 0.35% of the
# data's spread). Each panel follows twelve starting points through each solver's grid points (dots),
# at 5 and 10 network calls.

# %%
exact, exact_path = ddim_sample(exact_eps, schedule_2d, x_T_2d.shape, x_T=x_T_2d, num_steps=1000, progress=False,
                                return_trajectory=True)
paths = {}
for calls in (5, 10):
    for solver in SOLVERS:
        steps = steps_for_calls(solver, calls)
        paths[solver, calls] = solve(solver, exact_eps, schedule_2d, x_T_2d.shape, x_T=x_T_2d, num_steps=steps,
                                     progress=False, return_trajectory=True)[1]

show = torch.arange(12)                                   # twelve starting points
fig, axes = plt.subplots(2, 3, figsize=(12, 8), sharex=True, sharey=True)
for row, calls in enumerate((5, 10)):
    for col, solver in enumerate(SOLVERS):
        ax = axes[row, col]
        path = paths[solver, calls]
        for i in show:
            ax.plot(exact_path[:, i, 0], exact_path[:, i, 1], color="0.6", lw=3, alpha=0.6, zorder=1)
            ax.plot(path[:, i, 0], path[:, i, 1], "o-", ms=3, lw=0.8, color="tab:blue", zorder=2)
        ax.plot(exact[show, 0], exact[show, 1], "*", color="black", ms=9, label="exact end point", zorder=3)
        ax.plot(path[-1, show, 0], path[-1, show, 1], "o", color="tab:red", ms=5, label="solver's end point",
                zorder=4)
        steps = steps_for_calls(solver, calls)
        ax.set(xlim=(-3, 3), ylim=(-3, 3), aspect="equal",
               title=f"{solver}: {steps} steps, {network_calls(solver, steps)} calls")
        outside = (path[-1, show].abs() > 3).any(dim=1)                   # end points the axes cannot show
        if outside.any():
            far = (path[-1, show] - exact[show]).norm(dim=1)[outside].mean()
            ax.text(0.5, 0.03, f"{int(outside.sum())} of {len(show)} end points are off the axes\n"
                    f"(on average {far:.0f} from the exact ones)", transform=ax.transAxes, ha="center",
                    fontsize=8, color="tab:red", bbox=dict(facecolor="white", alpha=0.8, edgecolor="none"))
axes[0, 0].legend(loc="lower left", fontsize=8)
fig.suptitle("grey: the exact ODE path (1000 steps); blue: the solver's steps; eight Gaussians, exact eps")
fig.tight_layout()
plt.show()
for calls in (5, 10):
    distances = {solver: round((paths[solver, calls][-1] - exact).norm(dim=1).mean().item(), 3) for solver in SOLVERS}
    print(wrapped(f"{calls} calls, mean distance of the end points to the exact ones: {distances}"))

# %% [markdown]
# In grey, the exact path of each of the twelve points, from $x_T$ near the centre to one of the eight
# clusters (black stars). With 5 calls DDIM's end points (red) fall short of the stars, towards the centre; with 10
# they are closer but several are still visibly off. DPM-Solver++(2M) lands near the stars with 5 calls and almost
# on them with 10: on all 2,000 points its end points are 0.143 and 0.082 from the exact ones on average, DDIM's
# 0.311 and 0.108. Heun, with 3 and 5 steps, is thrown far off (25 and 1.1).
#
# Why Heun fails here: its correction averages the slopes at the two ends of a step, which is accurate when the
# slope changes evenly along the step. Our grid's first Heun steps span huge ranges of $\sigma$: 157 down to 1.25
# in the first of 3 steps; with 5 steps, 157 down to 14 and then 14 down to 1.25 in the first two. Over most of such a step the slope $\epsilon_\theta$ barely changes; it
# turns only near the end, at low noise. The average gives half the weight to that end slope, and the step
# overshoots (with 3 steps the first step already throws every point off the axes of the figure). Euler, which keeps
# the slope of the start, is closer over such a step, and DPM-Solver++ avoids the problem by construction: its
# clock is $\lambda = -\log\sigma$, in which the grid's steps are all the same size, and the part of the ODE that
# is linear in $x$ is integrated exactly.
#
# How the error falls with the number of calls, on all the points: first order (DDIM) halves it when the calls
# double; second order quarters it, once the steps are small enough.

# %%
calls_grid = [5, 10, 20, 50, 100]
errors = {solver: [] for solver in SOLVERS}
for calls in calls_grid:
    for solver in SOLVERS:
        x = solve(solver, exact_eps, schedule_2d, x_T_2d.shape, x_T=x_T_2d, num_steps=steps_for_calls(solver, calls),
                  progress=False)
        errors[solver].append((x - exact).norm(dim=1).mean().item())

fig, ax = plt.subplots(figsize=(6.5, 4.5))
for solver, marker in zip(SOLVERS, "osD"):
    calls_made = [network_calls(solver, steps_for_calls(solver, c)) for c in calls_grid]
    ax.plot(calls_made, errors[solver], marker + "-", label=solver)
c = torch.tensor([10.0, 100.0])
ax.plot(c, 0.8 * errors["DDIM"][1] * (10 / c), "k:", lw=1, label="slope -1 (first order)")
ax.plot(c, 0.5 * errors["DPM-Solver++(2M)"][1] * (10 / c) ** 2, "k--", lw=1, label="slope -2 (second order)")
ax.set(xscale="log", yscale="log", xlabel="network calls", ylabel="mean distance to the exact end point",
       title="error against network calls (eight Gaussians, exact eps)")
label_log_axis(ax, "x", [5, 10, 20, 50, 100])   # plain labels on the log axis
ax.legend(fontsize=8)
plt.show()
print("calls:", calls_grid)
for solver in SOLVERS:
    print(f"{solver:>17}:", [f"{e:.4f}" for e in errors[solver]])

# %% [markdown]
# On the log-log plot DDIM falls along the slope $-1$ of a first-order method: each doubling of the calls
# halves its error (0.108 at 10 calls, 0.047 at 20, 0.017 at 50). DPM-Solver++(2M) falls faster, close to the
# slope $-2$ from 10 calls on, and is 3.6 times closer than DDIM at 20 calls (0.013) and 6.4 times at 50 (0.0027);
# below about 0.002 it meets the error of the 1000-step reference itself. Heun starts far off and falls steeply:
# worse than DDIM up to 20 calls, 2 times better at 49 and 3.6 times at 99. `tests/test_solvers.py` checks these
# factors, and the orders themselves against the closed-form ODE solution of a single Gaussian.
#
# ## 4. Quality against network calls on MNIST
#
# A trained network is not the exact $\epsilon$, and what matters for images is how good the samples look, not
# how close they land to an ODE solution nobody can compute. The measure is lesson 5's: the course FID
# (Fréchet distance of the course classifier's features to the MNIST test set, lower is better) and the share
# of samples that the held-out judge `mnist-eval-classifier` classifies with probability above 0.9 (higher is
# better; 97.0% for real test digits).
#
# Telling solvers apart needs a few hundred samples per point: the three grids took 47 minutes of sampling on
# this course's 2-core machine (the log-SNR one half an hour, with other jobs running), too long for a live cell. The figure below reads the results of
# `bench/bench_samplers.py`, stored in `course_utils/checkpoints/runs/bench_samplers.json` (the three solvers on the
# log-SNR grid of section 2) and, for DDIM and DPM-Solver++(2M) on two grids even in $t$, `bench_samplers_leading.json`
# (lesson 5's grid) and `bench_samplers_linspace.json`; the next cell prints the commands
# that made them and the machine. All runs start from the same 300 $x_T$; error bars are one binomial
# standard error $\sqrt{p(1-p)/n}$ of the confident share (FID has no simple error bar; differences of a few
# tenths at $n = 300$ are within its noise).

# %%
from course_utils.checkpoints import load_run

def print_row(row):
    print(f"{row['sampler']:<24} {row['steps']:>5} {row['calls']:>5} {row['seconds']:>8.1f} {row['fid']:>7.2f} "
          f"{row['confident']:>7.3f} +- {row['confident_se']:.3f}")


bench = load_run("bench_samplers")                 # course_utils/checkpoints/runs/bench_samplers.json
print(wrapped(f"from course_utils/checkpoints/runs/bench_samplers.json: `{bench['command']}`"))
print(wrapped(f"  {bench['header']}; {bench['machine']}"))
print(f"  the 'logsnr' grid of 5 steps: {bench['grids']['DDIM 5']}")
ddpm = bench["ddpm_1000"]
print(wrapped(f"  DDPM 1000 reference: FID {ddpm['fid']:.2f}, confident {ddpm['confident']:.3f}"
              + (f" ({ddpm['source']})" if "source" in ddpm else "")))
print(f"\n{'sampler':<24} {'steps':>5} {'calls':>5} {'seconds':>8} {'FID':>7} {'confident':>10}")
for row in bench["rows"]:
    print_row(row)

other_grids = {spacing: load_run(f"bench_samplers_{spacing}") for spacing in ("leading", "linspace")}
for spacing, run in other_grids.items():
    print(wrapped(f"\nthe same x_T, DDIM and DPM-Solver++(2M) on the {spacing!r} grid "
                  f"(5 steps: {run['grids']['DDIM 5']}): `{run['command']}`"))
    for row in run["rows"]:
        if row["sampler"] in SOLVERS:
            print_row(row)

# %%
rows = bench["rows"]
lesson5 = next(r for r in rows if r["sampler"].startswith("DDIM (lesson 5"))
by_grid = {"logsnr": rows, **{spacing: run["rows"] for spacing, run in other_grids.items()}}
line = {"logsnr": "-", "linspace": "--", "leading": ":"}
LOWEST = 0.55                                      # the confident share's axis starts here
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 4.8))
for solver, marker, color in zip(SOLVERS, "osD", ("C0", "C1", "C2")):
    for spacing, grid_rows in by_grid.items():
        mine = [r for r in grid_rows if r["sampler"] == solver]
        if not mine:
            continue
        calls = [r["calls"] for r in mine]
        style = dict(color=color, ls=line[spacing], label=f"{solver}, {spacing} grid")
        ax0.plot(calls, [r["fid"] for r in mine], marker=marker, **style)
        ax1.errorbar(calls, [r["confident"] for r in mine], yerr=[r["confident_se"] for r in mine], marker=marker,
                     capsize=2, **style)
        for r in mine:
            if r["confident"] < LOWEST:             # below the axis, which would squeeze every other point: named
                ax1.annotate(f"{solver}, {r['calls']} calls: {r['confident']:.2f}", xy=(r["calls"], LOWEST),
                             xytext=(r["calls"] * 1.15, LOWEST + 0.03), color=color, fontsize=8,
                             arrowprops=dict(arrowstyle="->", color=color))
for ax, key in ((ax0, "fid"), (ax1, "confident")):
    ax.axhline(ddpm[key], color="tab:red", ls="-.", label="DDPM, 1000 calls (README's run)")
    ax.axhline(lesson5[key], color="0.4", ls=(0, (1, 4)), label="DDIM 50, lesson 5's grid")
    ax.set(xscale="log", xlabel="network calls")
    label_log_axis(ax, "x", [5, 10, 20, 50])
ax0.set(yscale="log", ylabel="course FID (lower is better)", title=f"FID, {bench['n']} samples each")
label_log_axis(ax0, "y", [6, 8, 10, 20, 50, 100, 200])                # where the comparisons are: 6 to 10
ax1.set(ylabel="share classified with confidence > 0.9", ylim=(LOWEST, 0.95),
        title=f"held-out judge, {bench['n']} samples each (+- 1 SE)")
handles, labels = ax0.get_legend_handles_labels()
fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, handlelength=4)
fig.tight_layout(rect=(0, 0.12, 1, 1))
plt.show()

# %% [markdown]
# What the figure shows (its confident-share axis starts at 0.55: Heun's 5-call point lies below, at the
# arrow; the exact figures are in the printed table). **On the log-SNR grid** (solid lines, the grid of section 2), DPM-Solver++(2M) beats DDIM at
# every budget: FID 36.3 against 41.1 at 5 calls, 8.9 against 12.3 at 10, 6.35 against 7.93 at 20, and a confident
# share 2.3 to 4.3 points higher (0.783 against 0.740 at 10 calls, 0.843 against 0.803 at 20, one to two standard
# errors); at 20 calls it is within 6% of DDIM 50's FID on lesson 5's grid (5.99) and within two standard errors
# of its confident share (0.873). **But the grid matters as much as the solver.** On the two grids even in $t$
# (dashed: `"linspace"`, 999, 749, 500, 250, 0 for 5 steps; dotted: lesson 5's `"leading"`, 800, 600, ..., 0) both
# solvers do far better with few calls, DDIM most of all: with 5 calls its FID is 15.0 and 12.2 there against 41.1
# on the log-SNR grid, with 10 calls 8.06 and 7.92 against 12.3. On those grids the two solvers are level: DDIM has
# the lower FID (7.92 and 6.30 against 8.64 and 6.67 at 10 and 20 calls on lesson 5's grid), DPM-Solver++ the
# higher confident share (0.840 and 0.860 against 0.800 and 0.827), each gap within a few tenths of FID or about
# one to two standard errors. And DDIM with 20 calls on the `"linspace"` grid (FID 6.53, confident 0.850) meets the
# same bar as DPM-Solver++ with 20 on the log-SNR grid. So with this network, 20 calls instead of 50 come from a
# better solver *or* a better grid: "DPM-Solver++ needs 2.5 times fewer calls than DDIM" holds on the log-SNR grid
# only. The log-SNR grid of 5 steps (printed above) crosses t = 722 to 302 in one step and then spends two of its
# steps below t = 30, where an image barely changes; the even grids step every 200 or 250. On the exact 2-D model
# of section 3 the paths bend near the data, so small steps there paid off; the trained image network evidently
# needs its steps in the middle of the chain.
#
# Heun (log-SNR grid only) is useless at 5 and 9 calls (FID 222 and 38) and close to DPM-Solver++ from 19 calls on
# (FID 6.88 against 6.35, the same confident share 0.843). At 50 calls every solver on every grid agrees
# (FID 5.99-6.23, confident 0.86-0.88). None of the deterministic solvers reaches DDPM's confident share (0.923),
# as in lesson 5: DDPM's stochastic steps trade differently, and that gap is not the solvers' discretisation
# error. The seconds of the log-SNR run do not even rise with the calls (Heun took 77 s for 9 calls and 75 s for
# 19; DPM-Solver++ 125 s for 10 and 93 s for 20): they were taken while other jobs shared the cores (the load
# average fell from 9 to 4 during the run), so compare calls, not seconds.
#
# The same comparison, live, on a few samples, from the same $x_T$: lesson 5's DDIM with 50 and with 10 calls on
# its own grid, then each solver at 10 network calls (Heun: 5 steps, 9 calls) on the log-SNR grid.

# %%
name, model, schedule, card = load_pretrained("mnist-unet", "digits-unet-cond", device=device)
image_shape = tuple(card["image_shape"])
print(f"model: {name}, images {image_shape}, T = {schedule.T}")
x_T = torch.randn(N_SHOW, *image_shape, generator=torch.Generator().manual_seed(0)).to(device)
live, seconds = {}, {}
for steps in (50, 10):
    key = f"DDIM, {steps} calls, lesson 5's grid"
    start = time.perf_counter()
    live[key] = ddim_sample(model, schedule, x_T.shape, x_T=x_T, num_steps=steps, progress=True)
    seconds[key] = time.perf_counter() - start
for solver in SOLVERS:
    steps = steps_for_calls(solver, 10)
    key = f"{solver}, {network_calls(solver, steps)} calls, logsnr grid"
    start = time.perf_counter()
    live[key] = solve(solver, model, schedule, x_T.shape, x_T=x_T, num_steps=steps, progress=True)
    seconds[key] = time.perf_counter() - start

fig, axes = plt.subplots(len(live), 1, figsize=(8, 2.3 * len(live)))
for ax, (key, x) in zip(axes, live.items()):
    show_images(x, nrow=8, ax=ax, title=f"{key} ({seconds[key]:.1f} s)")
fig.tight_layout()
plt.show()
for key, s in seconds.items():                                   # the titles' seconds, as text
    print(f"{key + ':':<42} {s:5.1f} s for {N_SHOW} images")

# %% [markdown]
# With a fifth of DDIM 50's network calls, two samplers draw digits close to DDIM 50's: DDIM itself on lesson 5's
# grid and DPM-Solver++(2M) on the log-SNR grid, as the FIDs above said (7.92 and 8.90). DDIM with 10 calls on the
# log-SNR grid draws the same digits with rougher strokes and a few breaks (the 6, the first 0, the second 7 of
# the second row), and Heun with 5 steps (9 calls) breaks most of them into blotches. The same $x_T$ gives the
# same digit in most columns: the solvers approximate one map $x_T \mapsto x_0$, the ODE's (the "1" of DDIM 50's
# fifteenth image, second row, seventh column, is a "9" for the three other 10-call samplers, and a blotch for
# Heun). The seconds in the
# titles, printed below the figure, are this run's (executed on 2026-12-07 on an idle 2-core AMD EPYC), and time follows
# calls: 0.5-0.6 s for 16 images at about 10 calls (Heun's 9), 3.0 s for DDIM 50; on an idle 2-core Intel Xeon
# (2026-12-04) the same cell gave 0.4-0.5 s and 3.0 s, and on another idle 2-core machine
# `python bench/bench_samplers.py --n 16 --calls 10` gave 0.6-0.7 s and 2.9 s. A title out of line with its calls,
# when you run it, is a slow moment of a shared machine, not the solver.
#
# ## 5. The ecosystem: the same network in `diffusers`
#
# Hugging Face's `diffusers` library splits a sampler in two: the *model* (any network that returns a noise
# prediction) and a *scheduler* that holds the time grid and performs the update. A scheduler's loop is short
# enough to write out, and it drives the course's own `mnist-unet` as well as any model of the library:

# %%
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler  # noqa: E402


def diffusers_sample(scheduler, model, x_T, **set_timesteps):
    """Sample with a diffusers scheduler and any eps-prediction model(x, t): the library's own ten lines."""
    scheduler.set_timesteps(**set_timesteps)                         # the time grid: scheduler.timesteps
    x = x_T * scheduler.init_noise_sigma                             # 1 for these two schedulers
    for t in tqdm(scheduler.timesteps, desc=type(scheduler).__name__, leave=False):
        model_input = scheduler.scale_model_input(x, t)              # the identity for these two
        eps_pred = model(model_input, t.repeat(len(x)).to(x.device))
        x = scheduler.step(eps_pred, t, x).prev_sample               # one update, x_t -> x_t'
    return x


same_betas = dict(num_train_timesteps=schedule.T, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                  prediction_type="epsilon")
ddim_scheduler = DDIMScheduler(**same_betas, clip_sample=False, set_alpha_to_one=True, steps_offset=0,
                               timestep_spacing="leading")
dpm_scheduler = DPMSolverMultistepScheduler(**same_betas, algorithm_type="dpmsolver++", solver_order=2,
                                            final_sigmas_type="zero")
with torch.no_grad():
    theirs_ddim = diffusers_sample(ddim_scheduler, model, x_T, num_inference_steps=20)
    theirs_dpm = diffusers_sample(dpm_scheduler, model, x_T, timesteps=solver_timesteps(schedule, 10).tolist())
ours_ddim = ddim_sample(model, schedule, x_T.shape, x_T=x_T, num_steps=20, progress=True)
ours_dpm = dpmpp_2m_sample(model, schedule, x_T.shape, x_T=x_T, num_steps=10, progress=True)
print("DDIMScheduler timesteps:", ddim_scheduler.timesteps.tolist()[:4], "...", "(ours:",
      ddim_timesteps(schedule.T, 20).tolist()[:4], "...)")
print(f"DDIM 20 steps, diffusers vs course: largest pixel difference {(theirs_ddim - ours_ddim).abs().max():.1e}")
print(f"DPM-Solver++(2M) 10 steps, diffusers vs course: largest pixel difference "
      f"{(theirs_dpm - ours_dpm).abs().max():.1e} (pixels in [-1, 1])")

# %%
# NBVAL_CHECK_OUTPUT
print("diffusers' DDIM and ours give the same images:", torch.allclose(theirs_ddim, ours_ddim, atol=2e-3))
print("diffusers' DPM-Solver++(2M) and ours give the same images:", torch.allclose(theirs_dpm, ours_dpm, atol=2e-3))

# %%
fig, axes = plt.subplots(4, 1, figsize=(8, 9.2))
for ax, (title, x) in zip(axes, [("course: ddim_sample, 20 steps", ours_ddim),
                                 ("diffusers: DDIMScheduler, 20 steps", theirs_ddim),
                                 ("course: dpmpp_2m_sample, 10 steps", ours_dpm),
                                 ("diffusers: DPMSolverMultistepScheduler, 10 steps", theirs_dpm)]):
    show_images(x, nrow=8, ax=ax, title=title)
fig.tight_layout()
plt.show()

# %% [markdown]
# The two libraries agree image for image, to well under 1e-3 in pixels (the largest differences are printed
# above the figure, for pixels in [-1, 1]: float32 round-off;
# `tests/test_solvers.py` checks every intermediate step on the exact 2-D model). The scheduler's settings, in the
# course's terms:
#
# - `num_train_timesteps`, `beta_schedule="linear"`, `beta_start`, `beta_end`: our `NoiseSchedule.linear(T)`;
#   their `alphas_cumprod` is our `alpha_bar`, with the same indexing t = 0..T-1.
# - `prediction_type`: what the network returns. `"epsilon"` is our `eps_pred` (every model of this course);
#   `"sample"` is `x0_pred`; `"v_prediction"` is $v = \sqrt{\bar\alpha_t}\,\epsilon - \sqrt{1-\bar\alpha_t}\,x_0$
#   (Salimans and Ho 2022). The scheduler converts it to what its update needs: DPM-Solver++ turns
#   `eps_pred` into `x0_pred` first, as our `dpmpp_2m_step` does.
# - `set_timesteps(N)` builds the grid of N steps, `scheduler.timesteps` (descending, like ours);
#   `set_timesteps(timesteps=[...])` takes an explicit one, which is how the DPM-Solver++ run above used our
#   `solver_timesteps(schedule, 10)`.
# - `timestep_spacing` chooses that grid: `"leading"` is lesson 5's `ddim_timesteps` (950, 900, ..., 0 for 20
#   steps: printed above), `"trailing"` counts down from T-1 (999, 949, ...), `"linspace"` spreads N points over
#   0..T-1. The same name can mean different grids in different schedulers: DPMSolverMultistepScheduler's
#   `"linspace"` (its default) stops at t = 200 for 5 steps and jumps from there to clean data in one first-order
#   step. And DDIMScheduler always steps from t to t - T/N, which with `"linspace"` is not the next grid point
#   (`tests/test_solvers.py` pins both). Print `scheduler.timesteps` before trusting a comparison.
# - `set_alpha_to_one=True` (DDIM) and `final_sigmas_type="zero"` (DPM-Solver): the last step goes to
#   $\bar\alpha = 1$, clean data, as ours do. `solver_order=2`, `algorithm_type="dpmsolver++"`: the 2M solver
#   with the data prediction; `lower_order_final` lowers the order near the end (ours is first order on the
#   last step, to clean data, which is all that remains of it with `final_sigmas_type="zero"`).
# - `init_noise_sigma` and `scale_model_input`: 1 and the identity here. diffusers' Euler and Heun schedulers
#   keep their state as section 1's $\bar x$: their `init_noise_sigma` is about $\sigma_{\max}$, to turn $x_T$
#   into $\bar x_T$, and `scale_model_input` multiplies by $\sqrt{\bar\alpha_t} = 1/\sqrt{\sigma^2 + 1}$ to hand the
#   network $x_t$ again.
#
# ## 6. Explore: solver, network calls and time grid
#
# The same starting points $x_T$ for every choice (16; 8 with `COURSE_QUICK=1`). Pick a solver, a budget of
# network calls (Heun takes the most steps that fit: 3 steps for 5 calls) and one of section 4's three time grids:
# `"logsnr"` (section 2's, even in log-SNR), `"linspace"` (even in $t$ from 999 to 0) or `"leading"` (lesson 5's
# `ddim_timesteps`). The title prints the grid's timesteps, so you can see where each solver spends its calls.

# %%
x_T_widget = torch.randn(N_SHOW, *image_shape, generator=torch.Generator().manual_seed(42)).to(device)


def grid_label(timesteps, shown=6):
    """'t = 999, 722, 302, 30, 0', or its first points and the last for a long grid."""
    points = [str(t) for t in timesteps]
    return "t = " + ", ".join(points if len(points) <= shown else points[:shown - 2] + ["...", points[-1]])


def solver_explorer(solver="DPM-Solver++(2M)", calls=10, grid="logsnr"):
    steps = steps_for_calls(solver, calls)
    x = solve(solver, model, schedule, x_T_widget.shape, x_T=x_T_widget, num_steps=steps, spacing=grid,
              progress=False)
    timesteps = solver_timesteps(schedule, steps, spacing=grid).tolist()
    show_images(x, nrow=8, figsize=(8, 2.5),
                title=f"{solver}, {grid} grid: {steps} steps, {network_calls(solver, steps)} network calls\n"
                      f"{grid_label(timesteps)}")
    plt.show()


_ = widgets.interact(solver_explorer,
                     solver=widgets.Dropdown(options=list(SOLVERS), value="DPM-Solver++(2M)", description="solver"),
                     calls=widgets.SelectionSlider(options=[3, 5, 10, 20, 50], value=10, description="calls",
                                                   continuous_update=False),
                     grid=widgets.Dropdown(options=["logsnr", "linspace", "leading"], value="logsnr",
                                           description="grid"))

# %% [markdown]
# What the widget shows (every setting was looked at while writing this, from this $x_T$). **3 calls**: on the
# log-SNR grid (999, 302, 0) DDIM gives blurred sketches and DPM-Solver++(2M) noisy ones, many of them other digits
# than the ones the larger budgets draw; on `"linspace"` (999, 500, 0) DDIM gives grey blurs of the right digits;
# on lesson 5's `"leading"` grid (666, 333, 0: it treats $x_T$ as $x_{666}$, where $\sqrt{\bar\alpha_t} = 0.10$)
# DPM-Solver++ already draws most of the sixteen digits. Heun with 2 steps gives noise on every grid. **5 calls**:
# on the log-SNR grid DDIM's digits are still blurred and DPM-Solver++ draws most of them; on the even grids both
# draw most of them, DDIM a little blurred; Heun's 3 steps give noise, or on `"leading"` grainy sketches.
# **10 calls**: DDIM and DPM-Solver++ draw the digits on every grid; Heun (5 steps, 9 calls) breaks a few, and on
# the even grids leaves a grain of noise over every image. **20 calls**: DDIM and DPM-Solver++ draw the same
# sixteen digits on every grid, and so does Heun (19 calls) on the log-SNR grid; on the even grids Heun still
# leaves a faint grain and turns the seventh digit into a blob. **50 calls**: every solver draws the same sixteen
# digits on every grid. Section 4's numbers say the same on 300 samples: with few calls, the grid decides as much
# as the solver.
#
# ## Next
#
# * Worksheet [`exercises/07_fast_samplers.ipynb`](../exercises/07_fast_samplers.ipynb): write the DPM-Solver++(2M) step and its sampler loop
#   yourself; the check drives them with the exact noise predictor and names the usual mistakes.
# * `bench/bench_samplers.py` repeats section 4's measurement on your machine.
