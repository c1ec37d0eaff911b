"""Synthetic MVTec 3D-AD-style datasets with planted colour and geometry defects.

The scene imitates a structured-light sensor seen from above: a tilted noisy background plane,
a posed part, depth noise, missing points at steep slopes, shadows and frame borders, and a
weakly shaded RGB image, so that colour defects are found in RGB and geometry defects in 3D.
"""

from mdss_core.synth.categories import CATEGORIES
from mdss_core.synth.defects import DEFECT_KINDS
from mdss_core.synth.generate import category_defects, generate_dataset, split_test_counts
from mdss_core.synth.sample import SynthSample, render_sample

__all__ = [
    "CATEGORIES",
    "DEFECT_KINDS",
    "SynthSample",
    "category_defects",
    "generate_dataset",
    "render_sample",
    "split_test_counts",
]
