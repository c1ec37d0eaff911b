"""Synthetic anomalies for DM-GRD: a texture's Fourier amplitude mixed into the image, pasted
through a thresholded Perlin-noise mask inside the part.

Deterministic under a seed: every random draw comes from the ``numpy.random.Generator`` passed
in. Textures are procedural images (:func:`mdss_core.rgb.corpus_procedural.procedural_image`),
never images of the evaluated parts.
"""

from __future__ import annotations

import numpy as np

from mdss_core.rgb.corpus_procedural import procedural_image


def perlin_noise(size: int, cells: int, rng: np.random.Generator) -> np.ndarray:
    """size×size gradient noise in about [-1, 1] with ``cells`` lattice cells per side."""
    angles = rng.uniform(0, 2 * np.pi, (cells + 1, cells + 1))
    gradients = np.stack([np.cos(angles), np.sin(angles)], axis=-1)
    coords = np.arange(size) * cells / size
    cell = coords.astype(int)
    frac = coords - cell
    fy, fx = np.meshgrid(frac, frac, indexing="ij")
    cy, cx = np.meshgrid(cell, cell, indexing="ij")

    def dot(dy: int, dx: int) -> np.ndarray:
        g = gradients[cy + dy, cx + dx]
        return g[..., 0] * (fy - dy) + g[..., 1] * (fx - dx)

    fade = lambda t: 6 * t**5 - 15 * t**4 + 10 * t**3  # noqa: E731
    wy, wx = fade(fy), fade(fx)
    top = dot(0, 0) * (1 - wx) + dot(0, 1) * wx
    bottom = dot(1, 0) * (1 - wx) + dot(1, 1) * wx
    return (top * (1 - wy) + bottom * wy) * np.sqrt(2)


def perlin_mask(
    size: int, region: np.ndarray, rng: np.random.Generator, threshold: float = 0.5
) -> np.ndarray:
    """A non-empty bool mask of thresholded Perlin noise inside ``region`` (a few blobs);
    when the noise misses the region, a disc inside it is used instead."""
    for _ in range(8):
        cells = int(2 ** rng.integers(1, 4))
        mask = (perlin_noise(size, cells, rng) > threshold) & region
        if mask.sum() >= max(16, size * size // 2000):
            return mask
    ys, xs = np.nonzero(region) if region.any() else (np.array([size // 2]), np.array([size // 2]))
    i = int(rng.integers(len(ys)))
    yy, xx = np.ogrid[:size, :size]
    radius = max(2, size // 16)
    disc = (yy - ys[i]) ** 2 + (xx - xs[i]) ** 2 <= radius**2
    return disc & region if (disc & region).any() else disc


def fourier_mix(image: np.ndarray, texture: np.ndarray, strength: float) -> np.ndarray:
    """The image with its Fourier amplitude moved ``strength`` of the way to the texture's
    (phase kept: the structure stays, colour and surface statistics change)."""
    out = np.empty_like(image, dtype=np.float32)
    for c in range(image.shape[2]):
        f_img = np.fft.fft2(image[..., c].astype(np.float32))
        f_tex = np.fft.fft2(texture[..., c].astype(np.float32))
        amplitude = (1 - strength) * np.abs(f_img) + strength * np.abs(f_tex)
        out[..., c] = np.real(np.fft.ifft2(amplitude * np.exp(1j * np.angle(f_img))))
    return np.clip(out, 0, 255)


def texture_bank(count: int, size: int, seed: int) -> np.ndarray:
    """``count`` procedural textures, count×size×size×3 uint8."""
    return np.stack([procedural_image(seed, i, size) for i in range(count)])


def synthesize(
    image: np.ndarray, region: np.ndarray, textures: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 anomalous image, bool mask) from a normal uint8 S×S×3 image."""
    size = image.shape[0]
    texture = textures[int(rng.integers(len(textures)))]
    mixed = fourier_mix(image, texture, float(rng.uniform(0.5, 1.0)))
    mask = perlin_mask(size, region, rng)
    opacity = float(rng.uniform(0.6, 1.0))
    out = image.astype(np.float32)
    out[mask] = (1 - opacity) * out[mask] + opacity * mixed[mask]
    return out.astype(np.uint8), mask
