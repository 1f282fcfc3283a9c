"""course_utils: the helper package of the diffusion-models course (DDPM, DDIM, guidance) in PyTorch.

One module per concept, each readable in one sitting; each module's docstring names the paper and the
equations it implements. GLOSSARY.md gives the one name of every paper symbol (``eps`` is the true noise,
``eps_pred`` the network's prediction; t runs 0..T-1). tests/test_packaging.py checks that every module
and subpackage is named below.

What a student reads: the concepts, in the order of the lessons.

- ``schedules``: noise schedules (DDPM's linear, Improved DDPM's cosine) and every per-step quantity derived
  from the betas (``NoiseSchedule``); the lab's continuous cosine schedule (``diffusion_schedule``)
- ``forward``: the forward process: q(x_t given x_0) in closed form, the posterior q(x_{t-1} given x_t, x_0),
  the Markov chain step by step
- ``nets``: the noise predictors eps_theta (a DDPM UNet, an MLP for 2-D points) and the noisy classifier
- ``model_inputs``: what a call ``model(xt, t, y)`` accepts, checked with a message that names the fix
- ``training``: DDPM's simple loss, the EMA of the weights, ``train`` with resumable checkpoints
- ``samplers``: DDPM ancestral sampling, DDIM (any eta, any sub-sequence of timesteps), DDIM inversion
- ``solvers``: fast deterministic samplers of the probability-flow ODE: DDIM as Euler, Heun, DPM-Solver++(2M)
- ``guidance``: classifier-free guidance and classifier guidance
- ``analytic``: the exact optimal noise predictor of Gaussian-mixture data, a known answer for samplers
- ``data``: 2-D toy distributions and image datasets, mapped to [-1, 1]
- ``metrics``: FID and KID on the course classifier's features, class accuracy, calibration
- ``viz``: plots: image grids with a fixed [-1, 1] range, schedules, trajectories, animations
- ``widgets``: the lessons' interactive explorers (ipywidgets)
- ``device``: where to run (CUDA, then MPS, then the CPU), and where a sampler runs
- ``settings``: run-time switches read from the environment (quick mode)
- ``progress``: the progress bars of sampling and training (tqdm's), which end on their last count in a saved notebook
- ``checkpoints``: the course's pretrained models, loaded by name; their weights and cards lie in the
  folder ``course_utils/checkpoints/``

Instructor tools: a student calls the checks in the worksheets but need not read any of these.

- ``checks``: the worksheets' instant feedback (``ready``, ``check_<name>``) and the verdicts the grader
  trusts; its internals (each worksheet's references, cases and catalogue of mistakes) are for instructors
- ``exercises``: generates the student worksheets (exercises/) from the solutions (solutions/)
- ``grade``: grades a class's worksheets
- ``grade_callees``: a TODO that failed beside a failing TODO it calls, graded again with the course's answer
  in its place (a second run)
- ``grade_cli``: the ``course-grade`` command: hands ``merge``, ``export-lms``, ``export-gradescope`` to their
  modules before anything imports torch, else grades (``grade.main``)
- ``grade_files``: reads what a student submits (the notebook's JSON within bounds, the file without following
  links, which notebook of a folder), with the standard library alone
- ``grade_feedback``: grades.csv and each student's feedback file; the text helpers every output passes through
- ``grade_shards``: ``--shard K/N`` slices of a class for several machines, and ``merge`` of their results
- ``grade_report``: ``report.html``, what the class got wrong: scores, pass rates, ranked mistakes, who needs help
- ``grade_lms``: ``export-lms``, grades.csv in the columns Canvas and Moodle import
- ``grade_scan``: what a submission's own cells change of torch, numpy, builtins or the course (read, never run)
- ``sandbox``: runs one student's notebook in isolation, for the grader
- ``gradescope``: a Gradescope autograder bundle that runs the grader on each submission
- ``pretrain``: trains the pretrained models of ``checkpoints``, one command each
"""
__all__ = ["NoiseSchedule", "diffusion_schedule", "get_device"]
__version__ = "0.1.0"
_LAZY = {"NoiseSchedule": "schedules", "diffusion_schedule": "schedules", "get_device": "device"}


def __getattr__(name: str):
    """``course_utils.NoiseSchedule`` and the others of ``__all__``, imported on first use (PEP 562): importing
    the package itself does not import torch, so the grader's tools that need none (``course-grade export-lms``, the
    Gradescope process that waits for course-grade) start in a fraction of a second and hold hundreds of MB less
    (``merge`` imports torch when it writes report.html, which files failures by the checks' catalogue)."""
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
