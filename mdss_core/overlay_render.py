"""Overlays users keep: the anomaly map over the image as the inspector shows it, with a header
(sample, score, decision, model) and a legend (colour bar with the threshold, outline colours).

The colour map and its low-score fade are defined here once; the desktop inspector builds its
look-up tables from the same tables (through ``mdss_core.api``), so an exported PNG and the
window read alike. Drawn with OpenCV only: no plotting library, no display needed.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import cv2
import numpy as np

SCORE_COLORMAP = "inferno"  # perceptually uniform, dark = normal, bright = anomalous
FADE = 0.2  # the lowest fifth of the scale fades to transparent: normal pixels stay visible
OPACITY = 0.6  # the inspector's default overlay opacity
# Outline and decision colours (RGB), the inspector's: threshold orange, ground truth green.
PREDICTION_COLOUR = (255, 179, 71)
GT_COLOUR = (64, 224, 138)
ANOMALOUS_COLOUR = (255, 93, 93)
NORMAL_COLOUR = (63, 185, 109)
_BAND = (21, 23, 27)  # the inspector's background
_TEXT = (217, 222, 229)
_MUTED = (139, 149, 163)
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_MIN_WIDTH = 640  # narrower images are enlarged, so the text stays legible


def score_colours(size: int = 256) -> np.ndarray:
    """``size`` × 3 uint8 RGB table of the score colour map, low scores first."""
    ramp = np.arange(256, dtype=np.uint8)[:, None]
    table = cv2.applyColorMap(ramp, cv2.COLORMAP_INFERNO)[:, 0, ::-1].astype(np.float64)
    if size == 256:
        return table.astype(np.uint8)
    at = np.linspace(0, 255, size)
    channels = [np.interp(at, np.arange(256), table[:, c]) for c in range(3)]
    return np.round(np.stack(channels, axis=1)).astype(np.uint8)


def fade_alpha(size: int = 256, fade: float = FADE) -> np.ndarray:
    """Opacity (0–1) per table entry: rises from 0 to 1 over the lowest ``fade`` fraction."""
    return np.clip(np.arange(size) / max(1.0, fade * size), 0.0, 1.0)


def display_ceiling(pixel_threshold: float, maps: list[np.ndarray] | None = None) -> float:
    """Top of the colour scale: twice the pixel threshold, so the threshold sits mid-scale and
    "above threshold" always looks the same colour. Falls back to the maps' robust maximum
    when the threshold is unusable."""
    if np.isfinite(pixel_threshold) and pixel_threshold > 0:
        return float(2.0 * pixel_threshold)
    peaks = [float(np.percentile(m, 99.9)) for m in maps or [] if m is not None and m.size]
    peak = max(peaks, default=0.0)
    return peak if peak > 0 else 1.0


def grey(rgb: np.ndarray) -> np.ndarray:
    """Dimmed grey copy of an image as RGB: colour stays reserved for the scores."""
    luma = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.repeat((luma * 0.8).astype(np.uint8)[..., None], 3, axis=2)


def blend_scores(
    base: np.ndarray, score_map: np.ndarray, ceiling: float, opacity: float = OPACITY
) -> np.ndarray:
    """``base`` (RGB uint8) tinted by ``score_map`` on the scale 0…``ceiling``, low scores
    fading out as in the inspector."""
    index = (np.clip(np.nan_to_num(score_map) / ceiling, 0.0, 1.0) * 255).astype(np.uint8)
    alpha = (fade_alpha()[index] * opacity)[..., None]
    mixed = base.astype(np.float32) * (1 - alpha) + score_colours()[index] * alpha
    return np.clip(mixed + 0.5, 0, 255).astype(np.uint8)


def draw_outline(
    image: np.ndarray,
    mask: np.ndarray,
    colour: tuple[int, int, int],
    width: int,
    dash: int = 0,
) -> None:
    """Outline every blob of ``mask`` on ``image`` in place; ``dash`` > 0 draws dashes of that
    many contour pixels (the inspector draws the ground truth dashed)."""
    contours, _ = cv2.findContours(
        np.ascontiguousarray(mask, dtype=np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE
    )
    if dash <= 0:
        cv2.drawContours(image, contours, -1, colour, width, lineType=cv2.LINE_AA)
        return
    for contour in contours:
        points = contour[:, 0, :]
        pieces = [points[i : i + dash + 1] for i in range(0, len(points), 2 * dash)]
        cv2.polylines(image, pieces, False, colour, width, lineType=cv2.LINE_AA)


@dataclass(frozen=True)
class OverlayCaption:
    """What the bands around an exported overlay say."""

    sample_key: str
    map_label: str  # what the colours measure, e.g. "fused score = max(RGB, 3D)"
    score: float  # the fused image score the decision uses
    score_relative: float  # score / image threshold (1.0 = at the threshold)
    anomalous: bool
    model_name: str
    pixel_threshold: float


def render_overlay(
    rgb: np.ndarray,
    score_map: np.ndarray,
    caption: OverlayCaption,
    gt: np.ndarray | None = None,
    grey_base: bool = False,
) -> np.ndarray:
    """The annotated overlay: header band, the tinted image with the prediction outline (map ≥
    pixel threshold) and the ground-truth outline (when ``gt`` has defect pixels), legend band.
    """
    ceiling = display_ceiling(caption.pixel_threshold, [score_map])
    h, w = score_map.shape[:2]
    width = max(w, _MIN_WIDTH)
    if w < width:  # small images are enlarged so that outlines and text stay readable
        size = (width, round(h * width / w))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR)
        score_map = cv2.resize(np.asarray(score_map, np.float32), size, cv2.INTER_LINEAR)
        gt = None if gt is None else cv2.resize(gt.astype(np.uint8), size, cv2.INTER_NEAREST)
    image = blend_scores(grey(rgb) if grey_base else rgb, score_map, ceiling)
    unit = width / 640
    line = max(1, round(max(image.shape[:2]) / 400))
    if np.isfinite(caption.pixel_threshold):
        draw_outline(image, score_map >= caption.pixel_threshold, PREDICTION_COLOUR, line)
    has_gt = gt is not None and bool(np.any(gt))
    if has_gt:  # on top, dashed: where both outlines run together, both stay visible
        draw_outline(image, gt, GT_COLOUR, line, dash=max(4, 3 * line))
    bands = (_header(caption, width, unit), image, _legend(caption, ceiling, has_gt, width, unit))
    return np.vstack(bands)


def _ascii(text: str) -> str:
    """OpenCV's fonts draw ASCII only: accents are dropped (é → e), other characters show as
    '?' (the CSV and the report keep the exact names)."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return plain.encode("ascii", "replace").decode("ascii")


def _text(canvas, text, x, y, unit, colour=_TEXT, scale=0.55, bold=False) -> int:
    """Draw ``text`` with its baseline at ``y``; returns the x after it."""
    size, thick = scale * unit, max(1, round(unit * (2 if bold else 1)))
    cv2.putText(canvas, _ascii(text), (int(x), int(y)), _FONT, size, colour, thick, cv2.LINE_AA)
    return int(x + cv2.getTextSize(_ascii(text), _FONT, size, thick)[0][0])


def _text_width(text: str, unit: float, scale: float = 0.55) -> int:
    return cv2.getTextSize(_ascii(text), _FONT, scale * unit, max(1, round(unit)))[0][0]


def _header(caption: OverlayCaption, width: int, unit: float) -> np.ndarray:
    band = np.full((round(62 * unit), width, 3), _BAND, np.uint8)
    pad = round(10 * unit)
    _text(band, caption.sample_key, pad, 24 * unit, unit, scale=0.62, bold=True)
    model = f"model: {caption.model_name}"
    _text(band, model, width - pad - _text_width(model, unit, 0.5), 24 * unit, unit, _MUTED, 0.5)
    word = "ANOMALOUS" if caption.anomalous else "NORMAL"
    colour = ANOMALOUS_COLOUR if caption.anomalous else NORMAL_COLOUR
    x = _text(band, word, pad, 50 * unit, unit, colour, 0.6, bold=True)
    relative = (
        f" = {caption.score_relative:.2f} x image threshold"
        if np.isfinite(caption.score_relative)
        else ""
    )
    _text(band, f"   score {caption.score:.4g}{relative}", x, 50 * unit, unit)
    return band


def _legend(
    caption: OverlayCaption, ceiling: float, has_gt: bool, width: int, unit: float
) -> np.ndarray:
    band = np.full((round(96 * unit), width, 3), _BAND, np.uint8)
    pad, top, bar_h = round(10 * unit), round(8 * unit), round(14 * unit)
    left, right = pad, width - pad
    bar = score_colours(right - left)[None, :, :]
    band[top : top + bar_h, left:right] = np.repeat(bar, bar_h, axis=0)
    ticks = [(0.0, "0"), (ceiling / 2, f"{ceiling / 2:.3g}"), (ceiling, f"{ceiling:.3g}")]
    for value, label in ticks:
        x = left + round(value / ceiling * (right - left - 1))
        cv2.line(band, (x, top + bar_h), (x, top + bar_h + round(4 * unit)), _TEXT, 1)
        tx = min(max(x - _text_width(label, unit, 0.42) // 2, left), right - 40 * unit)
        _text(band, label, tx, top + bar_h + 18 * unit, unit, _TEXT, 0.42)
    if np.isfinite(caption.pixel_threshold) and 0 < caption.pixel_threshold <= ceiling:
        x = left + round(caption.pixel_threshold / ceiling * (right - left - 1))
        cv2.line(band, (x, top - 3), (x, top + bar_h + 2), PREDICTION_COLOUR, max(2, round(unit)))
    y = round(top + bar_h + 40 * unit)
    _text(band, caption.map_label, pad, y, unit, _MUTED, 0.45)
    keys = [(PREDICTION_COLOUR, f"map >= pixel threshold {caption.pixel_threshold:.3g}")]
    if has_gt:
        keys.append((GT_COLOUR, "ground truth"))
    y = round(top + bar_h + 62 * unit)
    x = pad
    for colour, text in keys:
        cv2.line(band, (x, y - round(5 * unit)), (x + round(22 * unit), y - round(5 * unit)),
                 colour, max(2, round(2 * unit)))  # fmt: skip
        x = _text(band, text, x + round(28 * unit), y, unit, _TEXT, 0.45) + round(18 * unit)
    return band
