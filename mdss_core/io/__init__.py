"""Reading samples: MVTec 3D-AD layout, plain sample folders, typed :class:`Sample`."""

from mdss_core.io.layout import DatasetIndex, category_names, open_dataset
from mdss_core.io.readers import read_gt, read_rgb, read_xyz
from mdss_core.io.sample import Sample, SampleRef

__all__ = [
    "DatasetIndex",
    "Sample",
    "SampleRef",
    "category_names",
    "open_dataset",
    "read_gt",
    "read_rgb",
    "read_xyz",
]
