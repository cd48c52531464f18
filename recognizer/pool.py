"""A pool of crops preprocessed to model input (grey, fixed height), packed flat; what training reads.

The recognizer renders nothing: synthetic pools come from ``synth.pools``, real ones from
``Pool.from_images``."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recognizer.preprocess import resize_height, to_gray


@dataclass
class Pool:
    """Preprocessed crops: flat uint8 pixels, per-crop widths and offsets, labels."""

    height: int
    pixels: np.ndarray      # concatenated height x W_i arrays, flattened
    widths: np.ndarray      # int32 per crop
    offsets: np.ndarray     # int64 start of each crop in ``pixels``
    labels: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, i: int) -> np.ndarray:
        w = int(self.widths[i])
        start = int(self.offsets[i])
        return self.pixels[start:start + self.height * w].reshape(self.height, w)

    def save(self, path: str) -> None:
        np.savez(path, height=self.height, pixels=self.pixels, widths=self.widths,
                 offsets=self.offsets, labels=np.array(self.labels))

    @classmethod
    def load(cls, path: str) -> "Pool":
        z = np.load(path, allow_pickle=False)
        return cls(int(z["height"]), z["pixels"], z["widths"], z["offsets"], [str(s) for s in z["labels"]])

    @classmethod
    def from_images(cls, images: list[np.ndarray], labels: list[str], height: int = 32) -> "Pool":
        grays = [resize_height(to_gray(im), height) for im in images]
        return cls.pack(grays, labels, height)

    @classmethod
    def pack(cls, grays: list[np.ndarray], labels: list[str], height: int) -> "Pool":
        """height x W_i grey crops (already normalised) + labels -> a Pool."""
        widths = np.array([g.shape[1] for g in grays], np.int32)
        offsets = np.concatenate([[0], np.cumsum(widths.astype(np.int64) * height)[:-1]])
        pixels = np.concatenate([g.ravel() for g in grays]) if grays else np.zeros(0, np.uint8)
        return cls(height, pixels, widths, offsets.astype(np.int64), list(labels))

    @classmethod
    def concat(cls, pools: list["Pool"]) -> "Pool":
        grays = [p.image(i) for p in pools for i in range(len(p))]
        return cls.pack(grays, [l for p in pools for l in p.labels], pools[0].height)
