"""numpy → VTK data for the 3D view, kept apart from any widget so it is testable headless.

The organized cloud (H×W×3) becomes a vtkPolyData with one vertex per kept point, a ``score``
array (per-point 3D score) and an ``rgb`` array (the image colour). Index arrays map points back to
pixels and pixels to points, which is how 2D clicks, 3D picks and the crosshair stay linked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from vtkmodules.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray
from vtkmodules.vtkCommonCore import vtkLookupTable, vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData

from mdss_app.panels.overlays import score_colormap

SCORE_ARRAY = "score"
RGB_ARRAY = "rgb"
DISPLAY_ARRAY = "display"  # the colours actually drawn (direct RGB)
DIMMED = 0.4  # brightness of points outside a selected region


@dataclass
class CloudData:
    polydata: vtkPolyData
    points: np.ndarray  # (N, 3) float64, metres
    pixel_index: np.ndarray  # (N,) flat pixel index of each point
    point_of_pixel: np.ndarray  # (H*W,) point id, -1 where the pixel has no shown point
    shape: tuple[int, int]

    @property
    def n_points(self) -> int:
        return int(len(self.points))

    def point_at_pixel(self, row: int, col: int) -> int:
        h, w = self.shape
        if not (0 <= row < h and 0 <= col < w):
            return -1
        return int(self.point_of_pixel[row * w + col])

    def pixel_of_point(self, point_id: int) -> tuple[int, int] | None:
        if not 0 <= point_id < self.n_points:
            return None
        row, col = divmod(int(self.pixel_index[point_id]), self.shape[1])
        return row, col

    def points_in_mask(self, mask: np.ndarray) -> np.ndarray:
        """Coordinates of the shown points whose pixel is in ``mask`` (H×W bool)."""
        return self.points[mask.ravel()[self.pixel_index]]

    def scale(self) -> float:
        """Diagonal of the bounding box (sizes markers relative to the object)."""
        if self.n_points == 0:
            return 1.0
        extent = self.points.max(axis=0) - self.points.min(axis=0)
        return float(np.linalg.norm(extent)) or 1.0


def sensor_view(cloud: CloudData) -> tuple[np.ndarray, np.ndarray]:
    """The sensor's viewing direction and the "up" that shows the cloud like its image.

    An organized cloud keeps the image grid, so fitting ``xyz ≈ a + row·d_row + col·d_col``
    gives the directions of image rows and columns in 3D. Looking along ``d_col × d_row``
    with "up" = −d_row puts row 0 at the top and column 0 on the left, as in the 2D views,
    whatever the sensor's axes are. When the points sit in front of the origin (the sensor
    at (0, 0, 0), as MVTec 3D-AD's clouds are), the mean ray from the origin is used as the
    direction instead: the camera then sees the object the way the sensor did.
    """
    default = np.array([0.0, 0.0, 1.0]), np.array([0.0, -1.0, 0.0])
    if cloud.n_points < 3:
        return default
    rows, cols = np.divmod(cloud.pixel_index, cloud.shape[1])
    design = np.column_stack([np.ones(len(rows)), rows, cols]).astype(np.float64)
    coef, *_ = np.linalg.lstsq(design, cloud.points, rcond=None)
    d_row, d_col = coef[1], coef[2]
    forward = np.cross(d_col, d_row)
    grid_scale = np.linalg.norm(d_row) * np.linalg.norm(d_col)
    if grid_scale == 0 or np.linalg.norm(forward) < 1e-6 * grid_scale:
        return default  # the points lie along one line of the image: no plane to face
    forward /= np.linalg.norm(forward)
    mean_ray = cloud.points.mean(axis=0)
    if np.linalg.norm(mean_ray) > 0:
        mean_ray = mean_ray / np.linalg.norm(mean_ray)
        if float(mean_ray @ forward) > 0.5:
            forward = mean_ray
    up = -(d_row - (d_row @ forward) * forward)
    if np.linalg.norm(up) < 1e-12:
        return default
    return forward, up / np.linalg.norm(up)


def build_cloud(
    xyz: np.ndarray,
    keep: np.ndarray | None = None,
    scores: np.ndarray | None = None,
    rgb: np.ndarray | None = None,
) -> CloudData:
    """Points of ``xyz`` that are valid (non-zero) and in ``keep`` (e.g. ``object_mask``)."""
    h, w = xyz.shape[:2]
    valid = np.any(xyz != 0, axis=2)
    if keep is not None:
        valid &= keep.astype(bool)
    pixel_index = np.flatnonzero(valid)
    points = xyz.reshape(-1, 3)[pixel_index].astype(np.float64)
    point_of_pixel = np.full(h * w, -1, np.int64)
    point_of_pixel[pixel_index] = np.arange(len(pixel_index))

    vtk_points = vtkPoints()
    vtk_points.SetData(numpy_to_vtk(points, deep=True))
    vertices = vtkCellArray()
    offsets = numpy_to_vtkIdTypeArray(np.arange(len(points) + 1, dtype=np.int64), deep=True)
    connectivity = numpy_to_vtkIdTypeArray(np.arange(len(points), dtype=np.int64), deep=True)
    vertices.SetData(offsets, connectivity)
    poly = vtkPolyData()
    poly.SetPoints(vtk_points)
    poly.SetVerts(vertices)

    cloud = CloudData(poly, points, pixel_index, point_of_pixel, (h, w))
    set_scores(cloud, scores)
    colours = (
        rgb.reshape(-1, 3)[pixel_index]
        if rgb is not None
        else np.full((len(points), 3), 200, np.uint8)
    )
    rgb_array = numpy_to_vtk(np.ascontiguousarray(colours, dtype=np.uint8), deep=True)
    rgb_array.SetName(RGB_ARRAY)
    poly.GetPointData().AddArray(rgb_array)
    return cloud


def set_scores(cloud: CloudData, scores: np.ndarray | None) -> None:
    """(Re)place the per-point ``score`` array from an H×W map (zeros when ``None``)."""
    values = (
        np.zeros(cloud.n_points, np.float32)
        if scores is None
        else scores.reshape(-1)[cloud.pixel_index].astype(np.float32)
    )
    array = numpy_to_vtk(values, deep=True)
    array.SetName(SCORE_ARRAY)
    point_data = cloud.polydata.GetPointData()
    point_data.RemoveArray(SCORE_ARRAY)
    point_data.AddArray(array)
    point_data.SetActiveScalars(SCORE_ARRAY)
    cloud.polydata.Modified()


def score_lookup_table(low: float, high: float, size: int = 256) -> vtkLookupTable:
    """The same colour map as the 2D panels, as a VTK table over ``[low, high]``."""
    colours = score_colormap().getLookupTable(nPts=size, alpha=False, mode="float")
    table = vtkLookupTable()
    table.SetNumberOfTableValues(size)
    for i, (r, g, b) in enumerate(colours[:, :3]):
        table.SetTableValue(i, float(r), float(g), float(b), 1.0)
    table.SetRange(float(low), float(max(high, low + 1e-12)))
    table.SetRampToLinear()
    table.Build()
    return table


def point_colours(
    cloud: CloudData,
    mode: str,
    levels: tuple[float, float],
    selected: np.ndarray | None = None,
    size: int = 256,
) -> np.ndarray:
    """Per-point RGB (uint8): the score colour map over ``levels`` or the image colour.

    With ``selected`` (bool per point), the other points are dimmed so the region stands out
    while keeping its own colours.
    """
    point_data = cloud.polydata.GetPointData()
    if mode == "score":
        from vtkmodules.util.numpy_support import vtk_to_numpy

        scores = vtk_to_numpy(point_data.GetArray(SCORE_ARRAY)).astype(np.float64)
        low, high = levels
        position = np.clip((scores - low) / max(high - low, 1e-12), 0.0, 1.0)
        table = score_colormap().getLookupTable(nPts=size, alpha=False, mode="byte")[:, :3]
        colours = table[np.round(position * (size - 1)).astype(int)]
    else:
        from vtkmodules.util.numpy_support import vtk_to_numpy

        colours = vtk_to_numpy(point_data.GetArray(RGB_ARRAY)).reshape(-1, 3)
    colours = np.asarray(colours, np.float32)
    if selected is not None and selected.any():
        colours[~selected] *= DIMMED
    return colours.astype(np.uint8)


def set_display_colours(cloud: CloudData, colours: np.ndarray) -> None:
    array = numpy_to_vtk(np.ascontiguousarray(colours, dtype=np.uint8), deep=True)
    array.SetName(DISPLAY_ARRAY)
    point_data = cloud.polydata.GetPointData()
    point_data.RemoveArray(DISPLAY_ARRAY)
    point_data.AddArray(array)
    cloud.polydata.Modified()
