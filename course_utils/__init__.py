"""course_utils: the helper package of the diffusion-models course (DDPM, DDIM, guidance) in PyTorch.

One module per concept: ``schedules``, ``forward``, ``nets``, ``training``, ``samplers``, ``guidance``,
``data``, ``viz``, ``device``. See GLOSSARY.md for the names of the paper's symbols.
"""
from .device import get_device
from .schedules import NoiseSchedule, diffusion_schedule

__all__ = ["NoiseSchedule", "diffusion_schedule", "get_device"]
__version__ = "0.1.0"
