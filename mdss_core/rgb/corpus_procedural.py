"""Procedural stand-ins for generic photographs: noise, shapes, patterns, material-like textures.

A distilled teacher only needs features that generalise, so variety (frequencies, colours,
edges, orientations, materials, blur levels) matters more than realism. Every image is a
pure function of ``(seed, index)``: a corpus can be rebuilt bit for bit anywhere.
"""

from __future__ import annotations

import cv2
import numpy as np

_CV_MAPS = (
    cv2.COLORMAP_BONE, cv2.COLORMAP_JET, cv2.COLORMAP_OCEAN, cv2.COLORMAP_PINK,
    cv2.COLORMAP_HOT, cv2.COLORMAP_AUTUMN, cv2.COLORMAP_SUMMER, cv2.COLORMAP_WINTER,
    cv2.COLORMAP_SPRING, cv2.COLORMAP_COOL, cv2.COLORMAP_VIRIDIS, cv2.COLORMAP_CIVIDIS,
    cv2.COLORMAP_TWILIGHT, cv2.COLORMAP_TURBO, cv2.COLORMAP_MAGMA, cv2.COLORMAP_INFERNO,
)  # fmt: skip


def procedural_image(seed: int, index: int, size: int = 512) -> np.ndarray:
    """One ``size``×``size`` RGB uint8 image, fully determined by ``(seed, index)``."""
    rng = np.random.default_rng([seed, index])
    image = _layer(rng, size)
    if rng.random() < 0.5:  # blend a second layer through a soft noise mask: mixed materials
        mask = _smooth(_noise(rng, size, octaves=3), rng.uniform(0.02, 0.2))[..., None]
        image = image * mask + _layer(rng, size) * (1 - mask)
    if rng.random() < 0.7:
        image = _shapes(rng, image, int(rng.integers(1, 12)))
    return _finish(rng, image)


def _layer(rng: np.random.Generator, size: int) -> np.ndarray:
    makers = (_coloured_noise, _pattern, _metal, _fabric, _plastic, _veins, _cells, _gradient)
    return makers[int(rng.integers(len(makers)))](rng, size)


def _noise(rng: np.random.Generator, size: int, octaves: int = 5, persistence: float = 0.5):
    """Multi-octave value noise in [0, 1]: random grids upsampled bicubically and summed."""
    base = int(rng.integers(2, 6))
    field = np.zeros((size, size), np.float32)
    amplitude = 1.0
    for octave in range(octaves):
        cells = min(size, base * 2**octave)
        grid = rng.random((cells, cells), dtype=np.float32)
        field += amplitude * cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
        amplitude *= persistence
    return _normalise(field)


def _normalise(field: np.ndarray) -> np.ndarray:
    low, high = float(field.min()), float(field.max())
    return ((field - low) / (high - low + 1e-6)).astype(np.float32)


def _smooth(field: np.ndarray, sharpness: float) -> np.ndarray:
    """Soft threshold around the median: turns noise into blob masks with soft edges."""
    return 1.0 / (1.0 + np.exp(-(field - np.median(field)) / sharpness))


def _palette(rng: np.random.Generator, field: np.ndarray) -> np.ndarray:
    """Map a [0, 1] field to RGB floats: an OpenCV colour map or a random 2-5 colour ramp."""
    if rng.random() < 0.35:
        which = _CV_MAPS[int(rng.integers(len(_CV_MAPS)))]
        bgr = cv2.applyColorMap((field * 255).astype(np.uint8), which)
        return bgr[..., ::-1].astype(np.float32) / 255
    stops = int(rng.integers(2, 6))
    at = np.sort(np.concatenate([[0.0, 1.0], rng.random(stops - 2)]))
    colours = rng.random((stops, 3)) * rng.uniform(0.3, 1.0)  # some palettes stay dark
    return np.stack([np.interp(field, at, colours[:, c]) for c in range(3)], -1).astype(np.float32)


def _coloured_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    field = _noise(rng, size, int(rng.integers(2, 8)), rng.uniform(0.3, 0.8))
    if rng.random() < 0.3:
        field = np.abs(field - 0.5) * 2  # ridged noise: crests like rock or terrain
    return _palette(rng, field)


def _pattern(rng: np.random.Generator, size: int) -> np.ndarray:
    """Stripes, checkers or a grid, drawn larger then warped by a random affine transform."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    period = rng.uniform(0.01, 0.2)
    kind = int(rng.integers(3))
    if kind == 0:
        wave = np.sin(2 * np.pi * x / period)
        field = wave if rng.random() < 0.5 else np.sign(wave)
    elif kind == 1:
        field = np.sign(np.sin(np.pi * x / period) * np.sin(np.pi * y / period))
    else:
        width = rng.uniform(0.05, 0.3)
        lines = (np.minimum((x / period) % 1, (y / period) % 1) < width).astype(np.float32)
        field = lines * 2 - 1
    field = (field + 1) / 2
    if rng.random() < 0.4:
        field = field * 0.7 + _noise(rng, size, 4) * 0.3  # wear and dirt
    colour = _palette(rng, field.astype(np.float32))
    angle, scale = rng.uniform(0, 180), rng.uniform(0.7, 1.8)
    warp = cv2.getRotationMatrix2D((size / 2, size / 2), angle, scale)
    warp[:, :2] += rng.normal(0, 0.15, (2, 2))  # shear: the pattern is seen at an angle
    return cv2.warpAffine(colour, warp, (size, size), borderMode=cv2.BORDER_REFLECT)


def _metal(rng: np.random.Generator, size: int) -> np.ndarray:
    """Brushed metal: noise stretched along one direction, a tint and a soft highlight band."""
    streaks = rng.random((size, max(4, size // int(rng.integers(8, 64)))), dtype=np.float32)
    streaks = cv2.resize(streaks, (size, size), interpolation=cv2.INTER_LINEAR).T
    streaks = cv2.GaussianBlur(streaks, (0, 0), 1.0)
    y = np.linspace(-1, 1, size, dtype=np.float32)[:, None]
    band = np.exp(-((y - rng.uniform(-0.8, 0.8)) ** 2) / rng.uniform(0.05, 0.6))
    grey = 0.35 + 0.25 * streaks + 0.4 * band
    tint = np.array([1.0, 1.0, 1.0]) + rng.normal(0, 0.08, 3)
    image = np.clip(grey[..., None] * tint, 0, 1).astype(np.float32)
    return _rotate(rng, image)


def _fabric(rng: np.random.Generator, size: int) -> np.ndarray:
    """Woven threads: two sine families modulated by per-thread noise, in a random colour."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    period = rng.uniform(3, 16)
    warp_threads = 0.5 + 0.5 * np.sin(2 * np.pi * x / period)
    weft_threads = 0.5 + 0.5 * np.sin(2 * np.pi * y / period)
    over = np.sign(np.sin(np.pi * x / period) * np.sin(np.pi * y / period)) > 0
    weave = np.where(over, warp_threads, weft_threads)
    weave = weave * (0.7 + 0.3 * _noise(rng, size, 6))
    colour = rng.random(3) * 0.8 + 0.1
    image = (weave[..., None] * colour + 0.15 * (1 - weave[..., None])).astype(np.float32)
    return _rotate(rng, image)


def _plastic(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth coloured surface with faint mottling and one or two glossy highlights."""
    base = rng.random(3).astype(np.float32)
    mottle = _noise(rng, size, 3)[..., None] * rng.uniform(0.02, 0.15)
    image = base * (0.85 + mottle)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    for _ in range(int(rng.integers(1, 3))):
        cy, cx, r = rng.random(), rng.random(), rng.uniform(0.03, 0.3)
        spot = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))
        image = image + spot[..., None] * rng.uniform(0.2, 0.8)
    return np.clip(image, 0, 1).astype(np.float32)


def _veins(rng: np.random.Generator, size: int) -> np.ndarray:
    """Marble or wood: a sine of a coordinate disturbed by turbulence noise."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    turbulence = _noise(rng, size, 6) * rng.uniform(2, 12)
    if rng.random() < 0.5:
        field = np.sin((x * rng.uniform(2, 12) + turbulence) * np.pi)  # marble bands
    else:
        cx, cy = rng.uniform(-0.5, 1.5, 2)
        rings = np.hypot(x - cx, y - cy) * rng.uniform(10, 40)
        field = np.sin((rings + turbulence * 0.3) * np.pi)  # wood rings
    return _palette(rng, _normalise(field))


def _cells(rng: np.random.Generator, size: int) -> np.ndarray:
    """Voronoi-like cells (stones, grains, cells) from a distance transform of random seeds."""
    seeds = np.full((size, size), 255, np.uint8)
    count = int(rng.integers(10, 400))
    seeds[rng.integers(0, size, count), rng.integers(0, size, count)] = 0
    distance, labels = cv2.distanceTransformWithLabels(
        seeds, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    shades = rng.random(count + 1).astype(np.float32)
    field = shades[labels % (count + 1)]
    edges = _normalise(distance)
    field = field * (1 - rng.uniform(0, 0.8) * edges)
    return _palette(rng, _normalise(field))


def _gradient(rng: np.random.Generator, size: int) -> np.ndarray:
    """Linear or radial colour gradients: skies, studio backdrops, lit walls."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if rng.random() < 0.5:
        angle = rng.uniform(0, 2 * np.pi)
        field = x * np.cos(angle) + y * np.sin(angle)
    else:
        field = np.hypot(x - rng.random(), y - rng.random())
    return _palette(rng, _normalise(field))


def _rotate(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    size = image.shape[0]
    warp = cv2.getRotationMatrix2D((size / 2, size / 2), rng.uniform(0, 180), 1.5)
    return cv2.warpAffine(image, warp, (size, size), borderMode=cv2.BORDER_REFLECT)


def _shapes(rng: np.random.Generator, image: np.ndarray, count: int) -> np.ndarray:
    """Polygons, ellipses and lines with shading, soft edges and sometimes a drop shadow."""
    size = image.shape[0]
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    for _ in range(count):
        mask = np.zeros((size, size), np.uint8)
        kind = int(rng.integers(3))
        if kind == 0:
            corners = rng.integers(3, 9)
            centre, radius = rng.random(2) * size, rng.uniform(0.05, 0.4) * size
            angles = np.sort(rng.uniform(0, 2 * np.pi, corners))
            radii = radius * rng.uniform(0.4, 1.0, corners)
            points = centre + np.stack([np.cos(angles), np.sin(angles)], -1) * radii[:, None]
            cv2.fillPoly(mask, [points.astype(np.int32)], 255, cv2.LINE_AA)
        elif kind == 1:
            centre = tuple(int(v) for v in rng.integers(0, size, 2))
            axes = tuple(int(v) for v in rng.integers(size // 40, size // 3, 2))
            cv2.ellipse(mask, centre, axes, rng.uniform(0, 180), 0, 360, 255, -1, cv2.LINE_AA)
        else:
            start = tuple(int(v) for v in rng.integers(0, size, 2))
            end = tuple(int(v) for v in rng.integers(0, size, 2))
            cv2.line(mask, start, end, 255, int(rng.integers(1, size // 30)), cv2.LINE_AA)
        alpha = mask.astype(np.float32) / 255
        if rng.random() < 0.6:
            alpha = cv2.GaussianBlur(alpha, (0, 0), rng.uniform(0.5, 6))
        if rng.random() < 0.3:  # shadow: the shape's blurred mask, shifted and darkened
            shift = np.float32([[1, 0, rng.uniform(-15, 15)], [0, 1, rng.uniform(-15, 15)]])
            shadow = cv2.GaussianBlur(cv2.warpAffine(alpha, shift, (size, size)), (0, 0), 8)
            image = image * (1 - 0.5 * shadow[..., None])
        angle = rng.uniform(0, 2 * np.pi)
        shade = 0.6 + 0.6 * (x * np.cos(angle) + y * np.sin(angle))  # light across the shape
        fill = rng.random(3).astype(np.float32) * shade[..., None]
        image = image * (1 - alpha[..., None]) + np.clip(fill, 0, 1) * alpha[..., None]
    return image


def _finish(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Lighting, blur or sharpening, contrast and grain, then to uint8."""
    size = image.shape[0]
    if rng.random() < 0.5:  # uneven illumination
        image = image * (0.6 + 0.6 * _noise(rng, size, 2))[..., None]
    sigma = rng.uniform(0.5, 4)
    blurred = cv2.GaussianBlur(image, (0, 0), sigma)
    amount = rng.uniform(-1.0, 1.5)  # < 0 blurs towards ``blurred``, > 0 sharpens (unsharp mask)
    detail = image - blurred
    image = image + amount * detail if amount > 0 else blurred + (1 + amount) * detail
    image = (image - 0.5) * rng.uniform(0.6, 1.4) + 0.5 + rng.normal(0, 0.08)
    if rng.random() < 0.5:
        image = image + rng.normal(0, rng.uniform(0.005, 0.04), image.shape)
    if rng.random() < 0.15:  # some images are grey, as some photographs are
        image = np.repeat(image.mean(axis=2, keepdims=True), 3, axis=2)
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
