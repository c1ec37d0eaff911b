"""RGB branch of MDSS: PDN student-teacher trained with the masked dynamic loss (paper 3.1)."""

from mdss_core.rgb.branch import RGBBranch
from mdss_core.rgb.config import RGBConfig
from mdss_core.rgb.pdn import PDN, normalize_images, pdn_output_size
from mdss_core.rgb.teacher import (
    default_teacher,
    load_teacher_file,
    save_teacher_file,
    teacher_or_default,
)
from mdss_core.rgb.train import (
    compute_teacher_stats,
    cosine_d,
    dynamic_loss,
    train_student,
)

__all__ = [
    "PDN",
    "RGBBranch",
    "RGBConfig",
    "compute_teacher_stats",
    "cosine_d",
    "default_teacher",
    "dynamic_loss",
    "load_teacher_file",
    "normalize_images",
    "pdn_output_size",
    "save_teacher_file",
    "teacher_or_default",
    "train_student",
]
