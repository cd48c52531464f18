"""Batch prediction with orientation handling and a confidence per crop.

Backends: ``torch`` (the module itself) and ``onnx`` (the same weights exported in
memory at load time and run by ONNX Runtime: ~2x lower CPU latency at batch 1).
Orientation: crops taller than wide are turned 90 degrees first; when the model's
upside-down head or the reading is unsure, or the reading is no brand-code layout
(``recognizer.formats``), the crop is also read turned 180 degrees. If exactly one of
the two readings is a brand layout it wins, unless it is more than ``layout_floor`` less
confident; otherwise the head decides, and where the head is unsure the 180-degree reading
must be ``flip_margin`` more confident. (Both bounds from real photos: a clean upright reading
lost to a slightly surer upside-down one, or to a much less sure reading that happened to fit
a layout. Measured with the shipped model: independent renders (``benchmarks.othergen``)
0.858 -> 0.870, the project's own held-out renders 0.930 -> 0.923, real-dev unchanged.)
With the photo reader (below), a turn so decided stands only when the photo reader reads the
turned view more surely than the upright one (``photo_turns``: the head is weak and rotation-symmetric
glyphs fool the CRNN's confidence; PP-OCR never learnt upside-down text).
Boxy crops read with little confidence (a diagonal line in an axis-aligned
box) are also read straightened at a few angles, both ways up (``recognizer.deskew``).

Models with adapters (``recognizer.model``, added by a fine-tune for a new kind of print)
are read on two paths: the base path first (the weights the adapters leave alone, i.e. what
the model read before it learnt the new kind), then, for crops that reading is unsure of
(confidence below ``adapted_below``), the adapted path; the adapted reading replaces the
base one when it is more confident by ``adapted_margin``, or when it is a brand layout, the
other is not and it is not much less confident (``adapted_layout_floor``).
What the base path reads with confidence is therefore never changed by what the adapters
learnt (forgetting), and the second pass costs time only on unsure crops. One exception: a model
whose fine-tune added characters (``+``) reads every crop on both paths, and an adapted reading
that writes an added character wins when it is at least as sure (the base path never learnt
``+`` and reads it confidently as ``4`` or ``-``: serif + ``+`` domain 0.513 -> 0.753, real photos
and renders unchanged).

Photo reader (``recognizer.photoreader``, a recogniser initialised from PP-OCR, which learnt from real
text; on unless ``TAGLOOP_PHOTO_READER=off``): a crop whose final reading is below ``photo_below`` (0.97)
confidence is read again by it (the crop turned only by the taller-than-wide rule), and its reading
replaces ours when its own confidence is at least ``photo_floor`` (0.5). Every reading the adapted path
won (what the nightly fine-tune learnt), however sure, is read by it too and replaced only when the photo
reading is surer by ``photo_over_learnt`` (-0.2: at most 0.2 less sure; None: never), or differs only in confusable
glyphs (``0``/``O``, ``1``/``I``, ``5``/``S``, ``8``/``B``). The CRNN learnt our renderer; real phone photos are
where it is unsure or confidently wrong, and where the photo reader is right. Measured (README, "Real
phone photos"): real-dev 0.764 -> 0.927, independent renders 0.870 -> 0.955, held-out renders 0.917 ->
0.935; 0.97 rather than 0.9 because the CRNN misreads photos at 0.9-0.97 (a partial ``OM018`` at 0.95,
a lost space at 0.91); the learnt-reading margin chosen on dot-matrix (the recipe's tuning domain).
A sure reading (>= ``photo_below``) that fits no brand layout is read by the photo reader as well, and a
different photo reading at least as sure (>= ``photo_below``) replaces it (``photo_outside_layouts``): the CRNN
learnt ``synth.grammar``'s layouts and is confidently wrong outside them (``RZU 576089`` read ``RZU576089`` at
1.000; real-dev's ``APE 779001`` / ``321 H05299`` are of that kind). Measured 2026-11-30: the dark
low-resolution domain (a generator nobody tuned this on) 0.837 -> 0.870, held-out renders 0.938 -> 0.939,
real-dev unchanged, independent renders 0.950 -> 0.970 (where the failure was found); +0.7-1.6 ms per crop.
Such a sure reading also gives way to a photo reading at least ``photo_floor`` sure that differs from it only in
confusable glyphs (``photo_confusables_outside``: ``1SMO1611D`` at 0.99 vs ``1SM01611D`` at 0.88 on a tilted real
photo), and an unsure reading made on a view turned from upright (a deskew retry's turn, which no photo reading
confirmed) gives way to the photo reading of the upright view when that is surer than the turned one
(``photo_upright_view``: defocused real photos turned 180 degrees on a 0.3-0.5 CRNN reading). Both measured
2026-12-07 on real-dev photos under ten changes another phone would make (``benchmarks.real_perturbed``) and on
the renders (README, "Reading rules").
Where our reading and the photo reading of a crop differ, the thresholds above give way to both readers weighing
both readings (``photo_weighed``, since 2026-12-07 21:40): each reader's CTC probability of each whole reading, the
CRNN's counted half, the likelier reading stands (``_weighed``; the glyph rules for adapted and sure outside-layout
readings still decide their confusable-only pairs). Held-out renders 0.915 -> 0.938, dark low-resolution 0.870 ->
0.893, dot-matrix 0.583 -> 0.647, real-dev under eight changes 387 -> 392 of 440, real-dev as stored unchanged.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass
from functools import partial

import numpy as np
from PIL import Image

from recognizer.decode import ctc_log_likelihood
from recognizer.deskew import ANGLES, straighten
from crops.codes import differ_by_confusables, looks_like_a_code
from recognizer.engine import Engine
from recognizer.photoreader import PHOTO_DIR, PhotoReader
from crops.image import gray_pixels, opened_bytes, opened_crop
from recognizer.preprocess import CropError, resize_height, to_gray
from recognizer.tokenizer import DEFAULT_CHARSET

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif"}
# Decoded grey pixels ``predict_files`` holds at once (bytes; one byte per pixel): files are read and
# predicted in chunks under this budget, whatever their number or size (one image of up to
# ``crops.image.MAX_PIXELS`` beyond it at most). Peak memory of ``tagloop predict``: recognizer/README.md.
DECODE_BUDGET = 128 << 20


# photo readings made so far: (crop index, turn) -> (text, confidence, the frames' log-probabilities)
PhotoReads = dict[tuple[int, int], tuple[str, float, np.ndarray]]


@dataclass
class Prediction:
    text: str
    confidence: float
    rotation: int = 0          # degrees clockwise the crop was turned before reading
    error: str = ""
    straightened: float = 0.0  # degrees a deskew retry levelled the turned view by before reading (0: not)


def photo_reader_on() -> bool:
    """The shipped photo reader serves unless ``TAGLOOP_PHOTO_READER`` says off (off/0/false/no)."""
    return os.environ.get("TAGLOOP_PHOTO_READER", "on").strip().lower() not in ("off", "0", "false", "no")


def _upright(g: np.ndarray) -> int:
    """The turn that makes a crop wider than tall: 90 degrees for one clearly taller than wide."""
    return 90 if g.shape[0] > 1.25 * g.shape[1] else 0


def _rot(g: np.ndarray, deg: int) -> np.ndarray:
    """Rotate a grey crop clockwise by ``deg`` in {0, 90, 180, 270}."""
    return np.ascontiguousarray(np.rot90(g, -(deg // 90)))


class Predictor:
    """Reads crops (RGB/grey arrays or files) with an ``Engine``: which view and which path to keep."""

    def __init__(self, model_dir: str | None, backend: str = "auto", batch_size: int = 64,
                 flip_check: float = 0.2, sure: float = 0.9, deskew_below: float = 0.95,
                 deskew_margin: float = 0.02, formats: bool = True, adapted_below: float = 0.95,
                 adapted_margin: float = 0.05, adapted_layout_floor: float = 0.2,
                 layout_floor: float = 0.1, flip_margin: float = 0.05, score: str = "min",
                 loaded: tuple | None = None, photo: str | None = "auto", photo_below: float = 0.97,
                 photo_floor: float = 0.5, photo_over_learnt: float | None = -0.2, photo_turns: bool = True,
                 photo_outside_layouts: bool = True, photo_upright_view: bool = True,
                 photo_confusables_outside: bool = True, layout_over_photo: bool = False,
                 photo_weighed: float | None = 0.5) -> None:
        """``model_dir``: an artifact; or None with ``loaded`` = (model, tokenizer, config) in memory.
        ``photo``: "auto" (the shipped photo reader unless ``TAGLOOP_PHOTO_READER=off``; none for a model in
        memory), a photo reader's directory, or None (CRNN only)."""
        self.engine = Engine(model_dir, backend, batch_size, loaded, score)
        self.tok, self.config, self.height = self.engine.tok, self.engine.config, self.engine.height
        self.backend = self.engine.backend
        self.flip_check = flip_check       # P(upside down) above which the 180-degree reading is made
        self.sure = sure                   # confidence below which it is made as well
        self.deskew_below = deskew_below   # retry boxy crops read with less confidence (0: off)
        self.deskew_margin = deskew_margin # confidence a straightened reading must add to replace the reading
        self.formats = formats             # between readings of which only one is a brand layout, take that one ...
        self.layout_floor = layout_floor   # ... when it is at most this much less confident
        self.flip_margin = flip_margin     # head unsure: the 180-degree reading must be this much more confident
        self.adapted_below = adapted_below # adapters: base readings below this confidence are read adapted too
        self.adapted_margin = adapted_margin           # confidence an adapted reading must add to replace
        self.adapted_layout_floor = adapted_layout_floor  # a brand-layout adapted reading may be this much less sure
        # path 0: what serves first (the base path when there are adapters); path 1: the adapted path.
        # Passed down as an argument, never stored: one Predictor may serve several threads.
        self.two_paths = self.engine.paths > 1
        # characters a fine-tune added (``+``): the base path never learnt them and reads them confidently as
        # something else (``4``, ``-``), so a model with added characters reads every crop on both paths and an
        # adapted reading that writes one wins when it is at least as sure as the base reading
        self.added = set(self.tok.charset) - set(DEFAULT_CHARSET) if self.two_paths else set()
        if photo == "auto":
            photo = PHOTO_DIR if photo_reader_on() and model_dir is not None else None
        self.photo_dir = photo                  # loaded on first use (most crops never need it)
        self._photo: PhotoReader | None = None
        self.photo_below = photo_below         # readings below this confidence are read by the photo reader ...
        self.photo_floor = photo_floor         # ... whose reading replaces ours when it is at least this sure
        self.photo_over_learnt = photo_over_learnt  # an adapted reading: replaced when the photo one is this much surer
        #                                             (negative: less sure by at most that much)
        self.photo_turns = photo_turns         # a 180-degree turn stands only when the photo reader reads it surer
        # a sure reading that fits no brand layout is read by the photo reader too, and an equally sure (>= photo_below)
        # different photo reading replaces it
        self.photo_outside_layouts = photo_outside_layouts
        # an unsure reading made on a turned view: the photo reader reads the upright view too, the surer wins
        self.photo_upright_view = photo_upright_view
        # a sure reading outside every layout also gives way to a photo reading that differs only in confusable glyphs
        self.photo_confusables_outside = photo_confusables_outside
        # an unsure reading that fits a brand layout stands against a less sure photo reading that fits none. Off:
        # measured 2026-12-07 (README, "Reading rules"), it gains on renders of our own grammar (held-out +8 of 1,000,
        # dot-matrix +6 of 300) and not on real photos (-1 of 440 changed real-dev photos), and the champion it makes
        # reads the demo's dot-matrix night so much better that the night's challenger shows nothing (promoted +2.0
        # -> no decision +0.5)
        self.layout_over_photo = layout_over_photo
        # where our reading and the photo reading of a crop differ, each reader scores both readings (the CTC
        # probability of the whole reading) and the reading with the higher ``photo_weighed`` x log P_crnn +
        # log P_photo is kept (None: the confidence rules above decide). 0.5: the CRNN is confidently wrong on
        # photos; measured with 1 and 0.25 too (README, "Reading rules")
        self.photo_weighed = photo_weighed

    def _read(self, grays: list[np.ndarray], path: int = 0) -> list[tuple[str, float, float]]:
        """Height-normalised crops -> [(text, confidence, P(upside down))] on ``path``."""
        return self.engine.read(grays, path)

    # -- public -----------------------------------------------------------------------
    def predict_arrays(self, images: list[np.ndarray]) -> list[Prediction]:
        """RGB or grey crops (any orientation) -> predictions, in order."""
        grays = [to_gray(im) for im in images]
        # photo readings made so far (``PhotoReads``): each view is read once
        photo_reads: PhotoReads | None = {} if self.photo_dir else None
        preds = self._predict(grays, 0, photo_reads)
        learnt: set[int] = set()              # crops the adapted path read (what the nightly fine-tune learnt)
        if self.two_paths:
            below = 1.01 if self.added else self.adapted_below
            unsure = [i for i, p in enumerate(preds) if p.confidence < below]
            if unsure:
                adapted = self._predict([grays[i] for i in unsure], 1, photo_reads, unsure)
                for i, p in zip(unsure, adapted):
                    if p.text and self._adapted_wins(p, preds[i]):
                        preds[i] = p
                        learnt.add(i)
        if photo_reads is not None:
            self._photo_pass(grays, preds, learnt, photo_reads)
        return preds

    def _photo_reader(self) -> PhotoReader:
        if self._photo is None:
            self._photo = PhotoReader(self.photo_dir)
        return self._photo

    def _photo_read(self, grays: list[np.ndarray] | dict[int, np.ndarray], keys: list[tuple[int, int]],
                    reads: PhotoReads) -> list[tuple[str, float]]:
        """Photo readings of crop ``i`` (of ``grays``) turned ``r`` degrees, for each ``(i, r)`` in ``keys``;
        views read before (in ``reads``: text, confidence and the frames' log-probabilities) are not read again."""
        todo = [k for k in dict.fromkeys(keys) if k not in reads]
        if todo:
            for k, got in zip(todo, self._photo_reader().read_frames([_rot(grays[i], r) for i, r in todo])):
                reads[k] = got
        return [reads[k][:2] for k in keys]

    def _photo_pass(self, grays: list[np.ndarray], preds: list[Prediction], learnt: set[int],
                    reads: PhotoReads | None = None) -> None:
        """Unsure readings are read again by the photo reader; a sure enough photo reading replaces ours.
        Readings of the adapted path (``learnt``) only when the photo reading is surer by ``photo_over_learnt``:
        the photo reader learns nothing from corrections, so where the adapters are sure, what the nightly
        fine-tune learnt stands (a new character the photo reader cannot write, a print it misreads); where they
        are less sure than the photo reader, it is usually right (dot-matrix, 300 held-out crops: adapted
        readings always kept 0.553, replaced when the photo reading is surer 0.590, champion 0.587). Since
        2026-11-30 the photo reading wins when it is at most 0.2 less sure (-0.2; chosen on dot-matrix among 0,
        -0.1, -0.2, -0.3: 0.593 -> 0.620 for that day's challenger): adapters trained on one kind of print read
        real photos confidently wrong (``385516-01`` as ``325516-01`` at 0.78-0.87 where the photo reader read it
        right at 0.72). Six challengers of three domains (two runs): real-dev 5 photos kept that 0 lost, none
        lost; dot-matrix +2.7 / +1.0 points, dark -0.3 / -1.0, serif unchanged (README, "Learning loop"). A reading
        with a character outside the photo reader's charset (one a fine-tune added, e.g. ``+``) always stands:
        the photo reader cannot write it (serif + ``+``: 0.480 -> 0.513). And where the two readings differ only in
        confusable glyphs (``0``/``O``, ``1``/``I``, ``5``/``S``, ``8``/``B``), the photo reader's wins whatever the
        confidences: glyph shape is what a few hundred corrections teach adapters least and what PP-OCR learnt
        from real text (the challengers of two new domains read real photos' ``0`` as ``O`` at 0.99; real-dev
        0.909 -> 0.927 with either, the domains and renders unchanged)."""
        over = self.photo_over_learnt
        # below photo_below; every adapted reading (however sure) unless they are never to be replaced; and, with
        # photo_outside_layouts, sure readings that fit no brand layout (``outside``)
        outside = {i for i, p in enumerate(preds) if self.photo_outside_layouts and i not in learnt and p.text
                   and p.confidence >= self.photo_below and not looks_like_a_code(p.text)}
        unsure = [i for i, p in enumerate(preds) if (i in learnt and over is not None) or i in outside
                  or (i not in learnt and p.confidence < self.photo_below)]
        if not unsure:
            return
        writes = set(self._photo_reader().charset)   # a reading with a character it cannot write (one the loop added) stands
        unsure = [i for i in unsure if set(preds[i].text) <= writes]
        # read the way up the reading was made (``photo_turns`` confirmed the 180-degree check's turns; a deskew
        # retry's turn, made on the CRNN's confidence alone, is checked by ``photo_upright_view`` below)
        turns = [preds[i].rotation if self.photo_turns else _upright(grays[i]) for i in unsure]
        reads = {} if reads is None else reads
        got = self._photo_read(grays, list(zip(unsure, turns)), reads)
        if self.photo_upright_view:       # a reading made turned from upright: the upright view is read too
            ups = [_upright(grays[i]) for i in unsure]
            other = [k for k, (t, u) in enumerate(zip(turns, ups)) if t != u]
            for k, alt in zip(other, self._photo_read(grays, [(unsure[k], ups[k]) for k in other], reads)):
                if alt[1] > got[k][1]:
                    got[k], turns[k] = alt, ups[k]
        weighed = (self._weighed(grays, preds, learnt, outside, unsure, turns, reads)
                   if self.photo_weighed is not None else {})
        for i, r, (text, conf) in zip(unsure, turns, got):
            if i in weighed:
                if weighed[i]:
                    preds[i] = Prediction(text, conf, r)
                continue
            if i in outside:
                if text != preds[i].text and (conf >= self.photo_below or (
                        self.photo_confusables_outside and conf >= self.photo_floor
                        and differ_by_confusables(preds[i].text, text))):
                    preds[i] = Prediction(text, conf, r)
            elif text and conf >= self.photo_floor and (i not in learnt or conf > preds[i].confidence + over
                                                        or differ_by_confusables(preds[i].text, text)):
                if (i not in learnt and self.formats and self.layout_over_photo and conf < preds[i].confidence
                        and looks_like_a_code(preds[i].text) and not looks_like_a_code(text)):
                    continue              # a brand-layout reading stands against a less sure photo reading that fits none
                preds[i] = Prediction(text, conf, r)

    def _weighed(self, grays: list[np.ndarray], preds: list[Prediction], learnt: set[int], outside: set[int],
                 unsure: list[int], turns: list[int], reads: PhotoReads) -> dict[int, bool]:
        """Crop index -> whether its photo reading (of the view turned ``turns[k]``, in ``reads``) beats our
        reading when both readers score both readings, for the crops of ``unsure`` whose two readings differ
        (both non-empty, both in our charset). Not weighed: an adapted reading (``learnt``) or a sure one outside the
        layouts (``outside``) only confusable glyphs apart from the photo reading: there the glyph rules stand (the
        photo reading at least ``photo_floor`` sure wins: glyph shapes are what PP-OCR learnt from real text and
        adapters learn least; dot-matrix and dark challengers read real-dev's ``1SM01611D`` as ``1SMO1611D`` at
        0.98-1.0, likelier than the photo reader's right reading when weighed). Ours is scored on the view it was read
        (turned, levelled by a deskew retry) on the path that read it; each score is the CTC log-probability of the
        whole reading, so two readings of different lengths compare, and the CRNN's counts ``photo_weighed``
        times."""
        ks = [k for k, i in enumerate(unsure)
              if (their := reads[(i, turns[k])][0]) and preds[i].text and their != preds[i].text
              and not self.tok.unknown_chars(their + preds[i].text)
              and not ((i in learnt or i in outside) and differ_by_confusables(preds[i].text, their))]
        out: dict[int, bool] = {}
        for path in (0, 1):
            on = [k for k in ks if (unsure[k] in learnt) == (path == 1)]
            if not on:
                continue
            views = [resize_height(self._view(grays[unsure[k]], preds[unsure[k]]), self.height) for k in on]
            for k, ours_lp in zip(on, self.engine.log_probs(views, path)):
                i = unsure[k]
                their_text, _, theirs_lp = reads[(i, turns[k])]
                score = [self.photo_weighed * ctc_log_likelihood(ours_lp, ids) + ctc_log_likelihood(theirs_lp, ids)
                         for ids in (self.tok.encode(preds[i].text), self.tok.encode(their_text))]
                out[i] = score[1] > score[0]
        return out

    @staticmethod
    def _view(gray: np.ndarray, pred: Prediction) -> np.ndarray:
        """The view of ``gray`` that ``pred`` was read on: turned, and levelled when a deskew retry read it."""
        view = _rot(gray, pred.rotation)
        level = straighten(view, pred.straightened) if pred.straightened else None
        return view if level is None else level

    def _adapted_wins(self, adapted: Prediction, base: Prediction) -> bool:
        """The adapted reading replaces an unsure base reading (measured rule: a confidently wrong adapted
        reading is what forgetting looks like here, so it must be surer, and a junk reading that happens
        to fit a brand layout does not win on the layout alone)."""
        if self.added & set(adapted.text) and not self.added & set(base.text):
            return adapted.confidence >= base.confidence
        if base.confidence >= self.adapted_below:
            return False                      # (read on both paths only because of added characters)
        return self._better(adapted.text, adapted.confidence, base, self.adapted_margin, self.adapted_layout_floor)

    def _predict(self, grays: list[np.ndarray], path: int = 0,
                 photo_reads: PhotoReads | None = None,
                 keys: list[int] | None = None) -> list[Prediction]:
        """Grey crops -> predictions on ``path`` (0: first, 1: adapted; turns, 180-degree check, deskew).
        ``photo_reads``: photo readings shared by the paths (None: no photo reader), of the crops of the caller's
        list, ``keys`` the index there of each crop of ``grays`` (default: the same list)."""
        keys = keys or list(range(len(grays)))
        base = [_upright(g) for g in grays]
        full = [_rot(g, r) for g, r in zip(grays, base)]
        views = [resize_height(f, self.height) for f in full]
        first = self._read(views, path)
        redo = [i for i, (t, c, p) in enumerate(first)
                if p > self.flip_check or c < self.sure or (self.formats and not looks_like_a_code(t))]
        second = self._read([_rot(views[i], 180) for i in redo], path) if redo else []
        preds = [Prediction(t, c, base[i]) for i, (t, c, _) in enumerate(first)]
        flips = []
        for i, (t2, c2, p2) in zip(redo, second):
            code1, code2 = looks_like_a_code(preds[i].text), looks_like_a_code(t2)
            c1 = preds[i].confidence
            if self.formats and code1 != code2 and (c2 if code2 else c1) >= (c1 if code2 else c2) - self.layout_floor:
                flip = code2               # a code read upside down is rarely a brand layout
            else:
                # P(upside down) from the head on both views, weighed with each reading's confidence
                q = (first[i][2] + 1.0 - p2) / 2
                flip = q >= 0.6 or (q > 0.4 and c2 > c1 + self.flip_margin)
            flips.append(flip)
        if photo_reads is not None and self.photo_turns:
            ask = [j for j, f in enumerate(flips) if f]
            sure = self._photo_upside_down({keys[redo[j]]: grays[redo[j]] for j in ask},
                                           [base[redo[j]] for j in ask], photo_reads)
            for j, u in zip(ask, sure):
                flips[j] = u
        for i, (t2, c2, _), flip in zip(redo, second, flips):
            if flip:
                preds[i] = Prediction(t2, c2, (base[i] + 180) % 360)
        if self.deskew_below > 0:
            self._deskew(full, base, preds, path)
        return preds

    def _photo_upside_down(self, crops: dict[int, np.ndarray], base: list[int],
                           reads: PhotoReads) -> list[bool]:
        """For crops the CRNN would turn 180 degrees (``crops``: index in ``reads`` -> grey crop, ``base``: its
        upright turn): does the photo reader read the turned view more surely than the upright one?

        Why: the CRNN's upside-down head is weak (it calls an upright crop turned 180 degrees "upside down" only
        about a third of the time) and rotation-symmetric glyphs fool its confidence: ``BHE 094684`` was read
        ``789760 3H8`` at 0.99. PP-OCR never learnt upside-down text and reads it with little confidence.
        Measured (README, "Real phone photos"): independent renders 0.948 -> 0.950, held-out renders (which
        hold crops truly turned 180 degrees) 0.937 -> 0.938, real-dev unchanged; costs two photo readings
        on each crop the CRNN would turn."""
        keys = list(crops)
        upright = self._photo_read(crops, list(zip(keys, base)), reads)
        turned = self._photo_read(crops, [(k, (r + 180) % 360) for k, r in zip(keys, base)], reads)
        return [c2 > c1 for (_, c1), (_, c2) in zip(upright, turned)]

    def _deskew(self, full: list[np.ndarray], base: list[int], preds: list[Prediction], path: int = 0) -> None:
        """Retry unsure readings of boxy crops at a few tilt angles, in both orientations; keep the most confident.

        Both orientations: the upside-down head was trained on level lines and is least sure
        on exactly these boxes (a diagonal line upside down looks much like one the right way
        up), so the 180-degree decision is made again on the straightened views.
        """
        jobs, crops = [], []
        for i, p in enumerate(preds):
            g = full[i]
            if p.confidence >= self.deskew_below or g.shape[0] < 0.28 * g.shape[1]:
                continue
            turn = (p.rotation - base[i]) % 360
            for r in (turn, (turn + 180) % 360):
                view = _rot(g, r)
                for a in ANGLES:
                    s = straighten(view, a)
                    if s is not None:
                        jobs.append((i, (base[i] + r) % 360, a))
                        crops.append(resize_height(s, self.height))
        if not crops:
            return
        for (i, rotation, a), (text, conf, _) in zip(jobs, self._read(crops, path)):
            if text and self._better(text, conf, preds[i], layout_floor=self.layout_floor):
                preds[i] = Prediction(text, conf, rotation, straightened=a)

    def _better(self, text: str, conf: float, than: Prediction, margin: float | None = None,
                layout_floor: float = float("inf")) -> bool:
        """Another reading replaces ``than``: a brand layout beats none (when it is at most ``layout_floor``
        less confident), else it must be more confident by ``margin`` (default ``deskew_margin``)."""
        if self.formats and conf >= than.confidence - layout_floor:
            a, b = looks_like_a_code(text), looks_like_a_code(than.text)
            if a != b:
                return a
        return conf > than.confidence + (self.deskew_margin if margin is None else margin)

    CHUNK_FILES = 512               # files per chunk at most (memory is bounded by ``budget``; this, the progress)

    def predict_files(self, paths: list[str], budget: int = DECODE_BUDGET,
                      on_done: Callable[[int], None] | None = None) -> list[Prediction]:
        """Unreadable files get an empty prediction, confidence 0 and an error message (not a regular
        file, empty, not an image, truncated, larger than ``MAX_PIXELS``: refused from its header).

        Files are decoded to grey and predicted in chunks of at most ``budget`` bytes of pixels (each
        file's size read from its header before it is decoded), so memory stays flat for any inputs.
        ``on_done(k)``: k more files are finished (a progress bar).
        """
        return self.predict_opened([partial(opened_crop, p) for p in paths], budget, on_done)

    def predict_blobs(self, blobs: list[bytes], budget: int = DECODE_BUDGET) -> list[Prediction]:
        """``predict_files`` for encoded crops held in memory (uploads): the same limits and errors."""
        return self.predict_opened([partial(opened_bytes, b) for b in blobs], budget)

    def predict_opened(self, openers: list[Callable[[], ContextManager[Image.Image]]],
                       budget: int = DECODE_BUDGET, on_done: Callable[[int], None] | None = None) -> list[Prediction]:
        """Crops given as openers (``crops.image.opened_crop`` / ``opened_bytes``) -> predictions, in order,
        decoded to grey in chunks of at most ``budget`` bytes of pixels (and ``CHUNK_FILES`` crops); a crop that
        cannot be opened or decoded gets an empty prediction, confidence 0 and the reason as ``error``.
        ``on_done(k)``: k more crops are finished (a progress bar)."""
        tick = on_done or (lambda k: None)
        preds = [Prediction("", 0.0) for _ in openers]
        ok: list[int] = []
        grays: list[np.ndarray] = []
        held = 0

        def flush() -> None:
            nonlocal held
            for i, pr in zip(ok, self.predict_arrays(grays)):
                preds[i] = pr
            tick(len(ok))
            ok.clear()
            grays.clear()
            held = 0

        for i, opener in enumerate(openers):
            try:
                with opener() as im:           # header only: what decoding this crop will hold
                    if grays and (held + im.width * im.height > budget or len(grays) >= self.CHUNK_FILES):
                        flush()
                    grays.append(gray_pixels(im))
                ok.append(i)
                held += grays[-1].size
            except CropError as e:
                preds[i].error = str(e)
                tick(1)
        if grays:
            flush()
        return preds


def expand_inputs(items: list[str]) -> tuple[list[str], list[str]]:
    """Files and directories -> (input files, messages about inputs yielding nothing).

    A file argument is kept as given; a directory contributes its entries with an image extension,
    sorted, each as the argument joined with its name (so two ``a.jpg`` in different folders stay
    apart). Entries that are not regular files (a FIFO named ``x.png``, a dangling link) are kept: the
    predictor refuses each with its reason, without opening it for a blocking read.
    """
    files, notes = [], []
    for it in items:
        if os.path.isdir(it):
            found = sorted(os.path.join(it, f) for f in os.listdir(it)
                           if os.path.splitext(f)[1].lower() in IMAGE_EXTS and not os.path.isdir(os.path.join(it, f)))
            if not found:
                notes.append(f"{display_name(it)}: directory has no image files")
            files.extend(found)
        elif os.path.lexists(it):
            files.append(it)
        else:
            notes.append(f"{display_name(it)}: no such file or directory")
    return files, notes


def display_name(path: str | bytes) -> str:
    """A path as text that any UTF-8 writer accepts and a person can read, on one line: bytes that are
    not UTF-8 (``os.fsdecode``'s surrogate escapes) and control characters become ``\\xNN``."""
    text = os.fsdecode(path)
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:                      # a lone surrogate no file system produced
        raw = text.encode("utf-8", "surrogatepass")
    text = raw.decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() or c == " " else f"\\x{ord(c):02x}" if ord(c) < 0x100
                   else f"\\u{ord(c):04x}" for c in text)
