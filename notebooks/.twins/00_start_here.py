# %% [markdown]
# # Start here: diffusion models, from the equations up
#
# Seven lessons build a diffusion model piece by piece (noise schedule, forward process, UNet, training, DDPM and
# DDIM sampling, guidance, faster solvers); after each lesson a **worksheet** lets you write the same piece yourself, with
# instant feedback. Everything runs on a laptop CPU, offline.
#
# **How to run a notebook.** Open it from the file browser on the left (or from the links below), then
# *Run > Run All Cells*, or go cell by cell with **Shift+Enter**. The kernel, shown at the top right, is
# *Python 3 (ipykernel)*: the course's own environment (`.venv`, created by `make lab`), which has the
# `course_utils` package. The next two cells check that: run them (this page is stored without their output,
# which names the folders of the machine that runs it). The lessons' sliders appear when you run their cell;
# stored, before you run it, a slider shows as a line of text such as `VBox(children=(IntSlider(...` or
# `interactive(...)`, or as a frozen copy of its first view that does not respond until you run the cell.

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
import os
import sys
from pathlib import Path

import torch
import course_utils
from course_utils.data import data_root, has_files
from course_utils.device import get_device
from course_utils.settings import quick_mode

print("Python:      ", sys.executable)
print("course_utils:", Path(course_utils.__file__).parent)
print("torch:       ", torch.__version__, "| device:", get_device())
print("quick mode:  ", quick_mode(), "(COURSE_QUICK =", repr(os.environ.get("COURSE_QUICK", "")) + ")")
print("data root:   ", data_root(), "| MNIST here:", has_files("mnist"))   # its four idx files in MNIST/raw

# %% [markdown]
# If `Python:` does not point into the course's environment (`.../.venv/bin/python` after `make lab`, or your
# conda environment), pick the right kernel with *Kernel > Change Kernel...*, or start JupyterLab with `make lab`.
#
# ## The course, in order
#
# Run each lesson, then its worksheet. Two kinds of time are given. **Your time** is what to plan for
# reading a lesson, running it and trying its suggestions, or for doing a worksheet's TODOs: our estimate for
# a student who knows basic PyTorch, not a measurement. **CPU minutes** are the time the notebook takes to run
# on a 2-core laptop CPU (a GPU is much faster); *full* is the normal mode, *quick* is `COURSE_QUICK=1` (see
# below). The CPU minutes overlap with your time: read while a long cell runs.
#
# | # | notebook | what you do | your time | CPU minutes, full | quick |
# |---|---|---|---|---|---|
# | 1 | [Lesson 1: noise schedules](01_noise_schedules.ipynb) | linear, cosine and the lab's continuous cosine schedule; an explorer | 45 min | < 1 | < 1 |
# | | [Worksheet 1: schedules](../exercises/01_schedules.ipynb) | write the three schedules, then respace one for a fast sampler | 45 min | < 1 | < 1 |
# | 2 | [Lesson 2: the forward process](02_forward_process.ipynb) | the Markov chain, its closed form, the posterior; a noising explorer | 45 min | < 1 | < 1 |
# | | [Worksheet 2: forward process](../exercises/02_forward.ipynb) | `q_sample`, `predict_x0`, the posterior, the forward chain step by step | 1 h | < 1 | < 1 |
# | 3 | [Lesson 3: the UNet](03_unet.ipynb) | time embeddings, residual blocks, the noise predictor's shapes; what a trained one predicts | 45 min | < 1 | < 1 |
# | | [Worksheet 3: UNet pieces](../exercises/03_unet.ipynb) | the sinusoidal embedding, the blocks that take t, the UNet's forward pass with its skips | 45 min | ~ 1 | < 1 |
# | 4 | [Lesson 4: training](04_training.ipynb) | the simple loss; a 2-D toy model, then a small image model | 1 h | ~ 4-12 * | ~ 1-2 |
# | | [Worksheet 4: training](../exercises/04_training.ipynb) | the loss and one training step; EMA; train a small model | 1 h | ~ 3 | ~ 1 |
# | 5 | [Lesson 5: DDPM vs DDIM](05_ddpm_vs_ddim.ipynb) | both samplers on one network; the reverse process seen; steps, eta, speed and quality; inversion | 1 h 15 | ~ 4-10 * | ~ 1-2 |
# | | [Worksheet 5: samplers](../exercises/05_samplers.ipynb) | one DDPM step, one DDIM step, the DDIM sampling loop | 45 min | ~ 2 | ~ 1 |
# | | [Lab: DDIM](../exercises/lab_ddim.ipynb) | the lab assignment: continuous cosine schedule, deterministic DDIM | 2-3 h | ~ 18-60 * | ~ 1-2 |
# | 6 | [Lesson 6: guidance](06_guidance.ipynb) | classifier and classifier-free guidance | 1 h | ~ 4-9 * | ~ 1-2 |
# | | [Worksheet 6: guidance](../exercises/06_guidance.ipynb) | classifier-free guidance, its loss, guidance in a sampler; classifier guidance | 1 h | ~ 2 | ~ 1 |
# | 7 | [Lesson 7: faster samplers](07_fast_samplers.ipynb) | DDIM as Euler on the probability-flow ODE; Heun and DPM-Solver++(2M); quality per network call; the `diffusers` schedulers | 1 h | < 1 * | < 1 |
# | | [Worksheet 7: fast samplers](../exercises/07_fast_samplers.ipynb) | one DPM-Solver++(2M) step and its sampler loop | 45 min | < 1 | < 1 |
#
# In all, plan for about 15 hours of your own time (the rows add up to 14.5-15.5). The computing is about 40-65 minutes in full mode
# (the lab 18-20 of them) where the CPU computes bfloat16 natively, about 10-15 in quick mode; on a CPU without native bfloat16 arithmetic (most laptops) the
# full mode is closer to an hour and a half, the lab alone 30 to 60 minutes (see the note below the table).
#
# \* Measured with nbconvert on the course's 2-core test machines from 2026-12-02 to 2026-12-05; which machine
# gave which number, with and without native bfloat16, and the lab's training speed are in
# [`docs/performance.md`](../docs/performance.md) ("The start page's CPU minutes"). A cell that trains or samples
# for long prints its progress as a bar; on a machine shared with other jobs it can take several times longer.
#
# **Worksheets.** Each TODO is a function to fill in, followed by a check cell that prints its verdict:
# "✅ ... correct", "❌ ...: a hint" for a wrong answer, or "⏳ ... not implemented yet" while untouched. Cells that
# need a TODO say they skip until it passes. The instructor's copies with solutions live in `solutions/`;
# worksheets in `exercises/` are generated from them (do not edit them by hand to change the course).
#
# ## Quick mode
#
# `COURSE_QUICK=1` shrinks training runs and sample counts so that each lesson runs in a minute or two on a
# CPU; nothing else changes (the figures are then noisier, and the notebooks say so). Start JupyterLab with
# `COURSE_QUICK=1 make lab`, or set it inside a notebook before its other cells run:
#
# ```python
# import os; os.environ["COURSE_QUICK"] = "1"
# ```
#
# ## Data
#
# Datasets are read from `$COURSE_DATA_DIR` (default `~/.cache/course_utils/data`, printed above) in torchvision's
# layout (`MNIST/raw/...`). With a network, MNIST is downloaded there the first time (about 60 MB). Without a
# network and without the files, the lessons fall back to scikit-learn's 8x8 digits, which ship with
# scikit-learn, and say so in one line. To use a copy you already have: `COURSE_DATA_DIR=/path/to/data make lab`.
#
# ## Widgets and progress bars
#
# The explorers are ipywidgets sliders and dropdowns: move one and its figure redraws (after a moment, when it
# samples). Long loops show a progress bar (tqdm). If you see text such as `IntSlider(value=...)` or
# `Loading widget...` instead of a control, the widget extension is missing from the JupyterLab you started:
# use `make lab` (or `pip install "ipywidgets>=8"` in the environment that runs JupyterLab, then reload the page).
#
# ## Colab and Binder
#
# The course has no public home yet, so the README has no Colab or Binder badges (the set-up cell at the top of
# every notebook says what to do instead). On Colab, upload the course folder, run `%pip install -e
# /content/FOLDER` and restart the runtime; on Binder or any JupyterHub, build the environment from
# `environment.yml`. In both, quick mode is a good idea on the free CPUs, and widgets and progress bars work as
# here.
#
# Next: [Lesson 1: noise schedules](01_noise_schedules.ipynb).
