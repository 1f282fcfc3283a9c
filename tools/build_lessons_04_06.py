"""Write the lessons notebooks/04_training.ipynb, 05_ddpm_vs_ddim.ipynb and 06_guidance.ipynb (without outputs).

The notebooks are generated from this one source so that they stay consistent; execute them afterwards, e.g.

    python tools/build_lessons_04_06.py
    COURSE_DATA_DIR=/work/shared/data jupyter nbconvert --to notebook --execute --inplace notebooks/04_training.ipynb

Markdown cells are plain strings; code cells are strings passed to ``code``. Cells whose output must be the same
in quick and full mode start with ``# NBVAL_CHECK_OUTPUT``.
"""
from __future__ import annotations

import sys

import lesson_cells
from lesson_cells import COLAB, notebook, write_lessons  # tools/ (this script's folder)

# Measured wall times of the full runs (filled in from the executed notebooks; see the report of this builder).
TIMES = {
    "06_total": "About 6 minutes",
    "06_steps": "50",
    "06_n_per_class": "20",
    "05_total": "About 6 minutes (326 s measured on an idle 2-core AVX2 CPU, in float32)",
    "05_n_eval": "48",
    "04_toy": "about 30 seconds",
    "04_image": "about 9 minutes",
    "04_total": "about 10 minutes in float32 (593 s measured on a 2-core AVX2 CPU while another job ran; a CPU with native bfloat16 trains about twice as fast)",
}


def md(text: str):
    return lesson_cells.md(text, TIMES)


def code(text: str):
    return lesson_cells.code(text, TIMES)


# A loader shared by the three lessons: the pretrained models come from course_utils.checkpoints.
LOAD_PRETRAINED = '''\
try:
    from course_utils import checkpoints
except ImportError:          # an installation without pretrained models
    checkpoints = None


def load_pretrained(*names):
    """The first of ``names`` that is available: (name, model, schedule, card), or None if none is."""
    for name in names:
        if checkpoints is not None and name in checkpoints.available():
            model, schedule, card = checkpoints.load(name, device=device)
            return name, model.eval(), schedule, card
        print(f"pretrained model {name!r} is not available in this installation")
    return None'''


# ----------------------------------------------------------------------------------------------------- lesson 4
def lesson_04():
    return notebook([
        md("""
        # Lesson 4: Training a diffusion model

        Lessons 1-3 built the pieces: a noise schedule, the forward process $q(x_t \\mid x_0)$ and a UNet
        $\\epsilon_\\theta(x_t, t)$. This lesson puts them together and **trains** a noise predictor.

        1. The *simple loss* of DDPM (Ho et al. 2020, Algorithm 1), written out line by line and checked
           against `course_utils.training.diffusion_loss`.
        2. A 2-D toy model that trains in seconds; we watch its samples form during training.
        3. A small image model (a base-32 UNet on scikit-learn's digits at 16x16) with the tricks that make
           diffusion training work in practice: EMA of the weights (with a warm-up), gradient clipping,
           mixed precision, a progress bar and a live loss plot.
        4. Checkpoints: train half-way, stop, resume in a fresh model, and see that the run simply continues.
        5. A pretrained checkpoint of the same UNet on the same data, to compare with your few-minute model.

        **Time.** The whole lesson takes @@04_total@@ on a 2-core CPU (the image model is
        @@04_image@@ of it), much less on a GPU. With `COURSE_QUICK=1` every training run is
        shortened so that the notebook runs in about a minute; the samples then stay blurry, which is expected.
        """),
        code(COLAB),
        code('''
        import dataclasses
        import math
        import tempfile
        import time
        from pathlib import Path

        import matplotlib.pyplot as plt
        import torch
        import ipywidgets as widgets
        from IPython.display import display

        from course_utils.data import load_images, make_toy
        from course_utils.device import get_device
        from course_utils.nets import MLPDenoiser, UNet, count_parameters
        from course_utils.samplers import ddim_sample, ddpm_sample
        from course_utils.schedules import NoiseSchedule
        from course_utils.settings import pick, quick_mode
        from course_utils.training import TrainConfig, autocast_dtype, diffusion_loss, train
        from course_utils.viz import plot_loss, plot_points, show_images

        torch.manual_seed(0)
        device = get_device()
        TOY_STEPS = pick(3000, 400)      # optimizer steps of the 2-D model
        IMAGE_STEPS = pick(1200, 40)     # optimizer steps of the image model (two halves of IMAGE_STEPS // 2)
        print(f"device: {device}, quick mode: {quick_mode()}, toy steps: {TOY_STEPS}, image steps: {IMAGE_STEPS}")
        '''),
        md(r"""
        ## 1. The simple loss (Algorithm 1)

        Training a DDPM repeats four lines (Ho et al. 2020, Algorithm 1):

        1. take a clean example $x_0 \sim q(x_0)$;
        2. pick a timestep $t \sim \mathrm{Uniform}(\{1, \dots, T\})$;
        3. draw noise $\epsilon \sim \mathcal N(0, I)$;
        4. take a gradient step on
        $$
        L_\text{simple}(\theta) = \big\| \epsilon - \epsilon_\theta\big(\underbrace{\sqrt{\bar\alpha_t}\, x_0 + \sqrt{1 - \bar\alpha_t}\, \epsilon}_{x_t},\; t\big) \big\|^2 .
        $$

        The network sees a noisy $x_t$ and must say which noise was added. Nothing runs through the chain
        $x_{t-1} \to x_t$: the closed form of lesson 2 jumps straight to any $t$, so every training example
        costs one forward and one backward pass. In the code, $t$ runs over $0, \dots, T-1$ (code index $t$ is
        the paper's $t+1$, see GLOSSARY.md).

        Here it is written out, one line per step, and compared with the package's `diffusion_loss`, which the
        training loop uses. Both draw $t$ and $\epsilon$ from the same seeded generator, in the same order.
        """),
        code('''
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
        '''),
        code('''
        # NBVAL_CHECK_OUTPUT
        print("inline L_simple equals course_utils.training.diffusion_loss:", torch.allclose(ours, package))
        '''),
        md(r"""
        **What to notice.** An untrained network's loss is close to 1: its output is near 0, and the target
        $\epsilon$ has unit variance in every pixel, so $\mathbb E\|\epsilon - 0\|^2 / d = 1$. A network that
        predicted the noise perfectly would reach 0, but it cannot: at small $t$ the added noise is tiny and hard
        to tell from the image's own texture, so part of it is unpredictable (at large $t$, by contrast, $x_t$ is
        almost pure noise and $\epsilon \approx x_t$ is easy to predict). The loss falls quickly, to a few
        hundredths on these digits (the pretrained model of section 5 ends near 0.02), and then crawls; a
        diffusion loss curve never "converges to zero".

        ## 2. A 2-D toy model that trains in seconds

        Before images, the same loss on points in the plane. The data are 8 Gaussian blobs on a circle
        (`make_toy("8gaussians")`), the network is a small MLP, `MLPDenoiser`, that takes $(x_t, t)$ and returns
        $\epsilon_\theta(x_t, t) \in \mathbb R^2$. The training loop is `course_utils.training.train`:
        it draws random batches, computes exactly the loss above, and takes AdamW steps. Its `callback` runs
        every `log_every` steps; we use it to draw samples from the model at a few moments of training.

        Samples are drawn with `ddim_sample` in 100 steps, a fast sampler that lesson 5 derives: start from
        $x_T \sim \mathcal N(0, I)$ and denoise step by step with the network. We always sample from the same
        starting noise, so the panels differ only by the network's weights.
        """),
        code('''
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
        '''),
        code('''
        fig, axes = plt.subplots(1, len(snapshots) + 1, figsize=(2.3 * (len(snapshots) + 1), 2.6))
        plot_points(x_toy[:1000], ax=axes[0], title="training data", c="tab:green")
        for ax, (step, points) in zip(axes[1:], snapshots.items()):
            plot_points(points, ax=ax, title=f"after {step} steps")
        fig.suptitle("Samples of the 2-D model during training (same starting noise x_T in every panel)")
        fig.tight_layout()
        plt.show()
        '''),
        md("""
        **What to notice.** Untrained, the "denoiser" just shrinks the starting noise. Within a few dozen
        steps the cloud contracts to a ring of the right radius; then it splits into blobs; later the blobs
        sharpen and the stray points between them thin out. Coarse structure is learned first, fine detail last:
        the large-$t$ part of the loss (where the network only needs to know the overall shape) is easy, the
        small-$t$ part (the exact width of each blob) is slow.

        Move the slider to step through the snapshots, with the loss curve up to that step.
        """),
        code('''
        def show_snapshot(index=len(snapshots) - 1):
            step = list(snapshots)[index]
            fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(8, 3.3))
            plot_points(snapshots[step], ax=ax0, title=f"samples after {step} steps")
            plot_loss([h for h in toy_state.history if h[0] <= max(step, 10)], ax=ax1, title="loss up to this step")
            ax1.set_xlim(0, TOY_STEPS)
            fig.tight_layout()
            plt.show()


        _ = widgets.interact(show_snapshot, index=widgets.IntSlider(value=len(snapshots) - 1, min=0,
                                                                    max=len(snapshots) - 1, description="snapshot"))
        '''),
        md(r"""
        ## 3. A small image model, with the tricks that matter

        Now the real thing: a UNet on images. To keep it to a few minutes on a CPU we use scikit-learn's
        handwritten digits (8x8, bundled with scikit-learn, no download; the first 1,500 of its 1,797 form the
        training split), upsampled to 16x16, and the
        UNet of lesson 3 with 32 base channels. Four practical details, all switched on through `TrainConfig`:

        * **EMA of the weights.** The loss is noisy (a new $t$ and $\epsilon$ every step), so the live weights
          jitter. We sample from an exponential moving average
          $\theta_\text{EMA} \leftarrow d\,\theta_\text{EMA} + (1-d)\,\theta$.
          With the usual $d = 0.9999$ and a short run the average would still be mostly the *random initial
          weights* ($0.9999^{1000} \approx 0.90$): the samples would be noise. So the decay warms up,
          $d_\text{step} = \min\big(d, \frac{1 + \text{step}}{10 + \text{step}}\big)$ (as in diffusers),
          and we use $d = 0.999$. If you ever see noise from the EMA model but digits from the live one, this is why.
        * **Gradient clipping** at norm 1: a rare batch of mostly-tiny $t$ can give a huge gradient;
          clipping keeps one bad step from undoing the run.
        * **Mixed precision**, `mixed_precision="auto"`: the forward and backward passes run in bfloat16
          (`torch.autocast`) where the processor computes it natively (a recent GPU, or a CPU with AVX-512 BF16
          or AMX, where it is about twice as fast as float32); the weights and the loss stay float32. On a CPU
          with only AVX2, bfloat16 is *emulated* and a step is about 10 times slower than float32, so "auto"
          keeps float32 there (the cell below prints what it chose). On a GPU without bfloat16 it picks float16
          with a gradient scaler.
        * **A progress bar and a live loss plot**: `train` shows a tqdm bar; its `callback` redraws a figure.

        The cell below trains for `IMAGE_STEPS // 2` steps and writes a checkpoint; section 4 resumes it.
        This is @@04_image@@ on a 2-core CPU for both halves together (the cell prints the
        measured time per step on your machine).
        """),
        code('''
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
        '''),
        code('''
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
        '''),
        md(r"""
        ## 4. Checkpoints and resuming

        A checkpoint holds everything needed to continue *as if nothing had happened*: the model, the EMA copy,
        the optimizer's moment estimates, the step, the loss history, and the states of the random generators
        (which batches, timesteps and noise come next). `train` writes it atomically (to a temporary file, then
        a rename), so a crash while saving never leaves a broken file.

        To resume, call `train` again with the same `checkpoint_path` and a larger `steps`. Below we do it the
        hard way: a brand-new, randomly initialised model object, as after a kernel restart.
        """),
        code('''
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
        '''),
        code('''
        # NBVAL_CHECK_OUTPUT
        print("the history continues the first half's:", second.history[:len(first.history)] == first.history)
        print("the resumed run went on from the checkpoint's step:", second.history[len(first.history)][0] > first.step)
        '''),
        code('''
        steps, losses = zip(*second.history)
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.plot(steps[:len(first.history)], losses[:len(first.history)], label="first half")
        ax.plot(steps[len(first.history) - 1:], losses[len(first.history) - 1:], label="after resuming")
        ax.axvline(first.step, color="tab:red", linestyle="--", linewidth=1)
        ax.set(xlabel="step", ylabel="loss (mean over log_every steps)", yscale="log", title="one run, in two sittings")
        ax.legend()
        plt.show()
        '''),
        md(r"""
        How exact is "as if nothing had happened"? On a small 2-D model it is cheap to check: train 100 steps in
        one go, and 50 + 50 steps with a checkpoint in between. The weights agree bit for bit, because the
        resumed run draws the same batches, timesteps and noise.
        """),
        code('''
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
        '''),
        md(r"""
        ## 5. Looking at the samples: live weights, EMA weights, and a pretrained model

        We draw 64 digits with DDIM (`ddim_sample`, lesson 5; 50 steps, 20 in quick mode), from the *same* starting noise
        $x_T$ for every model, so differences come from the weights alone. First the live weights against the
        EMA weights of your model.
        """),
        code('''
        x_T = torch.randn(64, 1, 16, 16, generator=torch.Generator().manual_seed(7)).to(device)
        SAMPLE_STEPS = pick(50, 20)
        samples_live = ddim_sample(second.model, schedule, x_T.shape, x_T=x_T, num_steps=SAMPLE_STEPS, progress=False)
        samples_ema = ddim_sample(second.ema_model, schedule, x_T.shape, x_T=x_T, num_steps=SAMPLE_STEPS, progress=False)

        fig, axes = plt.subplots(1, 2, figsize=(12, 6.4))
        show_images(samples_live, ax=axes[0], title=f"your model, live weights ({second.step} steps)")
        show_images(samples_ema, ax=axes[1], title=f"your model, EMA weights ({second.step} steps)")
        plt.show()
        '''),
        md("""
        Now a model from `course_utils.checkpoints`, trained by the course with the same UNet on the same data
        (`digits-unet-cond`, a class-conditional UNet; asked for no class, it samples from all ten, the way
        lesson 6 explains). Your few-minute model is on the left.
        """),
        code(LOAD_PRETRAINED),
        code('''
        pretrained = load_pretrained("digits-unet-cond")
        if pretrained is None:
            print("Skipping the comparison: no pretrained digits model is installed.")
        else:
            name, pretrained_model, pretrained_schedule, card = pretrained
            print(f"{name}: {card['steps']} steps of batch {card['batch_size']}, "
                  f"{card['wall_time_s'] / 60:.0f} minutes of training on {card['dataset']['name']}")
            samples_pretrained = ddim_sample(pretrained_model, pretrained_schedule, x_T.shape, x_T=x_T,
                                             num_steps=SAMPLE_STEPS, progress=False)
            fig, axes = plt.subplots(1, 2, figsize=(12, 6.4))
            show_images(samples_ema, ax=axes[0], title=f"your model (EMA, {second.step} steps, {second.seconds / 60:.1f} min)")
            show_images(samples_pretrained, ax=axes[1], title=f"pretrained {name}")
            plt.show()
        '''),
        md("""
        **What to notice.** In full mode your EMA model draws digit-like strokes, several of them readable,
        others broken or merged; the pretrained model's digits are cleaner and more varied. The gap is not
        training time: the pretrained model ran the same `train` on about as many examples (2000 steps of batch
        64, against your 1200 of batch 128), but with a five times larger learning rate (1e-3 instead of 2e-4),
        EMA decay 0.998 and class labels with label dropout. In quick
        mode your model has trained for a few dozen steps and draws blobs: the loop works, it just needs time.
        The live weights after a short run often look about as good as the EMA ones; the EMA pays off in long
        runs, where it averages away the step-to-step jitter.

        Things to try: double `IMAGE_STEPS` (the checkpoint lets you do it in two sittings); set
        `mixed_precision="bf16"` and compare the time per step with `"auto"` (faster where the processor has
        native bfloat16, about 10 times slower on an AVX2-only CPU, where "auto" already runs float32); set
        `ema_decay=0.9999` and look at the EMA samples.

        ## Next

        Worksheet: **exercises/04_training.ipynb**: write the training step yourself, add EMA, and find out what
        goes wrong without the EMA warm-up.
        """),
    ])



# ----------------------------------------------------------------------------------------------------- lesson 5
def lesson_05():
    return notebook([
        md("""
        # Lesson 5: DDPM and DDIM sampling

        A trained noise predictor $\\epsilon_\\theta(x_t, t)$ does not generate anything by itself: a *sampler*
        turns it into images. This lesson compares the two classic samplers on the same network.

        1. **DDPM** (Ho et al. 2020, Algorithm 2): 1000 small stochastic steps, with two choices of the noise
           variance.
        2. **DDIM** (Song, Meng, Ermon 2021): the same network, a family of samplers indexed by $\\eta$, on a
           sub-sequence of the timesteps, so 10-100 steps instead of 1000. We check numerically that
           $\\eta = 1$ on the full grid *is* DDPM.
        3. A table of wall time and sample quality (FID on the course classifier's features) for DDPM 1000 steps
           and DDIM 10, 20, 50, 100 steps, and a widget for the number of steps and $\\eta$.
        4. Because $\\eta = 0$ DDIM is deterministic and invertible, images can be mapped back to noise
           (**DDIM inversion**) and **interpolated** in noise space.

        **Time.** @@05_total@@ on a 2-core CPU in full mode (most of it the 1000-step DDPM run); with
        `COURSE_QUICK=1` the sample counts shrink and it takes a few minutes, with FID figures that are then too
        noisy to compare. Almost all of the time is the 1000-step DDPM run: 1000 network calls per sample.
        """),
        code(COLAB),
        code("""
        import math
        import time

        import matplotlib.pyplot as plt
        import torch
        import ipywidgets as widgets

        import torch.nn.functional as F

        from course_utils import metrics
        from course_utils.analytic import GaussianMixtureEps
        from course_utils.data import EIGHT_GAUSSIANS, load_images_or_digits, make_toy
        from course_utils.device import get_device
        from course_utils.samplers import ddim_invert, ddim_sample, ddim_sigma, ddim_step, ddim_timesteps, ddpm_sample
        from course_utils.schedules import NoiseSchedule
        from course_utils.settings import pick, quick_mode
        from course_utils.viz import plot_points, show_images

        torch.manual_seed(0)
        device = get_device()
        N_EVAL = pick(@@05_n_eval@@, 8)         # samples per sampler for the quality table
        N_SHOW = pick(16, 8)                     # samples shown per figure
        print(f"device: {device}, quick mode: {quick_mode()}, samples per sampler: {N_EVAL}")
        """),
        code(LOAD_PRETRAINED),
        code("""
        pretrained = load_pretrained("mnist-unet", "digits-unet-cond")
        name, model, schedule, card = pretrained
        image_shape = tuple(card["image_shape"])         # (C, H, W)
        card_dataset = card["dataset"]["name"]           # the data it was trained on ("mnist" or "digits")
        print(f"model: {name}, images {image_shape}, T = {schedule.T}")
        """),
        md(r"""
        ## 1. DDPM: Algorithm 2

        DDPM samples by running the learned reverse chain from pure noise, one timestep at a time
        (Ho et al. 2020, Algorithm 2):

        $$
        x_T \sim \mathcal N(0, I), \qquad
        x_{t-1} = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,\epsilon_\theta(x_t, t)\Big) + \sigma_t z,
        \qquad z \sim \mathcal N(0, I) \text{ for } t > 1,\; z = 0 \text{ at the last step.}
        $$

        The first term is the mean of the true posterior $q(x_{t-1} \mid x_t, x_0)$ with $x_0$ replaced by the
        network's guess. The variance $\sigma_t^2$ is not learned; the paper tries two values:

        * $\sigma_t^2 = \beta_t$: the right choice if the data were pure noise, $x_0 \sim \mathcal N(0, I)$;
        * $\sigma_t^2 = \tilde\beta_t = \frac{1 - \bar\alpha_{t-1}}{1 - \bar\alpha_t}\,\beta_t$ (the posterior
          variance): the right choice if the data were a single point.

        Real data sit in between; Ho et al. report similar results for both. `ddpm_sample(..., variance="posterior")`
        uses $\tilde\beta_t$ (the default), `variance="beta"` uses $\beta_t$.

        Written out, Algorithm 2 is a short loop. We run it on 2-D points with the *exact* noise predictor of a
        mixture of 8 Gaussians (`GaussianMixtureEps`, no training involved), and check that it matches
        `ddpm_sample` draw for draw (same generator, same order of random numbers).
        """),
        code("""
        def ddpm_loop(model, schedule, shape, generator, variance="posterior"):
            \"\"\"Algorithm 2 of DDPM, one line per step.\"\"\"
            x = torch.randn(shape, generator=generator)                                 # x_T ~ N(0, I)
            sigma2 = schedule.posterior_variance if variance == "posterior" else schedule.betas
            for i in reversed(range(schedule.T)):                                       # code t = T-1, ..., 0
                t = torch.full((shape[0],), i, dtype=torch.long)
                eps = model(x, t)                                                       # eps_theta(x_t, t)
                mean = (x - schedule.betas[i] / schedule.sqrt_one_minus_alpha_bar[i] * eps) / schedule.alphas[i].sqrt()
                z = torch.randn(shape, generator=generator) if i > 0 else torch.zeros(shape)  # no noise at the end
                x = mean + sigma2[i].sqrt() * z                                         # x_{t-1}
            return x


        cpu_schedule = schedule.to("cpu")
        exact_eps = GaussianMixtureEps(EIGHT_GAUSSIANS, cpu_schedule)
        points = {}
        for variance in ("posterior", "beta"):
            ours = ddpm_loop(exact_eps, cpu_schedule, (2000, 2), torch.Generator().manual_seed(0), variance)
            package = ddpm_sample(exact_eps, cpu_schedule, (2000, 2), variance=variance,
                                  generator=torch.Generator().manual_seed(0), progress=False)
            points[variance] = package
            print(f"variance={variance!r}: largest difference between our loop and ddpm_sample: "
                  f"{(ours - package).abs().max():.1e}")
        """),
        code("""
        # NBVAL_CHECK_OUTPUT
        print("our Algorithm 2 equals ddpm_sample for both variances:",
              all(torch.allclose(ddpm_loop(exact_eps, cpu_schedule, (200, 2), torch.Generator().manual_seed(0), v),
                                 ddpm_sample(exact_eps, cpu_schedule, (200, 2), variance=v, progress=False,
                                             generator=torch.Generator().manual_seed(0)), atol=1e-4)
                  for v in ("posterior", "beta")))
        """),
        code("""
        x_data, _ = make_toy("8gaussians", n=2000)
        fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
        plot_points(x_data, ax=axes[0], title="data: 8 Gaussians (std 0.1)", c="tab:green")
        plot_points(points["posterior"], ax=axes[1], title=r"DDPM, $\\sigma_t^2 = \\tilde\\beta_t$")
        plot_points(points["beta"], ax=axes[2], title=r"DDPM, $\\sigma_t^2 = \\beta_t$")
        fig.suptitle("Algorithm 2 with the exact noise predictor, 1000 steps")
        fig.tight_layout()
        plt.show()
        for variance, x in points.items():
            radius = x.norm(dim=1)
            print(f"{variance:>9}: mean distance from the centre {radius.mean():.3f} (data: {x_data.norm(dim=1).mean():.3f}), "
                  f"spread around the blob centres {(radius - 1.5).abs().mean():.3f} "
                  f"(data: {(x_data.norm(dim=1) - 1.5).abs().mean():.3f})")
        """),
        md(r"""
        With the exact $\epsilon$ both choices reproduce the mixture; the larger $\sigma_t^2 = \beta_t$ leaves
        slightly wider blobs, because the noise it adds in the last few steps is not fully removed.

        Now the image model. The cell below draws `N_EVAL` samples with DDPM ($\tilde\beta_t$, 1000 network calls
        per sample) and keeps the wall time for the table of section 4, then `N_SHOW` with $\sigma_t^2 = \beta_t$
        from the same starting noise and the same random numbers.
        """),
        code("""
        def timed(fn):
            \"\"\"(result, seconds) of fn(), waiting for the GPU to finish if there is one.\"\"\"
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            result = fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            return result, time.perf_counter() - start


        x_T = torch.randn(N_EVAL, *image_shape, generator=torch.Generator().manual_seed(0)).to(device)  # shared by every sampler
        samples, seconds = {}, {}
        samples["DDPM 1000"], seconds["DDPM 1000"] = timed(lambda: ddpm_sample(
            model, schedule, x_T.shape, x_T=x_T, generator=torch.Generator(device=device).manual_seed(1)))
        ddpm_beta = ddpm_sample(model, schedule, (N_SHOW, *image_shape), x_T=x_T[:N_SHOW], variance="beta",
                                generator=torch.Generator(device=device).manual_seed(1))
        print(f"DDPM, 1000 steps, {N_EVAL} samples: {seconds['DDPM 1000']:.1f} s")

        fig, axes = plt.subplots(1, 2, figsize=(12, 3.6))
        show_images(samples["DDPM 1000"][:N_SHOW], ax=axes[0], title=r"DDPM, $\\sigma_t^2 = \\tilde\\beta_t$ (posterior)")
        show_images(ddpm_beta, ax=axes[1], title=r"DDPM, $\\sigma_t^2 = \\beta_t$")
        plt.show()
        """),
        md(r"""
        ## 2. DDIM: the same network, fewer steps

        Song et al. noticed that the training loss only involves the marginals $q(x_t \mid x_0)$, never the
        chain $x_{t-1} \to x_t$. Many reverse processes share those marginals, so one trained $\epsilon_\theta$
        serves them all. DDIM's step from $t$ to an earlier $t'$ (their Eq. 12; their $\alpha_t$ is our
        $\bar\alpha_t$):

        $$
        \hat x_0 = \frac{x_t - \sqrt{1 - \bar\alpha_t}\,\epsilon_\theta(x_t, t)}{\sqrt{\bar\alpha_t}}, \qquad
        x_{t'} = \sqrt{\bar\alpha_{t'}}\,\hat x_0 + \sqrt{1 - \bar\alpha_{t'} - \sigma_t^2}\;\epsilon_\theta(x_t, t) + \sigma_t z,
        $$

        $$
        \sigma_t(\eta) = \eta \sqrt{\frac{1 - \bar\alpha_{t'}}{1 - \bar\alpha_t}}\sqrt{1 - \frac{\bar\alpha_t}{\bar\alpha_{t'}}}.
        $$

        Read it as: guess the clean image, then re-noise it to the level of $t'$, re-using the predicted noise
        as the "direction pointing to $x_t$" and adding fresh noise of size $\sigma_t$. With $\eta = 0$ there is
        no fresh noise: sampling is a deterministic function of $x_T$. The step works for any $t' < t$, so DDIM
        visits only a sub-sequence $\tau$ of the timesteps. `ddim_timesteps(T, S)` spaces $S$ of them evenly
        (the DDIM paper's "uniform" choice):
        """),
        code("""
        # NBVAL_CHECK_OUTPUT
        for S in (10, 20):
            print(f"S = {S}:", ddim_timesteps(1000, S).tolist())
        print("S = 1000: the full grid", ddim_timesteps(1000, 1000)[:3].tolist(), "...", ddim_timesteps(1000, 1000)[-3:].tolist())
        """),
        md(r"""
        ### $\eta = 1$ on the full grid is DDPM

        With $t' = t - 1$ and $\eta = 1$, $\sigma_t^2$ becomes $\frac{1 - \bar\alpha_{t-1}}{1 - \bar\alpha_t}\big(1 - \alpha_t\big) = \tilde\beta_t$,
        the posterior variance, and the DDIM mean becomes DDPM's. Three checks, from the formula to whole runs:

        1. $\sigma_t(1)^2 = \tilde\beta_t$ for every $t$;
        2. one step: `ddim_step` with $\eta = 1$ and DDPM's update, given the same $x_t$, the same $\epsilon$ and the
           same noise $z$, land on the same $x_{t-1}$;
        3. whole runs: `ddim_sample(num_steps=T, eta=1)` and `ddpm_sample` from the same seed give the same samples
           (up to float32 round-off accumulated over 1000 steps).
        """),
        code("""
        # NBVAL_CHECK_OUTPUT
        s = cpu_schedule
        sigma2 = torch.stack([ddim_sigma(s, t, t - 1, eta=1.0) ** 2 for t in range(1, s.T)])
        print("1. sigma_t(eta=1)^2 == tilde beta_t for t = 1..T-1:",
              torch.allclose(sigma2, s.posterior_variance[1:], rtol=1e-3))

        g = torch.Generator().manual_seed(3)
        worst = 0.0
        for i in (999, 500, 100, 10, 1):
            xt = torch.randn(500, 2, generator=g)
            z = torch.randn(500, 2, generator=g)
            eps = exact_eps(xt, torch.full((500,), i))
            x_ddim, _ = ddim_step(xt, eps, s.alpha_bar[i], s.alpha_bar[i - 1], eta=1.0, noise=z)
            x_ddpm = (xt - s.betas[i] / s.sqrt_one_minus_alpha_bar[i] * eps) / s.alphas[i].sqrt() + s.posterior_variance[i].sqrt() * z
            worst = max(worst, (x_ddim - x_ddpm).abs().max().item())
        print("2. one DDIM step (eta=1) == one DDPM step, same noise:", worst < 1e-4)

        run_ddim = ddim_sample(exact_eps, s, (2000, 2), num_steps=s.T, eta=1.0, generator=torch.Generator().manual_seed(0), progress=False)
        run_ddpm = ddpm_sample(exact_eps, s, (2000, 2), generator=torch.Generator().manual_seed(0), progress=False)
        print("3. DDIM(S=T, eta=1) == DDPM, whole runs from the same seed:", torch.allclose(run_ddim, run_ddpm, atol=1e-2))
        """),
        code("""
        print(f"largest difference, step check: {worst:.1e}; whole runs: {(run_ddim - run_ddpm).abs().max():.1e} "
              "(float32 round-off over 1000 steps)")
        """),
        md(r"""
        ## 3. How many steps? Time and quality

        Now the comparison that matters in practice: DDPM with 1000 steps against deterministic DDIM
        ($\eta = 0$) with 10, 20, 50 and 100 steps, all from the same starting noise $x_T$.

        **Quality** is measured with the course's metric (`course_utils.metrics`): the Fréchet distance
        between the course classifier's features of generated and of real test images (FID; lower is better;
        0 = same feature statistics), and KID, a kernel version of the same idea that is unbiased for small
        sample counts. FID with a few hundred samples is biased upwards, so compare rows of one table (same
        number of samples) and not with FID figures from papers (Inception features, 50,000 samples).
        To see how low FID can go with this few samples, the table starts with real training images scored the
        same way: that is the floor, not 0.
        """),
        code("""
        feature_net = metrics.feature_classifier(device)        # the course classifier (mnist-classifier)


        def to_metric_size(x):
            \"\"\"The metric's classifier reads 28x28 images; other sizes are resized (bilinear).\"\"\"
            return x if tuple(x.shape[-2:]) == (28, 28) else F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)


        x_ref, _, ref_name = load_images_or_digits(card_dataset, split="test", image_size=image_shape[-1])
        reference_features = metrics.features(to_metric_size(x_ref[:2000]), feature_net)
        reference_description = f"{len(reference_features)} real {ref_name} test images"


        def sample_quality(x):
            \"\"\"FID and KID of images x (N, C, H, W) in [-1, 1] against the reference test images.\"\"\"
            f = metrics.features(to_metric_size(x.float().cpu()), feature_net)
            return dict(fid=metrics.fid_from_features(f, reference_features), kid=metrics.kid_from_features(f, reference_features)[0])


        x_real, _, _ = load_images_or_digits(card_dataset, split="train", image_size=image_shape[-1], limit=N_EVAL)
        floor = sample_quality(x_real)
        print(f"{N_EVAL} real training images against {reference_description}: FID {floor['fid']:.2f}, KID {floor['kid']:.4f}")
        """),
        code("""
        for steps in (10, 20, 50, 100):
            key = f"DDIM {steps}"
            samples[key], seconds[key] = timed(lambda: ddim_sample(model, schedule, x_T.shape, x_T=x_T, num_steps=steps, eta=0.0))

        quality = {key: sample_quality(x) for key, x in samples.items()}
        print(f"{'sampler':<10} {'network calls':>13} {'wall time (s)':>14} {'ms / sample':>12} {'FID':>8} {'KID x 1000':>11}")
        print(f"{'real data':<10} {0:>13} {'':>14} {'':>12} {floor['fid']:>8.2f} {1000 * floor['kid']:>11.2f}")
        for key in samples:
            calls = int(key.split()[1])
            print(f"{key:<10} {calls:>13} {seconds[key]:>14.1f} {1000 * seconds[key] / N_EVAL:>12.1f} "
                  f"{quality[key]['fid']:>8.2f} {1000 * quality[key]['kid']:>11.2f}")
        print(f"({N_EVAL} samples per sampler, on {device}; reference: {reference_description})")
        """),
        code("""
        fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 3.6))
        ddim_keys = [k for k in samples if k.startswith("DDIM")]
        steps = [int(k.split()[1]) for k in ddim_keys]
        ax0.plot(steps, [quality[k]["fid"] for k in ddim_keys], "o-", label=r"DDIM, $\\eta = 0$")
        ax0.axhline(quality["DDPM 1000"]["fid"], color="tab:red", linestyle="--", label="DDPM, 1000 steps")
        ax0.axhline(floor["fid"], color="tab:green", linestyle=":", label=f"{N_EVAL} real images")
        ax0.set(xscale="log", xlabel="number of sampling steps (network calls)", ylabel="FID (lower is better)",
                title=f"sample quality, {N_EVAL} samples each")
        ax0.legend()
        ax1.plot(steps, [seconds[k] for k in ddim_keys], "o-", label=r"DDIM, $\\eta = 0$")
        ax1.axhline(seconds["DDPM 1000"], color="tab:red", linestyle="--", label="DDPM, 1000 steps")
        ax1.set(xscale="log", yscale="log", xlabel="number of sampling steps (network calls)",
                ylabel="wall time (s)", title=f"time for {N_EVAL} samples on {device.type}")
        ax1.legend()
        fig.tight_layout()
        plt.show()

        fig, axes = plt.subplots(len(samples), 1, figsize=(10, 1.6 * len(samples)))
        for ax, (key, x) in zip(axes, samples.items()):
            show_images(x[:12], nrow=12, ax=ax, title=f"{key} steps: FID {quality[key]['fid']:.1f}, {seconds[key]:.0f} s")
        fig.suptitle("the first 12 samples of each sampler, from the same x_T")
        fig.tight_layout()
        plt.show()
        """),
        md(r"""
        **What to notice.** Time is proportional to the number of network calls: DDIM with 50 steps is 20 times
        faster than DDPM. Quality drops only slowly as the steps shrink: with 50-100 steps DDIM is on a par
        with DDPM, with 10 the digits get thicker and smoother and FID rises. The deterministic samplers
        draw visibly *the same digit* from the same $x_T$ whatever the step count: the map $x_T \mapsto x_0$
        of DDIM is a property of the model, and fewer steps only approximate it more coarsely. DDPM, stochastic,
        draws a different digit from the same $x_T$.

        ## 4. Explore: steps and $\eta$

        Sixteen samples from one fixed $x_T$ and one fixed noise sequence. Move `steps` with $\eta = 0$: the
        digits stay the same and sharpen. Raise $\eta$: fresh noise enters at every step and the samples
        drift away from the $\eta = 0$ ones; at $\eta = 1$ with few steps the added noise is large and images get
        noisy or blotchy.
        """),
        code("""
        x_T_widget = torch.randn(N_SHOW, *image_shape, generator=torch.Generator().manual_seed(42)).to(device)


        def ddim_explorer(steps=20, eta=0.0):
            x = ddim_sample(model, schedule, x_T_widget.shape, x_T=x_T_widget, num_steps=steps, eta=eta, progress=False,
                            generator=torch.Generator(device=device).manual_seed(0))
            show_images(x, nrow=8, title=f"DDIM, {steps} steps, eta = {eta:.2f}", figsize=(8, 2.3))
            plt.show()


        _ = widgets.interact(ddim_explorer,
                             steps=widgets.SelectionSlider(options=[2, 5, 10, 20, 50, 100, 200], value=20, description="steps",
                                                           continuous_update=False),
                             eta=widgets.FloatSlider(value=0.0, min=0.0, max=1.0, step=0.1, description="eta",
                                                     continuous_update=False))
        """),
        md(r"""
        ## 5. DDIM inversion: from an image back to its noise

        With $\eta = 0$ the DDIM update is a deterministic map $x_t \mapsto x_{t'}$, the discretisation of an
        ordinary differential equation. Running it the other way (from $t'$ up to $t$) maps a *real* image to a
        latent $x_T$ that DDIM decodes back to (nearly) the same image:

        $$
        x_{t} = \sqrt{\bar\alpha_{t}}\,\underbrace{\frac{x_{t'} - \sqrt{1 - \bar\alpha_{t'}}\,\epsilon}{\sqrt{\bar\alpha_{t'}}}}_{\hat x_0}
              + \sqrt{1 - \bar\alpha_{t}}\;\epsilon, \qquad \epsilon = \epsilon_\theta(x_{t'}, t),
        $$

        which is `ddim_invert`. The only approximation is using $\epsilon_\theta(x_{t'}, t)$ in place of the
        unknown $\epsilon_\theta(x_t, t)$, so the round trip is closer with more steps.
        """),
        code("""
        INVERT_STEPS = pick(50, 20)
        x_test, y_test, test_name = load_images_or_digits(card_dataset, split="test", image_size=image_shape[-1])
        originals = x_test[:8].to(device)
        latents = ddim_invert(model, schedule, originals, num_steps=INVERT_STEPS)
        reconstructions = ddim_sample(model, schedule, latents.shape, x_T=latents, num_steps=INVERT_STEPS, progress=False)

        fig, axes = plt.subplots(3, 1, figsize=(8, 4.2))
        show_images(originals, ax=axes[0], title=f"real {test_name} test images x_0")
        show_images(latents.clamp(-3, 3) / 3, ax=axes[1], title="their DDIM latents x_T (shown as x_T / 3)")
        show_images(reconstructions, ax=axes[2], title=f"DDIM({INVERT_STEPS} steps) of the latents")
        fig.tight_layout()
        plt.show()
        print(f"latents: mean {latents.mean():.2f}, std {latents.std():.2f} (pure noise: 0, 1)")
        print(f"round-trip error: mean |x_0 - reconstruction| = {(originals - reconstructions).abs().mean():.3f} "
              f"(pixel range 2); mean |x_0| = {originals.abs().mean():.3f}")
        """),
        md(r"""
        ## 6. Interpolation in noise space

        Two real images give two latents $z_a, z_b$. Decoding points between them gives images between the two
        digits. Straight-line mixing $(1-\lambda) z_a + \lambda z_b$ is the wrong path: halfway, two independent
        Gaussian vectors average to a vector of norm $\approx 0.71\sqrt d$, far shorter than any noise the model
        has seen ($\approx \sqrt d$), and the decoded image fades. Spherical interpolation keeps the norm:

        $$
        \operatorname{slerp}(z_a, z_b; \lambda) = \frac{\sin((1-\lambda)\theta)}{\sin\theta}\, z_a + \frac{\sin(\lambda\theta)}{\sin\theta}\, z_b,
        \qquad \cos\theta = \frac{\langle z_a, z_b\rangle}{\|z_a\|\,\|z_b\|}.
        $$
        """),
        code("""
        def slerp(z_a, z_b, lam):
            \"\"\"Spherical interpolation between two tensors of the same shape, lam in [0, 1].\"\"\"
            cos_theta = (z_a * z_b).sum() / (z_a.norm() * z_b.norm())
            theta = torch.arccos(cos_theta.clamp(-1, 1))
            return (torch.sin((1 - lam) * theta) * z_a + torch.sin(lam * theta) * z_b) / torch.sin(theta)


        i_a, i_b = 0, 1                                    # two test images of different digits
        z_a, z_b = latents[i_a], latents[i_b]
        lams = torch.linspace(0, 1, 9).tolist()
        z_slerp = torch.stack([slerp(z_a, z_b, lam) for lam in lams])
        z_lerp = torch.stack([(1 - lam) * z_a + lam * z_b for lam in lams])
        row_slerp = ddim_sample(model, schedule, z_slerp.shape, x_T=z_slerp, num_steps=INVERT_STEPS, progress=False)
        row_lerp = ddim_sample(model, schedule, z_lerp.shape, x_T=z_lerp, num_steps=INVERT_STEPS, progress=False)

        fig, axes = plt.subplots(2, 1, figsize=(9, 2.8))
        show_images(row_slerp, nrow=9, ax=axes[0], title="slerp in noise space, lambda = 0 ... 1")
        show_images(row_lerp, nrow=9, ax=axes[1], title="straight-line (lerp) mixing, for contrast")
        fig.tight_layout()
        plt.show()
        print("latent norms along the path, slerp:", [f"{z.norm():.0f}" for z in z_slerp[::2]],
              " lerp:", [f"{z.norm():.0f}" for z in z_lerp[::2]])
        """),
        md(r"""
        **What to notice.** The ends of the slerp row reproduce the two test images (up to the inversion
        error); in between, one digit morphs into the other through shapes that are themselves digit-like.
        The lerp row loses contrast in the middle, where the latent's norm dips: the model decodes a
        "too clean" latent into a faint, smooth image.

        ## Next

        * Worksheet **exercises/05_samplers.ipynb**: write the DDPM and DDIM steps yourself and check them against
          the package.
        * Lab **exercises/lab_ddim.ipynb**: the continuous-time cosine schedule and the deterministic DDIM reverse
          process of the university lab.
        """),
    ])


# ----------------------------------------------------------------------------------------------------- lesson 6
def lesson_06():
    return notebook([
        md("""
        # Lesson 6: Guidance

        An unconditional model draws *some* digit. To ask for a particular one we condition the model on a class
        $y$, and to make it obey more strongly we *guide* it. This lesson covers:

        1. class-conditional noise predictors $\\epsilon_\\theta(x_t, t, y)$;
        2. **classifier guidance** (Dhariwal and Nichol 2021): push the sampler along the gradient of a classifier
           trained on *noisy* images;
        3. **classifier-free guidance** (Ho and Salimans 2022): one network trained with label dropout gives both
           $\\epsilon_\\theta(x_t, t, y)$ and $\\epsilon_\\theta(x_t, t, \\varnothing)$, and their difference is
           amplified; first on 2-D data, trained here in seconds, then on images;
        4. a sweep of the guidance scale $w$ with a measured trade-off: class accuracy up, diversity down;
        5. a widget for $w$ and the class.

        **Time.** @@06_total@@ on a 2-core CPU in full mode; about a minute with `COURSE_QUICK=1`
        (fewer samples, fewer steps, a shorter 2-D training run).
        """),
        code(COLAB),
        code("""
        import itertools

        import matplotlib.pyplot as plt
        import torch
        import torch.nn.functional as F
        import ipywidgets as widgets

        from course_utils import metrics
        from course_utils.data import EIGHT_GAUSSIANS, load_images_or_digits, make_toy
        from course_utils.device import get_device
        from course_utils.forward import q_sample
        from course_utils.guidance import cfg_combine, predict_eps
        from course_utils.nets import MLPDenoiser
        from course_utils.samplers import ddim_sample
        from course_utils.settings import pick, quick_mode
        from course_utils.training import TrainConfig, train
        from course_utils.viz import plot_points, show_images

        torch.manual_seed(0)
        device = get_device()
        STEPS = pick(@@06_steps@@, 10)            # DDIM steps for every image sample of this lesson
        N_PER_CLASS = pick(@@06_n_per_class@@, 4)  # samples per class in the sweep of w
        TOY_STEPS = pick(3000, 400)               # training steps of the 2-D conditional model
        print(f"device: {device}, quick mode: {quick_mode()}, DDIM steps: {STEPS}, samples per class: {N_PER_CLASS}")
        """),
        code(LOAD_PRETRAINED),
        md(r"""
        ## 1. Class-conditional models

        A conditional noise predictor takes the class as a third input, $\epsilon_\theta(x_t, t, y)$. In the
        course's UNet the class goes through an embedding table (`nn.Embedding(num_classes + 1, ...)`) and is
        added to the time embedding, so every ResBlock sees it. The extra row, index `num_classes`, is the
        **null class** $\varnothing$ ("no label"), written `y = -1` or `y=None` in the code. During training each
        label is replaced by $\varnothing$ with probability `TrainConfig.label_dropout` (10% by default), so the
        same network also learns the unconditional $\epsilon_\theta(x_t, t, \varnothing)$; section 3 uses that.

        Below, the pretrained conditional model draws 8 samples of each class, with plain conditioning.
        """),
        code("""
        name, model, schedule, card = load_pretrained("mnist-unet-cond", "digits-unet-cond")
        image_shape, num_classes = tuple(card["image_shape"]), card["num_classes"]
        card_dataset = card["dataset"]["name"]                                          # "mnist" or "digits"
        print(f"conditional model: {name}, images {image_shape}, {num_classes} classes")

        y_grid = torch.arange(num_classes).repeat_interleave(8).to(device)          # 0,0,...,0,1,1,... (80,)
        x_T_grid = torch.randn(len(y_grid), *image_shape, generator=torch.Generator().manual_seed(0)).to(device)
        conditional = ddim_sample(model, schedule, x_T_grid.shape, x_T=x_T_grid, y=y_grid, num_steps=STEPS)
        show_images(conditional, nrow=8, title=f"{name}: one row per class (y = 0 ... 9), DDIM {STEPS} steps", figsize=(6, 7.5))
        plt.show()
        """),
        md(r"""
        ## 2. Classifier guidance

        Bayes' rule for the noisy marginals, $p(x_t \mid y) \propto p(x_t)\, p(y \mid x_t)$, gives for the scores

        $$
        \nabla_{x_t} \log p(x_t \mid y) = \nabla_{x_t} \log p(x_t) + \nabla_{x_t} \log p(y \mid x_t).
        $$

        The diffusion model supplies the first term, since $\epsilon_\theta(x_t, t) \approx -\sqrt{1-\bar\alpha_t}\,\nabla_{x_t}\log p(x_t)$.
        A classifier $p_\phi(y \mid x_t, t)$ supplies the second, scaled by $s$ to make it stronger
        (Dhariwal and Nichol 2021, Algorithm 2):

        $$
        \hat\epsilon(x_t, t) = \epsilon_\theta(x_t, t) - s\,\sqrt{1 - \bar\alpha_t}\;\nabla_{x_t} \log p_\phi(y \mid x_t, t).
        $$

        The classifier must work on **noisy** images: during sampling it sees $x_t$ for every $t$. An ordinary
        classifier, trained on clean digits, is lost at large $t$ and its gradient there is meaningless. The
        course ships both; here is their accuracy on test images noised to each $t$.
        """),
        code("""
        _, noisy_classifier, _, _ = load_pretrained("mnist-noisy-classifier")
        _, clean_classifier, _, _ = load_pretrained("mnist-classifier")
        x_test, y_test, test_name = load_images_or_digits(card_dataset, split="test", image_size=image_shape[-1])
        x_test, y_test = x_test[:512].to(device), y_test[:512].to(device)

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
        """),
        md(r"""
        Now guidance itself. The diffusion model here is **unconditional**: it never sees $y$ (the conditional
        model asked for the null class $\varnothing$ plays that role, `guidance_scale=0`). All knowledge of the class
        comes from the noisy classifier's gradient, through the samplers' `classifier=` and `classifier_scale=`
        arguments. Each row is one class; each column one scale $s$.
        """),
        code("""
        classifier_scales = [0.0, 1.0, 3.0, 10.0]
        y_cg = torch.arange(num_classes).to(device)                                    # one sample per class
        x_T_cg = torch.randn(num_classes, *image_shape, generator=torch.Generator().manual_seed(1)).to(device)
        guided = {}
        for scale in classifier_scales:
            guided[scale] = ddim_sample(model, schedule, x_T_cg.shape, x_T=x_T_cg, y=y_cg, guidance_scale=0.0,
                                        classifier=noisy_classifier, classifier_scale=scale, num_steps=STEPS, progress=False)

        fig, axes = plt.subplots(1, len(classifier_scales), figsize=(2.2 * len(classifier_scales), 8))
        for ax, (scale, x) in zip(axes, guided.items()):
            acc = metrics.class_accuracy(x, y_cg.cpu(), clean_classifier)
            show_images(x, nrow=1, ax=ax, title=f"s = {scale:g}\\naccuracy {acc:.0%}")
        fig.suptitle("classifier guidance of an unconditional model; row k asks for digit k")
        plt.show()
        """),
        md(r"""
        **What to notice.** With $s = 0$ the rows are whatever the unconditional model draws from each $x_T$:
        about one in ten matches its row by chance. As $s$ grows more rows show the requested digit, and
        with a large $s$ the strokes get heavy and stylised: the sampler climbs the classifier's confidence,
        not the data density. Classifier guidance needs an extra network trained on noisy data and a
        backward pass through it at every step.

        ## 3. Classifier-free guidance

        Ho and Salimans drop the classifier. A model trained with label dropout predicts both
        $\epsilon_\theta(x_t, t, y)$ and $\epsilon_\theta(x_t, t, \varnothing)$; by Bayes' rule their
        difference is (up to the factor $-\sqrt{1-\bar\alpha_t}$) an implicit classifier's gradient
        $\nabla_{x_t} \log p(y \mid x_t)$, so

        $$
        \hat\epsilon = \epsilon_\theta(x_t, t, \varnothing) + w\,\big(\epsilon_\theta(x_t, t, y) - \epsilon_\theta(x_t, t, \varnothing)\big)
        $$

        with $w = 0$ the unconditional model, $w = 1$ the plain conditional one and $w > 1$ guided (their
        Eq. 6 writes $1 + w$ for our $w$). Cost: two network calls per step (batched into one in `predict_eps`).

        ### On 2-D data, trained here

        The 8 Gaussians again, with the blob index as the class. `TrainConfig(label_dropout=0.2)` replaces a
        fifth of the labels by the null class during training.
        """),
        code("""
        x_toy, y_toy = make_toy("8gaussians", n=8000)                               # points (8000, 2), blob index (8000,)
        toy_config = TrainConfig(steps=TOY_STEPS, batch_size=512, lr=2e-3, ema_decay=0.999, label_dropout=0.2, log_every=50)
        print(toy_config)
        torch.manual_seed(0)
        toy_model = MLPDenoiser(hidden_dim=256, num_classes=8)
        toy_state = train(toy_model, schedule, x_toy, toy_config, y=y_toy, device=device)
        toy = toy_state.ema_model
        print(f"final loss {toy_state.history[-1][1]:.3f}, {toy_state.seconds:.0f} s")
        """),
        code("""
        # classifier-free guidance written out, against the package (cfg_combine and predict_eps)
        x = torch.randn(64, 2, device=device)
        t = torch.full((64,), 500, device=device, dtype=torch.long)
        y = torch.randint(0, 8, (64,), device=device)
        w = 3.0
        with torch.no_grad():
            eps_uncond = toy(x, t, None)                       # eps_theta(x_t, t, null)
            eps_cond = toy(x, t, y)                            # eps_theta(x_t, t, y)
            eps_guided = eps_uncond + w * (eps_cond - eps_uncond)
            package = predict_eps(toy, x, t, y=y, guidance_scale=w)
        """),
        code("""
        # NBVAL_CHECK_OUTPUT
        print("written out == guidance.cfg_combine:", torch.allclose(eps_guided, cfg_combine(eps_uncond, eps_cond, w)))
        print("written out == predict_eps(guidance_scale=w):", torch.allclose(eps_guided, package, atol=1e-5))
        """),
        code("""
        y_toy_sample = torch.arange(8).repeat(250).to(device)                     # 2000 points, 250 per class
        x_T_toy = torch.randn(2000, 2, generator=torch.Generator().manual_seed(1)).to(device)
        toy_ws = [0.0, 1.0, 3.0, 8.0]
        fig, axes = plt.subplots(1, len(toy_ws) + 1, figsize=(2.8 * (len(toy_ws) + 1), 3.1))
        plot_points(x_toy[:2000], ax=axes[0], c=y_toy[:2000], title="data, coloured by class")
        for ax, w in zip(axes[1:], toy_ws):
            points = ddim_sample(toy, schedule, x_T_toy.shape, x_T=x_T_toy, y=y_toy_sample, guidance_scale=w,
                                 num_steps=100, progress=False).cpu()
            hit = ((points[:, None] - torch.tensor(EIGHT_GAUSSIANS.means)[None]).norm(dim=-1).argmin(-1) == y_toy_sample.cpu())
            plot_points(points, ax=ax, c=y_toy_sample.cpu(), title=f"w = {w:g}: {hit.float().mean():.0%} in their blob")
        fig.suptitle("classifier-free guidance on 2-D data: colour = the class asked for")
        fig.tight_layout()
        plt.show()
        """),
        md(r"""
        **What to notice.** At $w = 0$ the class is ignored: colours are mixed over all blobs. At $w = 1$ most
        points land in the blob they asked for. At larger $w$ the blobs get tighter and move *outwards*, away
        from the other classes: guidance does not sample $p(x \mid y)$ more accurately, it samples a sharpened
        $p(x \mid y)\,p(y \mid x)^{w-1}$, which favours points that are unmistakably of class $y$.

        ## 4. The guidance scale on images: accuracy against diversity

        We sweep $w \in \{0, 1, 2, 3, 5, 8\}$ on the pretrained conditional model: `N_PER_CLASS` samples of each
        class, from the same starting noise for every $w$. Three measurements:

        * **accuracy**: the fraction of samples that the clean classifier assigns to the class asked for;
        * **diversity**: the mean pairwise distance between the classifier's feature vectors (its
          penultimate layer) of samples *within* one class, averaged over classes. Ten copies of one
          perfect digit would score 100% accuracy and zero diversity.
        * and, for the whole set, the course's **FID** (`course_utils.metrics`) against real test images, which
          penalises both wrong digits and missing variety (with a few hundred samples it is noisy and biased
          upwards; compare the values with each other only).
        """),
        code("""
        guidance_scales = [0.0, 1.0, 2.0, 3.0, 5.0, 8.0]
        y_sweep = torch.arange(num_classes).repeat(N_PER_CLASS).to(device)       # 0..9, 0..9, ... (10 * N_PER_CLASS,)
        x_T_sweep = torch.randn(len(y_sweep), *image_shape, generator=torch.Generator().manual_seed(2)).to(device)


        def within_class_diversity(features, y):
            \"\"\"Mean pairwise Euclidean distance of feature vectors (N, F) within each class, averaged over classes.\"\"\"
            spreads = []
            for k in y.unique():
                f = features[y == k]
                d = torch.cdist(f, f)                                              # (n_k, n_k)
                spreads.append(d.sum() / (len(f) * (len(f) - 1)))
            return torch.stack(spreads).mean().item()


        reference_features = metrics.features(x_test, clean_classifier)            # for FID: the 512 real test images
        sweep = {}
        for w in guidance_scales:
            x = ddim_sample(model, schedule, x_T_sweep.shape, x_T=x_T_sweep, y=y_sweep, guidance_scale=w, num_steps=STEPS,
                            progress=False)
            features = metrics.features(x, clean_classifier)                          # (N, 128) numpy
            sweep[w] = dict(samples=x, accuracy=metrics.class_accuracy(x, y_sweep.cpu(), clean_classifier),
                            diversity=within_class_diversity(torch.from_numpy(features), y_sweep.cpu()),
                            fid=metrics.fid_from_features(features, reference_features))
            print(f"w = {w:>3g}: accuracy {sweep[w]['accuracy']:6.1%}, within-class feature distance "
                  f"{sweep[w]['diversity']:.2f}, FID {sweep[w]['fid']:.1f}")

        real_features = torch.from_numpy(metrics.features(x_test[:len(y_sweep)], clean_classifier))
        real_diversity = within_class_diversity(real_features, y_test[:len(y_sweep)].cpu())
        print(f"real test images: within-class feature distance {real_diversity:.2f}")
        """),
        code("""
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
        ax1.plot(guidance_scales, [sweep[w]["diversity"] for w in guidance_scales], "s--", color="tab:orange")
        ax1.axhline(real_diversity, color="tab:orange", linestyle=":", linewidth=1)
        ax1.text(guidance_scales[-1], real_diversity, "real data ", ha="right", va="bottom", color="tab:orange")
        ax1.set_ylabel("within-class feature distance")
        ax1.yaxis.label.set_color("tab:orange")
        ax0.set_title(f"the guidance trade-off ({N_PER_CLASS} samples per class, DDIM {STEPS} steps)")
        ax2.plot(guidance_scales, [sweep[w]["fid"] for w in guidance_scales], "o-", color="tab:purple")
        ax2.set(xlabel="guidance scale w", ylabel="FID (lower is better)",
                title=f"FID of all {len(y_sweep)} samples against {len(x_test)} test images")
        fig.tight_layout()
        plt.show()
        """),
        md(r"""
        **What to notice.** Accuracy climbs from chance-like at $w = 0$ towards 100% within a few units of $w$,
        while the within-class diversity falls: the digits of one class become more alike, thicker and more
        "prototypical". Past a point, more guidance buys no accuracy and costs diversity and realism (large
        $w$ over-saturates strokes, pixels pile up at $\pm 1$). Text-to-image systems live on this trade-off,
        typically at $w$ between 3 and 8.

        ## 5. Explore: $w$ and the class

        Sixteen samples of the chosen class from one fixed $x_T$.
        """),
        code("""
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
        """),
        md("""
        ## Next

        Worksheet **exercises/06_guidance.ipynb**: implement classifier-free guidance in a sampler, train a small
        conditional model with label dropout, and measure the trade-off yourself.
        """),
    ])


BUILDERS = {"04_training": lesson_04, "05_ddpm_vs_ddim": lesson_05, "06_guidance": lesson_06}


def main(argv):
    write_lessons(BUILDERS, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
