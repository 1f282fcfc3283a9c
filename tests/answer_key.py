"""The answer key of the worksheet checks: for each check, a right implementation of its TODO, in float32.

Only tests use it (tests/test_checks.py: the key passes every check, harvests round-trip, the visible checks
print one line). The TODOs that other TODOs call are the exception: the package holds a right implementation of
each (``Check.answer``), which a caller's instant check lends it in place of a failing one, and the key takes
those; the kernel's copy of the checks stubs them while grading. Each entry has the signature of the TODO in
the solution notebooks (solutions/*.ipynb, whose own code tests/test_exercises.py runs through the same checks);
most are the catalogue's wrong implementations with every mistake switched off, so the key cannot drift from the
catalogue.
"""
from __future__ import annotations

from typing import Callable

from course_utils.checks import (CHECKS, ref_cosine_betas, ref_linear_betas, ref_predict_x0, ref_q_sample,
                                 ref_respaced_betas)
from course_utils.checks.lab_ddim import denoise_variant, reverse_variant
from course_utils.checks.ws02_forward import chain_variant, posterior_variant
from course_utils.checks.ws03_unet import RefResBlock, RefSmallUNet, RefTimeEmbedding
from course_utils.checks.ws04_training import RefEMA, loss_variant, training_step_variant
from course_utils.checks.ws05_samplers import ddim_variant, ddpm_variant, loop_variant
from course_utils.checks.ws06_guidance import cfg_loss_variant, guided_eps_variant, guided_sampler_variant
from course_utils.checks.ws07_fast_samplers import dpmpp_loop_variant, dpmpp_step_variant


def linear_beta_schedule(T, beta_start=1e-4, beta_end=0.02):
    return ref_linear_betas(T, beta_start, beta_end).float()


def cosine_beta_schedule(T, s=0.008, max_beta=0.999):
    return ref_cosine_betas(T, s, max_beta).float()


def respace(schedule, timesteps):
    return ref_respaced_betas(schedule, timesteps).float()


def q_sample(x0, t, eps, schedule):
    return ref_q_sample(x0, t, eps, schedule).float()


def predict_x0(xt, t, eps, schedule):
    return ref_predict_x0(xt, t, eps, schedule).float()


# check name -> a right implementation of its TODO
ANSWER_KEY: dict[str, Callable] = {
    "linear_beta_schedule": linear_beta_schedule,
    "cosine_beta_schedule": cosine_beta_schedule,
    "diffusion_schedule": CHECKS["diffusion_schedule"].answer(),     # the TODOs that others call lend theirs
    "respace": respace,
    "q_sample": q_sample,
    "q_posterior": posterior_variant(),
    "predict_x0": predict_x0,
    "q_sample_chain": chain_variant(),
    "sinusoidal_embedding": CHECKS["sinusoidal_embedding"].answer(),
    "SinusoidalTimeEmbedding": RefTimeEmbedding,
    "ResBlock": RefResBlock,
    "SmallUNet": RefSmallUNet,
    "diffusion_loss": loss_variant(),
    "training_step": training_step_variant(),
    "EMA": RefEMA,
    "ddpm_step": ddpm_variant(),
    "ddim_step": ddim_variant(),
    "ddim_sample_loop": loop_variant(),
    "cfg_combine": CHECKS["cfg_combine"].answer(),
    "cfg_loss": cfg_loss_variant(),
    "classifier_guided_eps": guided_eps_variant(),
    "guided_ddim_sample": guided_sampler_variant(),
    "denoise": denoise_variant(),
    "dpmpp_2m_step": dpmpp_step_variant(),
    "dpmpp_2m_sample_loop": dpmpp_loop_variant(),
    "reverse_diffusion": reverse_variant(),
}
