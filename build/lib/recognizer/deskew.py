"""Straighten diagonal crops: the user's box around a tilted code is mostly background.

For a text line of length L and height h tilted by angle a, an axis-aligned crop
around it measures W = L cos a + h sin a by H = L sin a + h cos a. Given W, H and a
candidate angle we recover h, rotate the crop level and keep the central band that
holds the line. The predictor tries a few angles only when the straight reading
is unsure, and keeps the most confident reading.
"""
from __future__ import annotations

import cv2
import numpy as np

ANGLES = (-28.0, -22.0, -16.0, -10.0, -5.0, 5.0, 10.0, 16.0, 22.0, 28.0)


def line_height(w: int, h: int, angle_deg: float) -> float:
    """Text-line height implied by a W x H box around a line tilted by ``angle_deg``."""
    a = np.deg2rad(abs(angle_deg))
    c, s = np.cos(a), np.sin(a)
    return float((h * c - w * s) / max(c * c - s * s, 1e-6))


def straighten(gray: np.ndarray, angle_deg: float, band: float = 1.7) -> np.ndarray | None:
    """Rotate ``gray`` by ``angle_deg`` (counter-clockwise positive, like the tilt) back to level
    and crop the central band; ``None`` when the box cannot hold a line at that angle."""
    h, w = gray.shape[:2]
    lh = line_height(w, h, angle_deg)
    if lh < 0.12 * h:
        return None
    a = np.deg2rad(abs(angle_deg))
    length = (w * np.cos(a) - h * np.sin(a)) / max(np.cos(2 * a), 1e-6)
    if length < lh:
        return None
    M = cv2.getRotationMatrix2D((w / 2, h / 2), -angle_deg, 1.0)
    out_w, out_h = int(length + lh * 0.6), int(lh * band)
    M[0, 2] += out_w / 2 - w / 2
    M[1, 2] += out_h / 2 - h / 2
    return cv2.warpAffine(gray, M, (max(out_w, 8), max(out_h, 8)), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
