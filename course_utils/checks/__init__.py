"""Instant feedback for the worksheets, and the verdicts the grader trusts.

A ``Check`` runs a student's function (or class) on small fixed inputs and compares the outputs with the
course's reference. One module per worksheet holds that worksheet's references, cases, diagnoses and catalogue
of mistakes; the machinery they share is ``framework``:

    framework        CheckResult, Check, CHECKS, MISTAKES, harvest, verdict, run_check, report, ready, helpers
    ws01_schedules   linear_beta_schedule, cosine_beta_schedule, diffusion_schedule (also the lab's), respace
    ws02_forward     q_sample, q_posterior, predict_x0, q_sample_chain
    ws03_unet        sinusoidal_embedding, SinusoidalTimeEmbedding, ResBlock, SmallUNet
    ws04_training    diffusion_loss, training_step, EMA
    ws05_samplers    ddpm_step, ddim_step, ddim_sample_loop
    ws06_guidance    cfg_combine, cfg_loss, classifier_guided_eps, guided_ddim_sample
    ws07_fast_samplers  dpmpp_2m_step, dpmpp_2m_sample_loop
    lab_ddim         denoise, reverse_diffusion
    catalogue        mistakes_markdown (docs/mistakes.md)

A check is split in two so that grading can compute the verdict outside the student's process:
``harvest(name, obj)`` runs in the student's kernel and only collects the raw outputs of the student's object;
``verdict(name, outputs)`` runs in the grader, recomputes the reference and names the first problem with a hint.
(The grader also loads a fresh copy of this package for the harvest, so patching ``course_utils`` in the kernel
changes nothing it trusts.)

Why each worksheet module has its own ``ref_*`` references instead of calling ``course_utils.forward``,
``samplers``, ``nets``, ``training`` or ``guidance``:

- **Written out again, in float64.** Each ``ref_*`` types the paper's equation once more, from the betas (or
  the weights the student's module was built with), in float64; a right float32 answer differs from it by
  rounding only, far below the tolerance.
- **Every catalogued mistake is a switch.** Each ``ref_*`` has keyword switches that reproduce one mistake
  (``ref_q_sample(..., sqrt=False)``, ``ref_ddpm_step(..., last_noise=True)``, ``ref_ddim_step(...,
  use_eta=False)``, ``ref_sinusoidal(..., order="cos_sin")``). A wrong answer gets the hint of the mistake
  whose output it matches, recomputed on the same case, never a guess; ``MISTAKES`` lists those wrong
  implementations and tests/test_checks.py feeds each to its check (docs/mistakes.md lists them for people).
- **Independent of the package.** A bug in ``course_utils`` cannot hide a bug in a student's answer, nor the
  other way round. tests/test_package_matches_checks.py uses that: it runs the package's own functions through
  these checks, so the package and the worksheets cannot disagree unnoticed.

Stochastic functions take their noise as an argument (``ddpm_step(..., noise)``), so every output is
deterministic. In a worksheet, a visible check cell calls ``check_<name>(student_obj)``, which prints its verdict:
"✅ ..." on a pass, "❌ ...: <hint>" on a wrong answer, "⏳ ... not implemented yet" for an untouched TODO.
It never raises for a wrong answer. Cells that need a TODO guard themselves with ``ready(name, obj)``.
"""
from .framework import (CHECKS, FAIL, MISTAKES, PASS, TODO, Check, CheckResult, Outcome, close, harvest,
                        judge_inputs, ready, register, report, run_check, shape_hint, verdict)
from .ws01_schedules import (check_cosine_beta_schedule, check_diffusion_schedule, check_linear_beta_schedule,
                             check_respace, ref_cosine_betas, ref_diffusion_schedule, ref_linear_betas,
                             ref_respaced_betas)
from .ws02_forward import (check_predict_x0, check_q_posterior, check_q_sample, check_q_sample_chain, ref_predict_x0,
                           ref_q_posterior, ref_q_sample)
from .ws03_unet import (check_ResBlock, check_SinusoidalTimeEmbedding, check_sinusoidal_embedding, check_SmallUNet,
                        ref_sinusoidal)
from .ws04_training import TinyEps, check_diffusion_loss, check_EMA, check_training_step, ref_loss
from .ws05_samplers import (check_ddim_sample_loop, check_ddim_step, check_ddpm_step, mixture_fit, ref_ddim_step,
                            ref_ddpm_step)
from .ws06_guidance import (LinearNoisyClassifier, check_cfg_combine, check_cfg_loss, check_classifier_guided_eps,
                            check_guided_ddim_sample)
from .ws07_fast_samplers import check_dpmpp_2m_sample_loop, check_dpmpp_2m_step, ref_dpmpp_2m_step
from .lab_ddim import LabToyNet, check_denoise, check_reverse_diffusion, ref_denoise, ref_reverse_diffusion
from .catalogue import mistakes_markdown

__all__ = [
    # the framework
    "CHECKS", "MISTAKES", "PASS", "FAIL", "TODO", "Check", "CheckResult", "Outcome", "register", "harvest",
    "verdict", "judge_inputs", "run_check", "report", "ready", "shape_hint", "close", "mistakes_markdown",
    # the visible checks, one per TODO, in worksheet order
    "check_linear_beta_schedule", "check_cosine_beta_schedule", "check_diffusion_schedule", "check_respace",
    "check_q_sample", "check_predict_x0", "check_q_posterior", "check_q_sample_chain",
    "check_sinusoidal_embedding", "check_SinusoidalTimeEmbedding", "check_ResBlock", "check_SmallUNet",
    "check_diffusion_loss", "check_training_step", "check_EMA",
    "check_ddpm_step", "check_ddim_step", "check_ddim_sample_loop",
    "check_cfg_combine", "check_cfg_loss", "check_classifier_guided_eps", "check_guided_ddim_sample",
    "check_dpmpp_2m_step", "check_dpmpp_2m_sample_loop",
    "check_denoise", "check_reverse_diffusion",
    # the references and the stand-in networks
    "ref_linear_betas", "ref_cosine_betas", "ref_diffusion_schedule", "ref_respaced_betas", "ref_q_sample",
    "ref_q_posterior",
    "ref_predict_x0", "ref_sinusoidal", "TinyEps", "ref_loss", "ref_ddpm_step", "ref_ddim_step", "LabToyNet",
    "ref_denoise", "ref_reverse_diffusion", "mixture_fit", "LinearNoisyClassifier",
    "ref_dpmpp_2m_step",
]
