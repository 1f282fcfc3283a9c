"""Write the lessons notebooks/01_noise_schedules.ipynb, 02_forward_process.ipynb and 03_unet.ipynb (no outputs).

The notebooks are generated from this one source so that their JSON stays clean; execute them afterwards:

    python tools/build_lessons_01_03.py                 # all three, or name some: 01_noise_schedules
    COURSE_DATA_DIR=/work/shared/data nice -n 15 jupyter nbconvert --to notebook --execute --inplace notebooks/01_noise_schedules.ipynb

Markdown cells are plain strings; code cells are strings passed to ``code``. Cells whose output must be the same
in quick and full mode start with ``# NBVAL_CHECK_OUTPUT``.
"""
from __future__ import annotations

import sys

from lesson_cells import COLAB, code, md, notebook, write_lessons  # tools/ (this script's folder)


# ----------------------------------------------------------------------------------------------------- lesson 1
def lesson_01():
    return notebook([
        md(r"""
        # Lesson 1: Noise schedules

        A diffusion model learns to undo a process that slowly turns data into noise. Before any network, we
        have to decide **how fast** that noise is added: this is the *noise schedule*. It is a handful of
        numbers, yet it decides which noise levels the network practises on and how much of the image is left
        at each step.

        In this lesson:

        1. the three quantities of every schedule, $\beta_t$, $\alpha_t$ and $\bar\alpha_t$;
        2. the **linear** schedule of DDPM (Ho et al. 2020);
        3. the **cosine** schedule of Improved DDPM (Nichol and Dhariwal 2021);
        4. the lab's **continuous cosine** schedule, written with a signal rate and a noise rate on the unit circle;
        5. all three side by side ($\beta_t$, $\bar\alpha_t$, log-SNR), and why the linear schedule destroys a
           small image too early;
        6. an explorer: pick a schedule and $T$, and watch the curves and a noised digit change.

        No training happens here; the whole notebook runs in seconds.
        """),
        code(COLAB),
        code('''
        import math

        import matplotlib.pyplot as plt
        import torch
        import torch.nn.functional as F

        from course_utils.data import load_images_or_digits
        from course_utils.device import get_device
        from course_utils.forward import q_sample
        from course_utils.schedules import NoiseSchedule, diffusion_schedule
        from course_utils.settings import pick, quick_mode
        from course_utils.viz import plot_schedules, show_images
        from course_utils.widgets import schedule_explorer

        torch.manual_seed(0)
        device = get_device()
        NUM_IMAGES = pick(64, 16)        # test images used to measure how much of the digit is left
        T = 1000                         # the number of diffusion steps of DDPM (the same in both modes)
        print(f"device: {device}, quick mode: {quick_mode()}, images: {NUM_IMAGES}")
        '''),
        md(r"""
        ## 1. $\beta_t$, $\alpha_t$ and $\bar\alpha_t$

        The forward process adds a little Gaussian noise at every step $t = 1, \dots, T$:
        $$
        q(x_t \mid x_{t-1}) = \mathcal N\big(x_t;\ \sqrt{1-\beta_t}\,x_{t-1},\ \beta_t I\big)
        \qquad \text{(DDPM, Eq. 2)}
        $$
        $\beta_t \in (0, 1)$ is the **variance of the noise added at step $t$**. The old signal is shrunk by
        $\sqrt{1-\beta_t}$ at the same time, so that an input of unit variance keeps unit variance. Two derived
        quantities appear everywhere:
        $$
        \alpha_t = 1 - \beta_t, \qquad \bar\alpha_t = \prod_{s=1}^{t} \alpha_s .
        $$
        $\bar\alpha_t$ is the fraction of the signal's *variance* still left after $t$ steps: lesson 2 shows that
        $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon$. A schedule is good when $\bar\alpha_t$
        falls from about 1 (clean data) to about 0 (pure noise), and does so at a pace that leaves the network
        something to learn at every step.

        **Indexing.** Papers count steps $1..T$; the code counts $t = 0..T-1$, and code index `t` stands for the
        paper's step $t+1$ (see GLOSSARY.md). So `alpha_bar[0]` is $\bar\alpha_1$.

        Here are the three quantities for a made-up schedule of $T = 5$ steps, computed by hand and by
        `NoiseSchedule.from_betas`, the package's constructor that derives everything from the betas:
        """),
        code('''
        # NBVAL_CHECK_OUTPUT
        betas = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5], dtype=torch.float64)   # beta_t, t = 1..5
        alphas = 1 - betas                                                       # alpha_t = 1 - beta_t
        alpha_bar = torch.cumprod(alphas, dim=0)                                 # alpha_bar_t = prod_{s<=t} alpha_s
        tiny = NoiseSchedule.from_betas(betas)

        print(" t   beta_t  alpha_t  alpha_bar_t")
        for t in range(5):
            print(f"{t + 1:2d}   {betas[t]:.3f}   {alphas[t]:.3f}    {alpha_bar[t]:.4f}")
        print("same as NoiseSchedule.from_betas:", torch.allclose(alpha_bar.float(), tiny.alpha_bar))
        '''),
        md(r"""
        Even with these large betas, $\bar\alpha_t$ is still 0.15 after five steps.
        With a thousand small betas the product can be shaped much more finely. That shape is what the three
        schedules below disagree about.

        ## 2. The linear schedule (Ho et al. 2020)

        DDPM uses $T = 1000$ and betas rising **linearly** from $\beta_1 = 10^{-4}$ to $\beta_T = 0.02$
        (Sec. 4 of the paper). Small steps first, so the image is disturbed gently; larger steps later, when
        little of the image is left anyway.
        $$
        \beta_t = \beta_1 + \frac{t-1}{T-1}\,(\beta_T - \beta_1)
        $$
        """),
        code('''
        betas_linear = torch.linspace(1e-4, 0.02, T, dtype=torch.float64)    # beta_t, evenly spaced
        alpha_bar_linear = torch.cumprod(1 - betas_linear, dim=0)             # alpha_bar_t

        linear = NoiseSchedule.linear(T)
        print("inline alpha_bar equals NoiseSchedule.linear:", torch.allclose(alpha_bar_linear.float(), linear.alpha_bar))
        print(f"alpha_bar at the last step: {linear.alpha_bar[-1].item():.2e} "
              f"(signal rate sqrt(alpha_bar) = {linear.sqrt_alpha_bar[-1].item():.4f})")
        '''),
        md(r"""
        At $t = T$ only $\sqrt{\bar\alpha_T} \approx 0.006$ of the image is left: $x_T$ is, for practical purposes,
        $\mathcal N(0, I)$, which is where sampling will start.

        ## 3. The cosine schedule (Nichol and Dhariwal 2021)

        Improved DDPM defines $\bar\alpha_t$ directly and derives the betas from it (Eq. 17 of that paper):
        $$
        \bar\alpha_t = \frac{f(t)}{f(0)}, \qquad f(t) = \cos^2\!\Big(\frac{t/T + s}{1 + s}\cdot\frac{\pi}{2}\Big),
        \qquad \beta_t = \min\Big(1 - \frac{\bar\alpha_t}{\bar\alpha_{t-1}},\ 0.999\Big).
        $$
        - $\cos^2$ falls slowly near both ends and steadily in the middle, so $\bar\alpha_t$ is nearly linear in
          the middle of the chain instead of collapsing early.
        - The offset $s = 0.008$ keeps $\beta_1$ from being vanishingly small (at $s = 0$, $\sqrt{\beta_1}$ would
          be about $\pi/(2T)$, smaller than a pixel's quantisation step of $2/255$).
        - Near $t = T$, $\bar\alpha_t \to 0$ and the ratio would give $\beta_T = 1$; the clip at 0.999 avoids that
          singularity.
        """),
        code('''
        steps = torch.arange(T + 1, dtype=torch.float64)                      # 0, 1, ..., T
        s = 0.008
        f = torch.cos((steps / T + s) / (1 + s) * math.pi / 2) ** 2           # f(t)
        alpha_bar_cos = f / f[0]                                              # alpha_bar_t = f(t) / f(0)
        betas_cos = (1 - alpha_bar_cos[1:] / alpha_bar_cos[:-1]).clamp(max=0.999)   # beta_t, t = 1..T

        cosine = NoiseSchedule.cosine(T)
        print("inline betas equal NoiseSchedule.cosine:", torch.allclose(betas_cos.float(), cosine.betas))
        print(f"beta_1 = {cosine.betas[0].item():.2e}, beta_T = {cosine.betas[-1].item():.3f} (clipped)")
        '''),
        md(r"""
        ## 4. The lab's continuous cosine schedule: signal and noise on the unit circle

        The lab handout (following the Keras DDIM example) starts from the closed form
        $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon$ and names its two coefficients:
        $$
        \text{signal rate} = \sqrt{\bar\alpha_t}, \qquad \text{noise rate} = \sqrt{1 - \bar\alpha_t},
        \qquad \text{signal rate}^2 + \text{noise rate}^2 = 1 .
        $$
        If $x_0$ and $\epsilon$ both have unit variance, then $\mathrm{Var}(x_t) = 1$ at every $t$. The pair
        (signal rate, noise rate) is a point on the unit circle, $(\cos\theta, \sin\theta)$, so a schedule is just a
        way of moving an **angle** $\theta$ from near 0 (all signal) to near $\pi/2$ (all noise). The lab moves it
        at constant speed over a *continuous* diffusion time $t \in [0, 1]$:
        $$
        \theta(t) = (1-t)\,\arccos(s_\max) + t\,\arccos(s_\min), \qquad
        \text{signal rate}(t) = \cos\theta(t), \quad \text{noise rate}(t) = \sin\theta(t),
        $$
        with $s_\max = 0.95$ and $s_\min = 0.02$. There is no $T$ here at all: a sampler may pick any times in
        $[0, 1]$. The package's version is `course_utils.schedules.diffusion_schedule`, which returns
        `(noise_rates, signal_rates)` like the lab's function.
        """),
        code('''
        diffusion_times = torch.linspace(0, 1, 1001)                          # continuous time t in [0, 1]
        start_angle = math.acos(0.95)                                         # theta(0) = arccos(max_signal_rate)
        end_angle = math.acos(0.02)                                           # theta(1) = arccos(min_signal_rate)
        angles = (1 - diffusion_times) * start_angle + diffusion_times * end_angle   # theta(t)
        signal_rates_inline, noise_rates_inline = torch.cos(angles), torch.sin(angles)

        noise_rates, signal_rates = diffusion_schedule(diffusion_times)      # the package (note the order)
        print("inline rates equal diffusion_schedule:",
              torch.allclose(signal_rates, signal_rates_inline) and torch.allclose(noise_rates, noise_rates_inline))
        print("max |signal^2 + noise^2 - 1| =", f"{(signal_rates**2 + noise_rates**2 - 1).abs().max().item():.1e}")
        '''),
        md(r"""
        The unit circle is not special to the lab: **every** schedule has
        $\sqrt{\bar\alpha_t}^2 + \sqrt{1-\bar\alpha_t}^2 = 1$, so every schedule walks along the same quarter circle.
        What differs is only the *speed* of the walk, the angle $\theta = \arccos\sqrt{\bar\alpha_t}$ as a function of
        time. The left panel marks where each schedule is at $t/T = 0, 0.25, 0.5, 0.75$ and $1$; the right panel
        plots the angle against time.
        """),
        code(r'''
        quarter = torch.linspace(0, math.pi / 2, 200)
        frac = torch.arange(T) / T                                            # code index t -> t/T
        marks = [0.0, 0.25, 0.5, 0.75, 1.0]
        curves = {
            "linear (Ho et al.)": (frac, linear.sqrt_alpha_bar, linear.sqrt_one_minus_alpha_bar),
            "cosine (Nichol & Dhariwal)": (frac, cosine.sqrt_alpha_bar, cosine.sqrt_one_minus_alpha_bar),
            "lab continuous cosine": (diffusion_times, signal_rates, noise_rates),
        }

        fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.5))
        ax0.plot(torch.cos(quarter), torch.sin(quarter), color="lightgray", lw=6, label="unit circle")
        for (label, (times, signal, noise)), marker in zip(curves.items(), ["o", "s", "^"]):
            idx = [min(int(m * (len(times) - 1) + 0.5), len(times) - 1) for m in marks]
            ax0.plot(signal[idx], noise[idx], marker, ms=8, label=label)
            ax1.plot(times, torch.arccos(signal.clamp(max=1)), label=label)
        for m, (x, y) in zip(marks, zip(cosine.sqrt_alpha_bar[[0, 250, 500, 750, 999]],
                                        cosine.sqrt_one_minus_alpha_bar[[0, 250, 500, 750, 999]])):
            ax0.annotate(f"cosine t/T={m}", (x, y), textcoords="offset points", xytext=(8, 2), fontsize=8)
        ax0.set_xlabel(r"signal rate $\sqrt{\bar\alpha_t}$"), ax0.set_ylabel(r"noise rate $\sqrt{1-\bar\alpha_t}$")
        ax0.set_aspect("equal"), ax0.legend(fontsize=8, loc="lower left")
        ax0.set_title("where each schedule is at t/T = 0, 0.25, 0.5, 0.75, 1")
        ax1.set_xlabel("t / T (diffusion time)"), ax1.set_ylabel(r"angle $\theta = \arccos\sqrt{\bar\alpha_t}$ (rad)")
        ax1.axhline(math.pi / 2, color="gray", ls=":"), ax1.legend(fontsize=8)
        ax1.set_title("the speed of the walk along the circle")
        fig.tight_layout()
        plt.show()
        '''),
        md(r"""
        **What to notice.**
        - Both cosine schedules move the angle at an almost **constant speed**: Nichol and Dhariwal's $\bar\alpha_t$
          is $\cos^2$ of an angle linear in $t$, up to the normalisation by $f(0)$. The two differ mainly at the
          ends: the lab starts at $\theta = \arccos 0.95 \approx 0.32$ (some noise even at $t = 0$) and stops at
          $\arccos 0.02$, just short of $\pi/2$.
        - The linear schedule races ahead: by $t/T = 0.5$ its angle is already close to $\pi/2$ (on the circle,
          its markers for $t/T = 0.75$ and $1$ sit on top of each other at the top), and for the
          second half of the chain it crawls along the last few degrees of the circle, where there is almost no
          signal left.

        ## 5. All three schedules side by side

        `course_utils.viz.plot_schedules` draws $\beta_t$ (log scale), $\bar\alpha_t$ and the
        **log signal-to-noise ratio**
        $$
        \log \mathrm{SNR}(t) = \log \frac{\bar\alpha_t}{1 - \bar\alpha_t}
        = 2 \log \frac{\text{signal rate}}{\text{noise rate}}
        $$
        for the discrete schedules. We add the lab's continuous schedule to the same axes with
        $\bar\alpha = \text{signal rate}^2$ over $t \in [0, 1]$; its $\beta$ is that of a discretisation into
        $T = 1000$ steps, $\beta_i = 1 - \bar\alpha(t_i) / \bar\alpha(t_{i-1})$ with $t_i = i/T$.
        """),
        code(r'''
        axes = plot_schedules({"linear (Ho et al.)": linear, "cosine (Nichol & Dhariwal)": cosine})
        alpha_bar_lab = signal_rates ** 2                                     # alpha_bar(t) = signal_rate(t)^2
        grid_T = torch.arange(T + 1) * (len(diffusion_times) - 1) // T        # the times i/T on the 1001-point grid
        betas_lab = 1 - alpha_bar_lab[grid_T][1:] / alpha_bar_lab[grid_T][:-1] # beta_i of a T-step discretisation
        axes[0].plot(diffusion_times[grid_T][1:], betas_lab, "--", label="lab continuous cosine")
        axes[1].plot(diffusion_times, alpha_bar_lab, "--", label="lab continuous cosine")
        axes[2].plot(diffusion_times, torch.log(alpha_bar_lab) - torch.log1p(-alpha_bar_lab), "--",
                     label="lab continuous cosine")
        axes[0].set_ylabel(r"$\beta_t$ (log scale)"), axes[1].set_ylabel(r"$\bar\alpha_t$"), axes[2].set_ylabel("log-SNR")
        for ax in axes:
            ax.legend(fontsize=8)
        plt.tight_layout()
        plt.show()
        '''),
        md(r"""
        **What to notice.**
        - **$\beta_t$:** the linear betas are a straight line on a linear axis (a curve on this log axis);
          the cosine betas start even smaller, stay small for most of the chain and shoot up at the end,
          where they hit the 0.999 clip.
        - **$\bar\alpha_t$:** the linear curve is near 0 from $t/T \approx 0.6$ on; the cosine curves fall almost
          linearly through the middle. The lab's curve starts at $0.95^2 = 0.9025$, not at 1.
        - **log-SNR:** the cosine schedules spend their steps evenly across noise levels (a nearly straight
          line in the middle); the linear schedule drops to a log-SNR of $-5$ (SNR below 1%) by about
          $t/T = 0.7$ and then keeps going down, to about $-10$. Those last steps all look like pure noise.

        ## 6. Why the linear schedule destroys a small image too early

        Nichol and Dhariwal noticed that on low-resolution images (64x64 and 32x32 in their experiments) the end of the linear
        schedule is wasted: $x_t$ is already indistinguishable from noise, so those steps teach the network
        little, and leaving out the last 20% of them hardly changed the model's quality. Let us look at it with
        our own eyes. Here are $\bar\alpha_t$ at a few fractions of the chain:
        """),
        code('''
        # NBVAL_CHECK_OUTPUT
        def lab_alpha_bar(frac):
            _, signal = diffusion_schedule(torch.tensor([frac], dtype=torch.float64))
            return (signal ** 2).item()

        print(f"{'t/T':>5} {'linear':>9} {'cosine':>9} {'lab':>9}")
        for frac_t in [0.25, 0.5, 0.75]:
            t = int(frac_t * T)
            print(f"{frac_t:5.2f} {linear.alpha_bar[t].item():9.4f} {cosine.alpha_bar[t].item():9.4f} "
                  f"{lab_alpha_bar(frac_t):9.4f}")
        '''),
        md(r"""
        Half-way through the chain the linear schedule has kept $\bar\alpha_t \approx 0.08$: a signal rate of
        $\sqrt{0.08} \approx 0.28$ against a noise rate of $0.96$. Nichol and Dhariwal's cosine schedule still
        keeps about half of the signal variance, the lab's schedule about a third. Now the same digit, with the **same noise $\epsilon$**, noised at the same $t/T$
        under each schedule (images are always shown on the fixed range $[-1, 1]$; values outside are clipped):
        """),
        code(r'''
        x_images, _, source = load_images_or_digits("mnist", split="test", limit=NUM_IMAGES)   # (N, 1, H, W) in [-1, 1]
        x0 = x_images[:1].to(device)                                          # one digit, (1, 1, H, W)
        fracs = torch.linspace(0, 1, 11)[:-1]                                 # t/T = 0, 0.1, ..., 0.9
        ts = (fracs * T).round().long()
        eps = torch.randn((len(ts), *x0.shape[1:]), generator=torch.Generator().manual_seed(0)).to(device)

        fig, axes = plt.subplots(3, 1, figsize=(11, 4.6))
        for ax, (label, sched) in zip(axes[:2], [("linear", linear), ("cosine", cosine)]):
            xt = q_sample(x0.expand_as(eps), ts.to(device), eps, sched.to(device))
            show_images(xt, nrow=len(ts), ax=ax, title=label)
        noise_lab, signal_lab = diffusion_schedule(fracs.to(device))
        xt_lab = signal_lab[:, None, None, None] * x0 + noise_lab[:, None, None, None] * eps   # lab: continuous t = t/T
        show_images(xt_lab, nrow=len(ts), ax=axes[2], title="lab continuous cosine")
        fig.suptitle(f"one {source} test digit noised at t/T = " + ", ".join(f"{f:.1f}" for f in fracs), y=1.0)
        fig.tight_layout()
        plt.show()
        '''),
        md(r"""
        **What to notice.** Under the linear schedule the digit is hard to make out from $t/T = 0.5$ on and gone
        by $0.6$; the remaining 40% of the chain is noise looking at noise. Under the cosine schedules the
        digit fades steadily and can still be made out at $t/T = 0.7$.

        To put a number on "how much of the image is left", measure the correlation between $x_t$ and $x_0$
        over the pixels of many test images. For unit-variance data it would be exactly $\sqrt{\bar\alpha_t}$;
        for real digits (mostly black background) it is a little lower:
        """),
        code(r'''
        x_many = x_images.to(device)                                          # (N, 1, H, W)
        eps_many = torch.randn(x_many.shape, generator=torch.Generator().manual_seed(1)).to(device)
        t_grid = torch.arange(0, T, 10)


        def correlation_with_x0(sched):
            """Mean over images of the Pearson correlation between the pixels of x_t and of x_0, for each t."""
            out = []
            for t in t_grid.tolist():
                xt = q_sample(x_many, torch.full((len(x_many),), t, device=device), eps_many, sched)
                a = x_many.flatten(1) - x_many.flatten(1).mean(1, keepdim=True)
                b = xt.flatten(1) - xt.flatten(1).mean(1, keepdim=True)
                out.append((F.cosine_similarity(a, b, dim=1)).mean().item())
            return out


        plt.figure(figsize=(6, 3.8))
        for label, sched in [("linear", linear), ("cosine", cosine)]:
            corr = torch.tensor(correlation_with_x0(sched.to(device)))
            plt.plot(t_grid / T, corr, label=label)
            below = t_grid[corr < 0.1]
            print(f"{label:>7}: correlation with x_0 falls below 0.1 at t/T = {below[0].item() / T:.2f}")
        plt.axhline(0.1, color="gray", ls=":", label="correlation 0.1")
        plt.xlabel("t / T"), plt.ylabel(r"corr($x_t$, $x_0$) over pixels")
        plt.title(f"how much of the image is left ({len(x_many)} {source} test images)")
        plt.legend()
        plt.show()
        '''),
        md(r"""
        **Why "at low resolution"?** The noise is independent from pixel to pixel, while an image is smooth: at
        higher resolution one stroke of a digit covers many pixels, and the eye (or a network) averages them, so
        the same per-pixel noise level hides much less. Here is one digit upscaled to 4x its size and noised
        with the linear schedule at $t/T = 0.5$, next to the original size with the same $\bar\alpha_t$:
        """),
        code(r'''
        t_half = torch.tensor([T // 2], device=device)
        x0_big = F.interpolate(x0, scale_factor=4, mode="bilinear", align_corners=False).clamp(-1, 1)   # (1, 1, 4H, 4W)
        gen = torch.Generator().manual_seed(2)
        xt_small = q_sample(x0, t_half, torch.randn(x0.shape, generator=gen).to(device), linear.to(device))
        xt_big = q_sample(x0_big, t_half, torch.randn(x0_big.shape, generator=gen).to(device), linear.to(device))
        xt_big_pooled = F.avg_pool2d(xt_big, 4)                              # mean of each 4x4 block, (1, 1, H, W)

        fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.8))
        show_images(xt_small, ax=axes[0], title=f"{x0.shape[-1]}x{x0.shape[-1]}, linear, t/T = 0.5")
        show_images(xt_big, ax=axes[1], title=f"{x0_big.shape[-1]}x{x0_big.shape[-1]}, linear, t/T = 0.5")
        show_images(xt_big_pooled, ax=axes[2], title=f"the {x0_big.shape[-1]}x{x0_big.shape[-1]} one,\n"
                    "each 4x4 block averaged")
        fig.suptitle(r"same $\bar\alpha_t$ = " + f"{linear.alpha_bar[T // 2].item():.3f}, same noise level per pixel")
        fig.tight_layout()
        plt.show()
        '''),
        md(r"""
        In the large version the digit can be made out if you look from a distance, and averaging each 4x4 block,
        the crudest denoiser there is, makes it plain: 16 noisy copies of each value cut the noise's standard
        deviation by 4 while keeping the signal (dim, since only $\sqrt{\bar\alpha_t} \approx 0.28$ of it is left;
        the display range stays fixed). The small image has no such redundancy to exploit. This is why
        the linear schedule worked well for DDPM's 256x256 images but wastes steps on 28x28 digits, and why
        later work (e.g. Hoogeboom et al. 2023, "simple diffusion") *shifts* the schedule with the resolution.

        ## 7. Explore: pick a schedule and $T$

        `course_utils.widgets.schedule_explorer` redraws the three curves of the chosen schedule and the digit
        noised at eight evenly spaced $t/T$ (the noise $\epsilon$ stays fixed, so only the schedule changes).
        Things to try:
        - **linear, $T = 100$**: the betas still stop at 0.02, so $\bar\alpha_T = \prod (1-\beta_t)$ is about
          $e^{-1}$: the chain **never reaches noise**, and sampling from $\mathcal N(0, I)$ would start from the
          wrong distribution. The linear schedule's betas must be rescaled with $T$.
        - **cosine, any $T$**: $\bar\alpha$ is a function of $t/T$ only, so the curves do not move when $T$ changes.
        - **lab continuous cosine**: it has no $T$; the slider only changes how finely it is discretised
          (its first $\beta$ is large because its $\bar\alpha$ starts at 0.9025 rather than at 1).
        """),
        code('''
        schedule_explorer(x0, device=device)
        '''),
        md(r"""
        ## Summary

        - A schedule is the sequence $\beta_1..\beta_T$; $\bar\alpha_t = \prod_{s\le t}(1-\beta_s)$ is the share
          of signal variance left at step $t$, and $(\sqrt{\bar\alpha_t}, \sqrt{1-\bar\alpha_t})$ walks along the
          unit circle.
        - Linear (Ho et al.): betas $10^{-4} \to 0.02$ over $T = 1000$ steps; on small images it reaches pure
          noise by $t/T \approx 0.6$.
        - Cosine (Nichol and Dhariwal): $\bar\alpha_t = f(t)/f(0)$ with $f = \cos^2$; signal fades at a steady
          pace, and the curves depend on $t/T$ only.
        - Lab: a continuous time $t \in [0, 1]$, angle linear in $t$, signal rate $\cos\theta$, noise rate
          $\sin\theta$, clipped to signal rates in $[0.02, 0.95]$.

        **Next:** lesson 2 (`02_forward_process.ipynb`) shows why $x_t = \sqrt{\bar\alpha_t}x_0 + \sqrt{1-\bar\alpha_t}\epsilon$
        holds, and what the reverse step looks like.

        **Exercises:** open the worksheet [`exercises/01_schedules.ipynb`](../exercises/01_schedules.ipynb).
        """),
    ])


# ----------------------------------------------------------------------------------------------------- lesson 2
def lesson_02():
    return notebook([
        md(r"""
        # Lesson 2: The forward process

        Lesson 1 chose *how much* noise to add at each step. This lesson is about the process itself:

        1. the Markov chain $q(x_t \mid x_{t-1})$, one small step at a time;
        2. its **closed form** $q(x_t \mid x_0)$, which jumps to any $t$ in one go, and an empirical check that
           the two agree (means, variances, histograms);
        3. a digit noised at a $t$ of your choice (a slider);
        4. the true **posterior** $q(x_{t-1} \mid x_t, x_0)$, the target that the reverse process imitates, and its
           variance $\tilde\beta_t$ next to $\beta_t$;
        5. 2-D toy data diffusing into a Gaussian, as a row of snapshots and as an animation.

        No training here either; the notebook runs in well under a minute.
        """),
        code(COLAB),
        code('''
        import math

        import matplotlib.pyplot as plt
        import torch
        from IPython.display import HTML

        from course_utils.data import load_images_or_digits, make_toy
        from course_utils.device import get_device
        from course_utils.forward import q_posterior, q_sample, q_sample_chain
        from course_utils.schedules import NoiseSchedule
        from course_utils.settings import pick, quick_mode
        from course_utils.viz import animate_trajectory, plot_points, show_images
        from course_utils.widgets import noising_explorer

        torch.manual_seed(0)
        device = get_device()
        NUM_COPIES = pick(4000, 800)     # copies of one digit pushed through the chain (empirical check)
        NUM_POINTS = pick(2000, 1000)    # 2-D toy points
        NUM_FRAMES = pick(30, 15)        # frames of the animation
        T = 1000
        schedule = NoiseSchedule.linear(T).to(device)      # DDPM's schedule; everything below works for any
        print(f"device: {device}, quick mode: {quick_mode()}, copies: {NUM_COPIES}, points: {NUM_POINTS}")
        '''),
        md(r"""
        ## 1. The Markov chain $q(x_t \mid x_{t-1})$

        The forward process adds noise one step at a time (DDPM, Eq. 2):
        $$
        q(x_t \mid x_{t-1}) = \mathcal N\big(x_t;\ \sqrt{\alpha_t}\,x_{t-1},\ \beta_t I\big)
        \quad\Longleftrightarrow\quad
        x_t = \sqrt{\alpha_t}\,x_{t-1} + \sqrt{\beta_t}\,\epsilon_t, \quad \epsilon_t \sim \mathcal N(0, I),
        $$
        with a fresh $\epsilon_t$ at every step. It is a *Markov* chain: $x_t$ depends on the past only through
        $x_{t-1}$. Every step shrinks the signal a little ($\sqrt{\alpha_t} < 1$) and adds a little noise.
        Written out, the chain is a loop; `q_sample_chain` runs the same loop (with `return_all=True` it keeps
        every state). Let us push one digit through it:
        """),
        code(r'''
        x_images, _, source = load_images_or_digits("mnist", split="test", limit=16)   # (16, 1, H, W) in [-1, 1]
        x0 = x_images[:1].to(device)                                          # (1, 1, H, W)


        def chain_inline(x0, t, schedule, generator):
            """x_s = sqrt(alpha_s) x_{s-1} + sqrt(beta_s) eps_s for s = 0..t (code indices); returns x_t."""
            x = x0
            for s in range(t + 1):
                eps = torch.randn(x.shape, generator=generator, device=x.device)
                x = schedule.alphas[s].sqrt() * x + schedule.betas[s].sqrt() * eps
            return x


        ours = chain_inline(x0, 99, schedule, torch.Generator(device=device).manual_seed(0))
        package = q_sample_chain(x0, 99, schedule, generator=torch.Generator(device=device).manual_seed(0))
        print("inline chain equals q_sample_chain (same seed):", torch.allclose(ours, package))

        states = q_sample_chain(x0, T - 1, schedule, generator=torch.Generator(device=device).manual_seed(0),
                                return_all=True)                              # (T + 1, 1, 1, H, W): x_0 first
        show_at = [0, 50, 100, 200, 300, 400, 500, 600, 800, 1000]
        show_images(states[show_at, 0], nrow=len(show_at), figsize=(11, 1.8),
                    title="the chain, one step at a time: states after " + ", ".join(map(str, show_at)) + " steps")
        plt.show()
        '''),
        md(r"""
        ## 2. The closed form $q(x_t \mid x_0)$

        A sum of independent Gaussians is Gaussian, so we can unroll the chain. Two steps:
        $$
        x_t = \sqrt{\alpha_t}\big(\sqrt{\alpha_{t-1}}\,x_{t-2} + \sqrt{\beta_{t-1}}\,\epsilon_{t-1}\big) + \sqrt{\beta_t}\,\epsilon_t
        = \sqrt{\alpha_t\alpha_{t-1}}\,x_{t-2} + \underbrace{\sqrt{\alpha_t\beta_{t-1}}\,\epsilon_{t-1} + \sqrt{\beta_t}\,\epsilon_t}_{\text{variance } \alpha_t(1-\alpha_{t-1}) + 1 - \alpha_t \;=\; 1 - \alpha_t\alpha_{t-1}} .
        $$
        By induction, after $t$ steps the coefficient of $x_0$ is $\sqrt{\bar\alpha_t}$ and the noise variance is
        $1 - \bar\alpha_t$ (DDPM, Eq. 4):
        $$
        q(x_t \mid x_0) = \mathcal N\big(x_t;\ \sqrt{\bar\alpha_t}\,x_0,\ (1-\bar\alpha_t) I\big)
        \quad\Longleftrightarrow\quad
        x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon .
        $$
        This is what makes training cheap: a training example at step $t$ costs one line, not $t$ steps.
        The induction step for the variance, $1 - \bar\alpha_t = \alpha_t(1 - \bar\alpha_{t-1}) + \beta_t$, can be
        checked on the whole schedule at once:
        """),
        code('''
        # NBVAL_CHECK_OUTPUT
        var_closed = 1 - schedule.alpha_bar.double()                                   # 1 - alpha_bar_t
        var_recursion = schedule.alphas.double() * (1 - schedule.alpha_bar_prev.double()) + schedule.betas.double()
        print("1 - alpha_bar_t == alpha_t (1 - alpha_bar_{t-1}) + beta_t for every t:",
              torch.allclose(var_closed, var_recursion, atol=1e-6))
        '''),
        md(r"""
        ### The chain and the closed form agree, empirically

        The closed form is a statement about *distributions*: a single run of the chain and a single draw of
        `q_sample` give different images. So take many copies of the same digit, run each through $t$ steps of
        the chain, and draw as many samples of the closed form directly. Per pixel, both sets should have mean
        $\sqrt{\bar\alpha_t}\,x_0$ and variance $1-\bar\alpha_t$.
        """),
        code(r'''
        t_check = 300
        copies = x0.expand(NUM_COPIES, -1, -1, -1)                                         # (N, 1, H, W)
        x_chain = q_sample_chain(copies, t_check, schedule, generator=torch.Generator(device=device).manual_seed(1))
        eps = torch.randn(copies.shape, generator=torch.Generator(device=device).manual_seed(2), device=device)
        x_closed = q_sample(copies, torch.full((NUM_COPIES,), t_check, device=device), eps, schedule)

        mean_theory = schedule.sqrt_alpha_bar[t_check] * x0[0]                             # sqrt(alpha_bar_t) x_0
        var_theory = 1 - schedule.alpha_bar[t_check]                                       # 1 - alpha_bar_t
        se_mean = (var_theory / NUM_COPIES).sqrt()                                         # standard error of a mean
        se_var = var_theory * math.sqrt(2 / (NUM_COPIES - 1))                              # ... of a Gaussian variance
        print(f"t = {t_check}: alpha_bar_t = {schedule.alpha_bar[t_check]:.4f}, {NUM_COPIES} copies, "
              f"{x0[0].numel()} pixels")
        for name, x in [("chain", x_chain), ("closed form", x_closed)]:
            mean_err = (x.mean(0) - mean_theory).abs().max() / se_mean
            var_err = (x.var(0) - var_theory).abs().max() / se_var
            print(f"{name:>12}: largest deviation over all pixels: mean {mean_err:.2f} standard errors, "
                  f"variance {var_err:.2f} standard errors")
        '''),
        md(r"""
        With hundreds of pixels, the *largest* deviation of a correct sampler is typically 3-4 standard errors
        (the maximum of ~800 standard normals); a wrong coefficient would be off by dozens. A pass/fail version,
        with a threshold of 5.5 standard errors:
        """),
        code('''
        # NBVAL_CHECK_OUTPUT
        for name, x in [("chain", x_chain), ("closed form", x_closed)]:
            ok_mean = bool(((x.mean(0) - mean_theory).abs() / se_mean).max() < 5.5)
            ok_var = bool(((x.var(0) - var_theory).abs() / se_var).max() < 5.5)
            print(f"{name}: mean matches sqrt(alpha_bar_t) x_0: {ok_mean}; variance matches 1 - alpha_bar_t: {ok_var}")
        '''),
        md(r"""
        And the whole distribution, not just two moments: histograms of one stroke pixel ($x_0 = +1$ there)
        and one background pixel ($x_0 = -1$), from both samplers, over the density of
        $\mathcal N(\sqrt{\bar\alpha_t}\,x_0,\ 1-\bar\alpha_t)$:
        """),
        code(r'''
        flat0 = x0[0].flatten()
        pixels = {"stroke pixel": int(flat0.argmax()), "background pixel": int(flat0.argmin())}
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
        for ax, (label, p) in zip(axes, pixels.items()):
            mu, sd = mean_theory.flatten()[p].item(), var_theory.sqrt().item()
            grid = torch.linspace(mu - 4 * sd, mu + 4 * sd, 200)
            ax.hist(x_chain.flatten(1)[:, p].cpu(), bins=50, density=True, alpha=0.5, label="Markov chain, 301 steps")
            ax.hist(x_closed.flatten(1)[:, p].cpu(), bins=50, density=True, alpha=0.5, label="closed form q_sample")
            ax.plot(grid, torch.exp(-(grid - mu) ** 2 / (2 * sd ** 2)) / (sd * math.sqrt(2 * math.pi)), "k--",
                    label=rf"$\mathcal{{N}}({mu:.2f}, {sd ** 2:.2f})$")
            ax.set_xlabel(f"value of x_t at the {label} (x_0 = {flat0[p].item():+.0f})"), ax.set_ylabel("density")
            ax.set_title(f"{label}, t = {t_check}"), ax.legend(fontsize=8)
        fig.tight_layout()
        plt.show()
        '''),
        md(r"""
        **What to notice.** The two histograms lie on top of each other and on the dashed density; the two
        pixels differ only by the *mean* $\pm\sqrt{\bar\alpha_t}$, the spread is the same everywhere. That shift
        of the mean is all that is left of the image at step $t$.

        ## 3. A digit noised at a chosen $t$

        Move the slider: the same eight digits, with the same $\epsilon$, noised with the closed form at step $t$
        under the linear and the cosine schedule. The right panel is the histogram of all pixel values of
        $x_t$; it starts as two spikes at $-1$ and $+1$ (MNIST pixels are mostly black or white) and melts into
        $\mathcal N(0, 1)$.
        """),
        code('''
        noising_explorer(x_images[:8], {"linear": NoiseSchedule.linear(T), "cosine": NoiseSchedule.cosine(T)},
                         device=device)
        '''),
        md(r"""
        ## 4. The true posterior $q(x_{t-1} \mid x_t, x_0)$

        Generation runs the chain backwards, and needs $q(x_{t-1} \mid x_t)$, which depends on the whole data
        distribution and is intractable. But if we also know $x_0$, Bayes' rule on two Gaussians gives a
        Gaussian in closed form (DDPM, Eqs. 6-7):
        $$
        q(x_{t-1} \mid x_t, x_0) = \mathcal N\big(x_{t-1};\ \tilde\mu_t(x_t, x_0),\ \tilde\beta_t I\big),
        $$
        $$
        \tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t}\,x_0
                    + \frac{\sqrt{\alpha_t}\,(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}\,x_t,
        \qquad
        \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\,\beta_t .
        $$
        The reverse process $p_\theta(x_{t-1} \mid x_t)$ is trained to match it, with the network's guess of
        $x_0$ in place of the true one (lesson 5). `q_posterior(x0, xt, t, schedule)` returns $\tilde\mu_t$ and
        $\tilde\beta_t$.

        **Checking Bayes' rule by simulation.** Fix a scalar $x_0$, draw many pairs: $x_{t-1} \sim q(x_{t-1}\mid x_0)$
        (closed form), then $x_t$ by one step of the chain. Within these pairs, $x_{t-1}$ given $x_t$ is Gaussian
        with a mean linear in $x_t$; a least-squares fit of $x_{t-1}$ on $x_t$ must recover the slope
        (coefficient of $x_t$), the intercept (coefficient of $x_0$ times $x_0$) and, as the residual variance,
        $\tilde\beta_t$.
        """),
        code(r'''
        n_pairs, x0_value = 50 * NUM_COPIES, 0.7
        gen = torch.Generator(device=device).manual_seed(3)
        print(f"{'t':>4} {'':>10} {'slope':>8} {'intercept':>10} {'variance':>10}")
        for t in [1, 10, 100, 500]:
            x0_pairs = torch.full((n_pairs, 1), x0_value, device=device)
            t_prev = torch.full((n_pairs,), t - 1, device=device)
            x_prev = q_sample(x0_pairs, t_prev, torch.randn(x0_pairs.shape, generator=gen, device=device), schedule)
            x_t = schedule.alphas[t].sqrt() * x_prev + schedule.betas[t].sqrt() * torch.randn(
                x_prev.shape, generator=gen, device=device)                            # one step of the chain
            A = torch.cat([x_t, torch.ones_like(x_t)], dim=1).double()                # regress x_{t-1} on [x_t, 1]
            coef = torch.linalg.lstsq(A, x_prev.double()).solution.flatten()
            resid_var = (x_prev.double() - A @ coef[:, None]).var().item()
            # the package: the mean is coef_x0 x0 + coef_xt x_t, so read the two coefficients off q_posterior
            probe = torch.tensor([[0.0], [1.0]], device=device)
            mean, var = q_posterior(torch.full_like(probe, x0_value), probe, torch.tensor([t, t], device=device), schedule)
            slope, intercept = (mean[1] - mean[0]).item(), mean[0].item()
            print(f"{t:4d} {'fitted':>10} {coef[0].item():8.4f} {coef[1].item():10.4f} {resid_var:10.2e}")
            print(f"{'':4} {'q_posterior':>10} {slope:8.4f} {intercept:10.4f} {var[0].item():10.2e}")
        '''),
        md(r"""
        The fitted numbers match the formulas to about three digits (the residual error is sampling noise).
        Note the pattern: at small $t$ the mean leans on $x_0$ (intercept large, slope small), at large $t$ it
        leans on $x_t$. In the code, `posterior_variance[0]` is exactly 0: at the first step $x_{t-1}$ *is* $x_0$.

        ### $\tilde\beta_t$ against $\beta_t$

        DDPM's sampler adds noise of variance $\sigma_t^2$ at each reverse step, and the paper tried both
        $\sigma_t^2 = \beta_t$ and $\sigma_t^2 = \tilde\beta_t$, with similar results. Here is why:
        """),
        code(r'''
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
        for label, sched in [("linear", NoiseSchedule.linear(T)), ("cosine", NoiseSchedule.cosine(T))]:
            frac = torch.arange(T) / T
            line, = axes[0].plot(frac, sched.betas, label=rf"$\beta_t$ ({label})")
            axes[0].plot(frac[1:], sched.posterior_variance[1:], "--", color=line.get_color(),
                         label=rf"$\tilde\beta_t$ ({label})")
            axes[1].plot(frac[1:], (sched.posterior_variance / sched.betas)[1:], label=label)
        axes[0].set_xscale("log"), axes[0].set_yscale("log")
        axes[0].set_xlabel("t / T (log scale)"), axes[0].set_ylabel("variance (log scale)")
        axes[0].set_title(r"$\beta_t$ (solid) and $\tilde\beta_t$ (dashed)"), axes[0].legend(fontsize=8)
        axes[1].set_xscale("log"), axes[1].set_xlabel("t / T (log scale)")
        axes[1].set_ylabel(r"$\tilde\beta_t / \beta_t = (1-\bar\alpha_{t-1})/(1-\bar\alpha_t)$")
        axes[1].set_title(r"the ratio $\tilde\beta_t / \beta_t$"), axes[1].legend(fontsize=8)
        fig.tight_layout()
        plt.show()
        '''),
        md(r"""
        **What to notice.** $\tilde\beta_t \le \beta_t$ always (the ratio $(1-\bar\alpha_{t-1})/(1-\bar\alpha_t)$
        is below 1), and the two are practically equal after the first few percent of the chain (the dashed
        curves hide behind the solid ones there). They differ only at the very start, where $\tilde\beta_t \to 0$: knowing $x_0$ pins $x_{t-1}$ down almost exactly.
        These are the two extremes for the reverse noise: $\beta_t$ is right when $x_0$ is pure noise,
        $\tilde\beta_t$ when $x_0$ is a single known point (Ho et al., Sec. 3.2).

        ## 5. 2-D data diffusing into a Gaussian

        Images have hundreds of dimensions; points in the plane show the same process where we can see the
        whole distribution. A Swiss roll, noised with the closed form at several steps:
        """),
        code(r'''
        x_toy, _ = make_toy("swiss_roll", n=NUM_POINTS)                        # (N, 2)
        x_toy = x_toy.to(device)
        colour = x_toy[:, 0].cpu()                                             # colour each point by where it started
        eps_toy = torch.randn(x_toy.shape, generator=torch.Generator(device=device).manual_seed(4), device=device)
        snap_ts = [0, 50, 100, 200, 300, 500, 999]

        fig, axes = plt.subplots(1, len(snap_ts) + 1, figsize=(2.4 * (len(snap_ts) + 1), 2.7))
        for ax, t in zip(axes, snap_ts):
            xt = q_sample(x_toy, torch.full((NUM_POINTS,), t, device=device), eps_toy, schedule)
            plot_points(xt, ax=ax, c=colour, title=rf"t = {t}, $\bar\alpha_t$ = {schedule.alpha_bar[t].item():.2f}")
        plot_points(torch.randn(NUM_POINTS, 2, generator=torch.Generator().manual_seed(5)), ax=axes[-1],
                    title=r"$\mathcal{N}(0, I)$ for reference")
        for ax in axes:
            ax.set_xlabel("$x_1$")
        axes[0].set_ylabel("$x_2$")
        fig.tight_layout()
        plt.show()
        '''),
        md(r"""
        **What to notice.** The roll first blurs (small $t$: each point jitters in place), then shrinks towards
        the origin while the blur grows (the $\sqrt{\bar\alpha_t}$ factor), and by $t = 500$ it is a round blob in
        which the colours, i.e. where each point came from, are thoroughly mixed. The last panel is a fresh
        sample of $\mathcal N(0, I)$: at $t = 999$ the two are indistinguishable. Reversing this, from the blob
        back to the roll, is what a diffusion model learns.

        The same process as an animation, this time run as the Markov chain step by step
        (`q_sample_chain(..., return_all=True)` keeps all $T+1$ states; `animate_trajectory` shows a subset of
        them as frames; press play):
        """),
        code(r'''
        trajectory = q_sample_chain(x_toy, T - 1, schedule, generator=torch.Generator(device=device).manual_seed(6),
                                    return_all=True).cpu()                    # (T + 1, N, 2), x_0 first
        final = trajectory[-1].double()
        mean, cov = final.mean(0), torch.cov(final.T)
        print(f"trajectory: {tuple(trajectory.shape)} (T + 1 states of {NUM_POINTS} points)")
        print(f"final state: mean ({mean[0]:.2f}, {mean[1]:.2f}), "
              f"covariance [[{cov[0, 0]:.2f}, {cov[0, 1]:.2f}], [{cov[1, 0]:.2f}, {cov[1, 1]:.2f}]]")
        with plt.rc_context({"figure.dpi": 80}):                              # small frames keep the notebook light
            animation_html = animate_trajectory(trajectory, num_frames=NUM_FRAMES, interval=150)
        HTML(animation_html)
        '''),
        md(r"""
        The final mean is about $(0, 0)$ and the covariance about the identity: the chain forgets its
        starting distribution. That is why sampling can start from $\mathcal N(0, I)$.

        ## Summary

        - One step: $x_t = \sqrt{\alpha_t}\,x_{t-1} + \sqrt{\beta_t}\,\epsilon_t$. Many steps collapse into one:
          $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon$; we checked that both give the same
          distribution.
        - Given $x_0$, the reverse step is Gaussian with mean $\tilde\mu_t$ (a mix of $x_0$ and $x_t$) and
          variance $\tilde\beta_t \approx \beta_t$ (except at the first steps).
        - Any data distribution diffuses into $\mathcal N(0, I)$.

        **Next:** lesson 3 (`03_unet.ipynb`) builds the network $\epsilon_\theta(x_t, t)$ that will learn to undo
        this process.

        **Exercises:** open the worksheet [`exercises/02_forward.ipynb`](../exercises/02_forward.ipynb).
        """),
    ])


# ----------------------------------------------------------------------------------------------------- lesson 3
def lesson_03():
    return notebook([
        md(r"""
        # Lesson 3: The UNet noise predictor

        The network of a diffusion model, $\epsilon_\theta(x_t, t)$, takes a noisy image and its timestep and
        returns its guess of the noise, **an image of the same shape**. Its two inputs call for two ideas:

        - the timestep $t$ is a single number, and the network must behave very differently at $t = 10$
          (remove a faint grain) and at $t = 900$ (invent a digit): a **time embedding** turns $t$ into a
          vector that every block can use;
        - the output has the input's shape and must be precise to the pixel, yet it needs global context:
          a **UNet** goes down to a coarse resolution and back up, with **skip connections** that carry the
          fine detail across.

        In this lesson: the sinusoidal time embedding; the ResBlock that injects it; self-attention; the UNet
        with its skips, traced shape by shape; parameter counts; and what is left of all this for 2-D points.
        All code is in `course_utils.nets`; here each part is written out once and compared with the package.
        """),
        code(COLAB),
        code('''
        import math

        import matplotlib.pyplot as plt
        import torch
        import torch.nn.functional as F

        from course_utils.data import load_images_or_digits
        from course_utils.device import get_device
        from course_utils.nets import (AttentionBlock, MLPDenoiser, ResBlock, SinusoidalTimeEmbedding, UNet,
                                       count_parameters, sinusoidal_embedding)
        from course_utils.settings import pick, quick_mode
        from course_utils.viz import show_images

        torch.manual_seed(0)
        device = get_device()
        BATCH = pick(16, 4)              # images per forward pass in the timing cell
        print(f"device: {device}, quick mode: {quick_mode()}")
        '''),
        md(r"""
        ## 1. The sinusoidal time embedding

        The Transformer's position encoding (Vaswani et al. 2017, Sec. 3.5), used for timesteps by DDPM: with
        $d$ dimensions and $d/2$ frequencies $\omega_i = 10000^{-i/(d/2)}$, $i = 0..d/2-1$,
        $$
        \mathrm{emb}(t) = \big[\sin(\omega_0 t), \dots, \sin(\omega_{d/2-1} t),\ \cos(\omega_0 t), \dots, \cos(\omega_{d/2-1} t)\big].
        $$
        The frequencies form a geometric series from 1 (period $2\pi$ steps) down to $10^{-4\,(d/2-1)/(d/2)}$, about $1.3\cdot10^{-4}$ for $d = 64$ (period
        $\approx 47{,}000$ steps). Like the bits of a binary counter, the fast dimensions tell neighbouring steps
        apart and the slow ones say roughly where in the chain we are. Every value stays in $[-1, 1]$, whatever
        $t$ is, which a network digests better than a raw $t$ of up to 1000.
        """),
        code('''
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
        '''),
        code('''
        # NBVAL_CHECK_OUTPUT
        print("embedding shape:", tuple(emb.shape))
        print("inline embedding equals course_utils.nets.sinusoidal_embedding:",
              torch.allclose(emb_inline, emb, atol=1e-4))
        '''),
        code(r'''
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.4), gridspec_kw=dict(width_ratios=[1.2, 1]))
        im = axes[0].imshow(emb, aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
        axes[0].set_xlabel("embedding dimension (0-31: sin, 32-63: cos; frequency falls to the right)")
        axes[0].set_ylabel("timestep t")
        axes[0].set_title(f"sinusoidal embedding of t = 0..{T - 1}, d = {dim}")
        fig.colorbar(im, ax=axes[0], label="value")

        unit = F.normalize(emb, dim=1)                             # rows of unit length
        for t_ref in [100, 500, 900]:
            axes[1].plot(t_all, unit @ unit[t_ref], label=f"t = {t_ref}")    # cosine similarity with every t'
        axes[1].set_xlabel("timestep t'"), axes[1].set_ylabel("cosine similarity of emb(t) and emb(t')")
        axes[1].set_title("how similar are the embeddings of t and t'?"), axes[1].legend(fontsize=8)
        fig.tight_layout()
        plt.show()
        '''),
        md(r"""
        **What to notice.** Left: the first columns oscillate fast (period of a few steps), the last ones barely
        change over 1000 steps, so each row (one $t$) is a distinct pattern. Right: the similarity of $\mathrm{emb}(t)$
        with itself is 1, falls quickly over the first few dozen steps and then wanders between about 0 and 0.6 (the slow
        dimensions are shared by all $t$). No two timesteps get the same code, and nearby timesteps get similar
        codes: a good input for a network that should behave smoothly in $t$.

        In the UNet, the embedding goes through a small MLP, `Linear(d, 4d) -> SiLU -> Linear(4d, 4d)`
        (`SinusoidalTimeEmbedding`), so that the network can learn which features of $t$ it needs:
        """),
        code('''
        # NBVAL_CHECK_OUTPUT
        torch.manual_seed(0)
        time_embed = SinusoidalTimeEmbedding(32, 128)
        t = torch.tensor([0, 250, 999])                            # (B,) = (3,)
        print("t:", tuple(t.shape), "-> sinusoidal:", tuple(sinusoidal_embedding(t, 32).shape),
              "-> MLP:", tuple(time_embed(t).shape))
        '''),
        md(r"""
        ## 2. The ResBlock: where the time embedding enters

        The UNet is built of residual blocks (DDPM, Appendix B, after Wide ResNets). Each takes a feature map
        $x$ of shape $(B, C_\text{in}, H, W)$ and the time embedding $e$ of shape $(B, d_e)$:
        $$
        h = \mathrm{Conv}\big(\mathrm{SiLU}(\mathrm{GN}(x))\big) + W\,\mathrm{SiLU}(e), \qquad
        h = \mathrm{Conv}\big(\mathrm{SiLU}(\mathrm{GN}(h))\big), \qquad
        \text{out} = \mathrm{skip}(x) + h .
        $$
        GN is GroupNorm (BatchNorm would mix examples at different $t$). The term $W\,\mathrm{SiLU}(e)$ is one
        number per channel, added at every pixel: the timestep **shifts each channel's activation**, which the
        following nonlinearity turns into "use this feature at this noise level". The skip is a 1x1 convolution
        when the channel count changes, else the identity. Written out with the block's own layers:
        """),
        code('''
        torch.manual_seed(0)
        block = ResBlock(16, 32, temb_dim=128)
        x = torch.randn(2, 16, 14, 14)                             # (B, C_in, H, W)
        temb = torch.randn(2, 128)                                 # (B, d_e)

        h = block.conv1(F.silu(block.norm1(x)))                    # (B, 32, 14, 14)
        h = h + block.temb_proj(F.silu(temb))[:, :, None, None]    # + one value per channel, broadcast over H, W
        h = block.conv2(F.silu(block.norm2(h)))
        out_inline = block.skip(x) + h
        '''),
        code('''
        # NBVAL_CHECK_OUTPUT
        out = block(x, temb)
        print(f"ResBlock(16 -> 32): x {tuple(x.shape)}, temb {tuple(temb.shape)} -> {tuple(out.shape)}")
        print("skip connection:", type(block.skip).__name__, "(a 1x1 conv, since the channels change)")
        print("inline ResBlock equals course_utils.nets.ResBlock:", torch.allclose(out_inline, out, atol=1e-5))
        '''),
        md(r"""
        ## 3. Self-attention

        Convolutions see a small neighbourhood; to relate distant parts of an image (the two ends of a "7"),
        the UNet adds **self-attention** at its coarsest levels. Every pixel position is a token with $C$
        features; after a GroupNorm, a 1x1 convolution makes queries, keys and values, and
        $$
        \mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\Big(\frac{QK^\top}{\sqrt{C}}\Big)V,
        \qquad \text{out} = x + \mathrm{proj}(\mathrm{Attention}(Q, K, V)) .
        $$
        $QK^\top$ has $(HW)^2$ entries: 614,656 per image at 28x28, only 2,401 at 7x7. That is why attention
        lives at low resolution. Written out and compared with `AttentionBlock`:
        """),
        code('''
        torch.manual_seed(0)
        attn = AttentionBlock(32)
        x = torch.randn(2, 32, 7, 7)                               # (B, C, H, W)
        B, C, H, W = x.shape
        qkv = attn.qkv(attn.norm(x)).reshape(B, 3, C, H * W)       # (B, 3, C, HW)
        q, k, v = qkv.transpose(-1, -2).unbind(1)                  # each (B, HW, C): one token per position
        weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(C), dim=-1)   # (B, HW, HW), rows sum to 1
        h = weights @ v                                            # (B, HW, C)
        out_inline = x + attn.proj(h.transpose(-1, -2).reshape(B, C, H, W))
        '''),
        code('''
        # NBVAL_CHECK_OUTPUT
        print(f"attention weights: {tuple(weights.shape)}; output {tuple(attn(x).shape)} (same as the input)")
        print("inline attention equals course_utils.nets.AttentionBlock:", torch.allclose(out_inline, attn(x), atol=1e-5))
        '''),
        md(r"""
        ## 4. The UNet, level by level

        `UNet(base_channels=32, channel_mults=(1, 2, 2), attention_levels=(2,))` for 28x28 MNIST:

        ```
        x_t (B,1,28,28) -- conv_in --> (B,32,28,28) ---------------------------------- skip ----+
          down.0: ResBlock 32->32           @ 28x28  -- skip --+                                 |
                  Conv stride 2             -> 14x14 -- skip --|--+                              |
          down.1: ResBlock 32->64           @ 14x14  -- skip --|--|--+                           |
                  Conv stride 2             ->  7x7  -- skip --|--|--|--+                        |
          down.2: ResBlock 64->64 + Attn    @  7x7   -- skip --|--|--|--|--+                     |
          mid:    ResBlock, Attn, ResBlock  @  7x7             |  |  |  |  |                     |
          up.0:   2 x (concat skip, ResBlock + Attn) @ 7x7  <--|--|--|--+--+  then upsample -> 14x14
          up.1:   2 x (concat skip, ResBlock)        @ 14x14 <-|--+--+        then upsample -> 28x28
          up.2:   2 x (concat skip, ResBlock)        @ 28x28 <-+----------------------------------+
        norm_out, SiLU, conv_out --> eps_pred (B,1,28,28)
        ```
        Going down, each level halves the resolution and may widen the channels (here 32 -> 64 -> 64), so the network sees a
        wider context at each level. Going up, each ResBlock first **concatenates** the feature map saved at the
        same resolution on the way down (the skip), so the fine detail of $x_t$ never has to squeeze through the
        7x7 bottleneck. Every ResBlock also receives the time embedding.

        Forward hooks let us watch the shapes: a hook registered on a module runs after its `forward` and sees
        its output. We print the output of every block of the UNet for a batch of two 28x28 images:
        """),
        code('''
        # NBVAL_CHECK_OUTPUT
        torch.manual_seed(0)
        unet = UNet(in_channels=1, base_channels=32, channel_mults=(1, 2, 2), attention_levels=(2,)).to(device)
        print("config:", unet.config)
        print(f"{'module':<10} {'type':<24} {'input':<18}    output")
        hooks = []


        def print_shape(name):
            def hook(module, inputs, output):
                print(f"{name:<10} {type(module).__name__:<24} {str(tuple(inputs[0].shape)):<18} -> {tuple(output.shape)}")
            return hook


        for name, module in unet.named_modules():
            depth = name.count(".")
            if name in ("time_embed", "conv_in", "norm_out", "conv_out") or (depth == 2 and name.split(".")[0] in ("down", "up")) \\
                    or (depth == 1 and name.startswith("mid")):
                hooks.append(module.register_forward_hook(print_shape(name)))

        xt = torch.randn(2, 1, 28, 28, device=device)              # (B, C, H, W)
        t = torch.tensor([10, 900], device=device)                 # (B,)
        with torch.no_grad():
            eps_pred = unet(xt, t)
        for h in hooks:
            h.remove()
        print("output", tuple(eps_pred.shape), "== input", tuple(xt.shape), ":", eps_pred.shape == xt.shape)
        '''),
        md(r"""
        **Reading the trace.** `time_embed` turns $t$ into a $(2, 128)$ vector, used by every ResBlock. The down
        path goes 28 -> 14 -> 7 with 32, 64, 64 channels; the `Conv2d` entries are the stride-2 downsamplers. In
        the up path each ResBlock's *input* has more channels than its output because of the concatenated skip,
        for instance `up.0.0` takes $64 + 64 = 128$ channels and `up.2.1` takes $32 + 32$. The `_Upsample` layers double the resolution again
        (nearest-neighbour, then a 3x3 conv; it upsamples to the skip's exact size, so 7 -> 14 works for odd
        sizes too). The output has the input's shape, as a noise prediction must.

        What do the levels see? Here are a few channels of the feature maps of an (untrained, randomly
        initialised) UNet at each resolution, for a real digit. The weights are random, so the features mean
        nothing yet; the point is the resolution each level works at.
        """),
        code(r'''
        x_images, _, source = load_images_or_digits("mnist", split="test", limit=4)
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
        '''),
        md(r"""
        (Feature maps are not images in $[-1, 1]$, so here, and only here, each channel is divided by its
        largest absolute value before display.) The 28x28 maps still look like the digit; at 7x7 each "pixel"
        summarises a patch of the input, and the attention layers mix all 49 positions.

        ## 5. Parameter counts

        `count_parameters` sums the trainable parameters. Width (`base_channels`) costs quadratically, since
        each convolution has $C_\text{in} \times C_\text{out} \times 9$ weights; depth and extra levels cost
        linearly:
        """),
        code('''
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
        '''),
        md(r"""
        **What to notice.** Doubling the base width from 32 to 64 multiplies the count by almost 4. Attention
        at every level adds few parameters (a 1x1 conv is cheap) but a lot of compute at 28x28, because of the
        $(HW)^2$ attention matrix. The up path holds more parameters than the down path: it has one more
        ResBlock per level and its inputs are widened by the skips.

        How long one forward pass takes on this machine (not a benchmark; it depends on your hardware):
        """),
        code('''
        import time

        x_batch = torch.randn(BATCH, 1, 28, 28, device=device)
        t_batch = torch.randint(0, 1000, (BATCH,), device=device)
        with torch.no_grad():
            unet(x_batch, t_batch)                                 # warm-up
            start = time.perf_counter()
            for _ in range(3):
                unet(x_batch, t_batch)
            elapsed = (time.perf_counter() - start) / 3
        print(f"base-32 UNet, batch {BATCH} of 28x28 on {device}: {1000 * elapsed:.1f} ms per forward pass")
        '''),
        md(r"""
        ## 6. For 2-D points: an MLP denoiser

        For the toy data of lesson 2, $x_t \in \mathbb R^2$. There is no spatial structure, so the convolutions,
        resolutions and skips all disappear. What stays is the core contract, $(x_t, t) \mapsto \epsilon$ of the
        same shape as $x_t$, and the time embedding. `MLPDenoiser` **concatenates** the embedding to the point
        (with only 2 input numbers, adding a per-channel bias would leave the network little to work with) and
        runs a plain MLP:
        $$
        \epsilon_\theta(x_t, t) = \mathrm{MLP}\big([\,x_t,\ \mathrm{emb}(t)\,]\big) \in \mathbb R^2 .
        $$
        """),
        code('''
        # NBVAL_CHECK_OUTPUT
        torch.manual_seed(0)
        mlp = MLPDenoiser(data_dim=2, hidden_dim=128, time_embed_dim=64, num_layers=3).to(device)
        print("config:", mlp.config)
        hooks = [mlp.time_embed.register_forward_hook(print_shape("time_embed"))]
        hooks += [m.register_forward_hook(print_shape(f"net.{i}")) for i, m in enumerate(mlp.net) if isinstance(m, torch.nn.Linear)]
        with torch.no_grad():
            out = mlp(torch.randn(5, 2, device=device), torch.tensor([0, 10, 100, 500, 999], device=device))
        for h in hooks:
            h.remove()
        print("output", tuple(out.shape))
        print(f"MLPDenoiser: {count_parameters(mlp):,} parameters, "
              f"{count_parameters(unet) / count_parameters(mlp):.0f} times fewer than the base-32 UNet")
        '''),
        md(r"""
        The first linear layer sees $2 + 64 = 66$ numbers: the point and its timestep's embedding. Most of the
        MLP's parameters sit in its time embedding and its hidden layers; it trains in seconds (lesson 4).

        ## Summary

        - The timestep enters as a sinusoidal embedding (multi-frequency, bounded, smooth in $t$), refined by
          an MLP, and added as a per-channel shift inside every ResBlock.
        - The UNet goes down in resolution for context and back up for precision; skip connections carry the
          detail across; attention is used only at low resolution, where $(HW)^2$ is affordable.
        - Output shape = input shape, whatever the architecture: for images a UNet, for points an MLP.

        **Next:** lesson 4 (`04_training.ipynb`) trains these networks.

        **Exercises:** open the worksheet [`exercises/03_unet.ipynb`](../exercises/03_unet.ipynb).
        """),
    ])


BUILDERS = {
    "01_noise_schedules": lesson_01,
    "02_forward_process": lesson_02,
    "03_unet": lesson_03,
}


def main(argv):
    write_lessons(BUILDERS, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
