"""Peer OCR engines measured on the same crops: Tesseract (Debian) and RapidOCR (PP-OCR ONNX)."""
from __future__ import annotations

import shutil
import subprocess

import cv2
import numpy as np

from recognizer.tokenizer import DEFAULT_CHARSET


def _upright(rgb: np.ndarray) -> np.ndarray:
    """Same rule our predictor uses: a crop taller than wide is turned 90 degrees."""
    return np.ascontiguousarray(np.rot90(rgb, -1)) if rgb.shape[0] > 1.25 * rgb.shape[1] else rgb


def clean(text: str) -> str:
    """Peers may answer in lower case or with stray symbols: upper-case, keep charset characters."""
    return " ".join("".join(c for c in text.upper() if c in DEFAULT_CHARSET).split())


class RapidOCRPeer:
    """RapidOCR 3.10's PP-OCRv6 recogniser (``PP-OCRv6_rec_small.onnx``, inside its PyPI wheel),
    recognition only: no detection (the crop is the text line), no direction classifier."""

    name = "rapidocr"
    label = "RapidOCR 3.10 (PP-OCRv6 rec)"

    def __init__(self, threads: int = 1) -> None:
        from rapidocr import RapidOCR

        self.engine = RapidOCR(params={"Global.log_level": "error",
                                       "EngineConfig.onnxruntime.intra_op_num_threads": threads,
                                       "EngineConfig.onnxruntime.inter_op_num_threads": 1})

    def read(self, rgb: np.ndarray) -> str:
        bgr = cv2.cvtColor(_upright(rgb), cv2.COLOR_RGB2BGR)
        res = self.engine(bgr, use_det=False, use_cls=False, use_rec=True)
        return clean(res.txts[0]) if res.txts else ""


class TesseractPeer:
    """Tesseract 5 LSTM, single-line mode (--psm 7), charset whitelist, one process per crop."""

    name = "tesseract"
    label = "Tesseract 5 --psm 7"

    def __init__(self) -> None:
        if shutil.which("tesseract") is None:
            raise RuntimeError("tesseract not installed (Debian package tesseract-ocr)")
        wl = DEFAULT_CHARSET.replace(" ", "")
        self.args = ["tesseract", "stdin", "stdout", "--psm", "7", "-c", f"tessedit_char_whitelist={wl}",
                     "-c", "preserve_interword_spaces=1"]

    def read(self, rgb: np.ndarray) -> str:
        ok, buf = cv2.imencode(".png", cv2.cvtColor(_upright(rgb), cv2.COLOR_RGB2BGR))
        out = subprocess.run(self.args, input=buf.tobytes(), capture_output=True, timeout=60,
                             env={"OMP_THREAD_LIMIT": "1", "PATH": "/usr/bin:/bin"})
        return clean(out.stdout.decode("utf-8", "replace"))
