"""The simulated structured-light sensor: pixel grid, pose, background plane, noise, holes, shading.

Conventions: image columns run along +x and rows along +y; heights are metres above the
background plane (towards the camera); z is the distance from the camera, so z = plane - height.
Every random draw of a sample's scene happens in :meth:`SensorDraw.draw`, independent of any
planted defect, so a sample and its defect-free twin share exactly the same noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mdss_core.synth.fields import smooth_noise, smoothstep, white_noise

FRAME_WIDTH_M = 0.10  # the frame spans ~10 cm whatever the image size
WORKING_DISTANCE_M = 0.65  # camera to background plane, like MVTec 3D-AD (z ≈ 0.62–0.69 m)

# The projector sits beside the camera: surfaces it cannot light have no points (upper-right
# light source → shadows to the lower left, as in the real cable gland samples).
PROJECTOR_DIRECTION = (0.8, -0.6)  # unit vector in (col, row) pointing towards the projector
PROJECTOR_TAN = 0.30  # tan of the projector ray angle from vertical
# The RGB key light, from the upper left; weak on purpose (ambient-dominated ring-light look).
LIGHT_DIRECTION = (-0.6, -0.8)
LIGHT_TAN = 0.55
AMBIENT = 0.8
DIFFUSE = 0.2


@dataclass(frozen=True)
class Grid:
    """Pixel grid of one image size: metric x, y of each pixel on the nominal plane."""

    size: int
    spacing: float  # metres per pixel
    x: np.ndarray  # (H, W) float64 metres, 0 at the image centre
    y: np.ndarray
    cols: np.ndarray  # (H, W) float32 pixel coordinates
    rows: np.ndarray

    @classmethod
    def make(cls, size: int) -> Grid:
        spacing = FRAME_WIDTH_M / size
        centre = (size - 1) / 2.0
        idx = np.arange(size, dtype=np.float32)
        cols, rows = np.meshgrid(idx, idx)
        x = (cols.astype(np.float64) - centre) * spacing
        y = (rows.astype(np.float64) - centre) * spacing
        return cls(size, spacing, x, y, cols, rows)


@dataclass(frozen=True)
class Pose:
    """In-plane pose of the object: rotation about the vertical axis and a translation."""

    angle: float
    tx: float
    ty: float

    @classmethod
    def draw(cls, rng: np.random.Generator, max_shift_m: float) -> Pose:
        angle = float(rng.uniform(0.0, 2.0 * np.pi))
        tx, ty = rng.uniform(-max_shift_m, max_shift_m, size=2)
        return cls(angle, float(tx), float(ty))

    def local(self, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
        """Object-frame coordinates (s, t) in metres of every pixel."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        dx = grid.x - self.tx
        dy = grid.y - self.ty
        return c * dx + s * dy, -s * dx + c * dy


def height_gradient(height: np.ndarray, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Slopes dh/dx (along columns) and dh/dy (along rows), dimensionless."""
    gy, gx = np.gradient(height, spacing)
    return gx, gy


def cast_shadow(
    height: np.ndarray, spacing: float, direction: tuple[float, float], tan_angle: float
) -> np.ndarray:
    """Pixels a light along ``direction`` (col, row), ``tan_angle`` from vertical, cannot reach.

    A pixel is shadowed when a surface point k pixels towards the light is higher than the ray
    from the pixel to the light at that distance. Vectorised as one array shift per step.
    """
    rise = spacing / tan_angle  # height the ray gains per pixel travelled towards the light
    steps = int(np.ceil(float(height.max()) / rise)) + 1
    size_r, size_c = height.shape
    if steps <= 1:
        return np.zeros(height.shape, dtype=bool)
    pad = steps + 1
    padded = np.pad(height, pad)
    shadow = np.zeros(height.shape, dtype=bool)
    seen: set[tuple[int, int]] = set()
    for k in range(1, steps + 1):
        oc = int(round(k * direction[0]))
        orow = int(round(k * direction[1]))
        if (oc, orow) in seen or (oc, orow) == (0, 0):
            continue
        seen.add((oc, orow))
        ahead = padded[pad + orow : pad + orow + size_r, pad + oc : pad + oc + size_c]
        shadow |= ahead > height + np.hypot(oc, orow) * rise
    return shadow


def cavity_darkening(height: np.ndarray, spacing: float) -> np.ndarray:
    """Ambient-occlusion factor: pits much lower than their surroundings get darker.

    Quadratic in the depth below the local mean so shallow dents stay almost invisible while
    deep holes look dark, as under a diffuse ring light.
    """
    sigma_px = max(0.8, 2.0e-3 / spacing)
    surround = cv2.GaussianBlur(height.astype(np.float32), (0, 0), sigma_px)
    depth = np.clip(surround - height, 0.0, None)
    return np.exp(-((depth / 3.0e-3) ** 2)).astype(np.float32)


@dataclass(frozen=True)
class SensorDraw:
    """Every random quantity of one capture that does not depend on the object's surface."""

    grid: Grid
    z0: float  # plane distance at the image centre
    plane_slope: tuple[float, float]  # dz/dx, dz/dy of the tilted background plane
    plane_ripple: np.ndarray  # low-frequency waviness of the plane (metres)
    z_noise: np.ndarray  # per-pixel depth noise (metres)
    slope_dropout: np.ndarray  # uniform [0, 1) thresholds for steep-slope dropouts
    static_missing: np.ndarray  # bool: border strips, small blobs, sparse dropouts
    exposure: np.ndarray  # (3,) per-channel gain (white balance × exposure)
    image_noise: np.ndarray  # (H, W, 3) float32 image noise in [0, 1] units

    @classmethod
    def draw(cls, grid: Grid, object_mask: np.ndarray, rng: np.random.Generator) -> SensorDraw:
        n = grid.size
        tilt = np.deg2rad(rng.uniform(1.0, 5.0))
        azimuth = rng.uniform(0.0, 2.0 * np.pi)
        slope = (float(np.tan(tilt) * np.cos(azimuth)), float(np.tan(tilt) * np.sin(azimuth)))
        z0 = WORKING_DISTANCE_M + float(rng.uniform(-0.005, 0.005))
        ripple = 0.05e-3 * smooth_noise(rng, n, n / 4.0)
        z_sigma = rng.uniform(0.10e-3, 0.20e-3)
        z_noise = z_sigma * white_noise(rng, n)
        slope_dropout = rng.random((n, n), dtype=np.float32)
        static_missing = _static_missing(grid, object_mask, rng)
        exposure = rng.uniform(0.95, 1.05) * rng.uniform(0.98, 1.02, size=3)
        image_sigma = rng.uniform(1.5, 2.5) / 255.0
        image_noise = image_sigma * rng.standard_normal((n, n, 3), dtype=np.float32)
        return cls(
            grid,
            z0,
            slope,
            ripple,
            z_noise,
            slope_dropout,
            static_missing,
            exposure.astype(np.float32),
            image_noise,
        )

    def plane_z(self) -> np.ndarray:
        g = self.grid
        return self.z0 + self.plane_slope[0] * g.x + self.plane_slope[1] * g.y + self.plane_ripple

    def missing(self, height: np.ndarray) -> np.ndarray:
        """Pixels without a 3D point for this surface: steep slopes, projector shadow, static."""
        gx, gy = height_gradient(height, self.grid.spacing)
        # Points thin out from ~58° and vanish by ~74°: ragged, not a hard contour.
        p_missing = smoothstep(1.6, 3.5, np.hypot(gx, gy))
        steep = self.slope_dropout < p_missing
        shadow = cast_shadow(height, self.grid.spacing, PROJECTOR_DIRECTION, PROJECTOR_TAN)
        return steep | shadow | self.static_missing

    def xyz(self, height: np.ndarray, missing: np.ndarray) -> np.ndarray:
        """Organized point cloud (H, W, 3) float32; missing points exactly (0, 0, 0)."""
        z = self.plane_z() - height + self.z_noise
        # Pinhole camera: the lateral position scales with depth (focal length = z0 / spacing).
        scale = z / WORKING_DISTANCE_M
        xyz = np.stack([self.grid.x * scale, self.grid.y * scale, z], axis=-1).astype(np.float32)
        xyz[missing] = 0.0
        return xyz

    def rgb(
        self,
        albedo: np.ndarray,
        height: np.ndarray,
        shadow_height: np.ndarray,
        specular: np.ndarray,
    ) -> np.ndarray:
        """Camera image (H, W, 3) uint8 from albedo and surface shape.

        ``shadow_height`` (the defect-free surface) casts the soft object shadow so a planted
        defect changes the image only where it lies.
        """
        spacing = self.grid.spacing
        gx, gy = height_gradient(height, spacing)
        norm = np.sqrt(gx * gx + gy * gy + 1.0)
        sin_l = LIGHT_TAN / np.sqrt(1.0 + LIGHT_TAN**2)
        cos_l = 1.0 / np.sqrt(1.0 + LIGHT_TAN**2)
        lx, ly = LIGHT_DIRECTION[0] * sin_l, LIGHT_DIRECTION[1] * sin_l
        n_dot_l = (-gx * lx - gy * ly + cos_l) / norm
        diffuse = np.clip(n_dot_l, 0.0, None) / cos_l  # 1 on a flat surface
        # Specular lobe (half vector between light and the camera above) for metal parts.
        hx, hy, hz = lx, ly, cos_l + 1.0
        h_norm = np.sqrt(hx * hx + hy * hy + hz * hz)
        n_dot_h = np.clip((-gx * hx - gy * hy + hz) / (norm * h_norm), 0.0, 1.0)
        shade = AMBIENT + DIFFUSE * diffuse + specular * n_dot_h**40
        shade = shade * cavity_darkening(height, spacing)
        cast = cast_shadow(shadow_height, spacing, LIGHT_DIRECTION, LIGHT_TAN).astype(np.float32)
        soft = cv2.GaussianBlur(cast, (0, 0), max(0.8, 1.2e-3 / spacing))
        shade = shade * (1.0 - 0.45 * soft)
        r2 = (self.grid.x**2 + self.grid.y**2) / (FRAME_WIDTH_M / 2.0) ** 2
        shade = shade * (1.0 - 0.08 * r2)  # lens vignetting
        image = albedo * shade[..., None].astype(np.float32) * self.exposure
        image = cv2.GaussianBlur(image.astype(np.float32), (0, 0), 0.6)  # optics blur
        image = image + self.image_noise
        return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def _static_missing(grid: Grid, object_mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Holes that do not depend on the surface: frame borders, small blobs, sparse dropouts."""
    n = grid.size
    missing = np.zeros((n, n), dtype=bool)
    # Sometimes the projector field does not cover a border of the frame (ragged strip).
    if rng.random() < 0.35:
        for side in rng.choice(4, size=int(rng.integers(1, 3)), replace=False):
            width = rng.uniform(0.01, 0.06) * n
            edge = width * (1.0 + 0.25 * smooth_noise(rng, n, n / 4.0)[0])
            depth = {0: grid.cols, 1: n - 1 - grid.cols, 2: grid.rows, 3: n - 1 - grid.rows}
            along = grid.rows if side < 2 else grid.cols
            limit = edge[along.astype(np.int64)]
            missing |= depth[int(side)] < limit
    # A few small blobs on the background (dark or glossy spots the sensor cannot decode).
    background = np.flatnonzero(~object_mask)
    for _ in range(int(rng.poisson(3.0))):
        centre = background[rng.integers(len(background))] if len(background) else 0
        cr, cc = divmod(int(centre), n)
        radius = max(1.0, rng.uniform(0.4e-3, 1.5e-3) / grid.spacing)
        blob = (grid.cols - cc) ** 2 + (grid.rows - cr) ** 2 < radius**2
        missing |= blob & ~object_mask
    # Isolated dropouts, denser on the matte dark background than on the part.
    rate = np.where(object_mask, rng.uniform(0.0, 0.003), rng.uniform(0.002, 0.03))
    missing |= rng.random((n, n)) < rate
    return missing
