"""``tagloop predict`` on hostile inputs (issue 15): each case asserts the exact reason or exit code, and that
the valid crops beside the hostile one were still predicted."""
import csv
import os
import shutil
import socket
import stat
import threading
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from bucket.files import atomic_write
from crops.image import CropError, load_gray, load_image, to_gray
from flows.cli import NOTHING_READ, csv_cell, main
from recognizer.predict import Predictor, display_name


@pytest.fixture()
def good(crops_dir):
    """Two ordinary crops (paths) that the shipped model reads."""
    d = os.path.join(crops_dir, "images")
    return [os.path.join(d, f) for f in sorted(os.listdir(d))[:2]]


def _rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["filename", "prediction", "confidence"]
    return {r[0]: r[1:] for r in rows[1:]}


def _predicted(rows, names):
    for n in names:
        assert rows[n][0] and float(rows[n][1]) > 0, (n, rows[n])


def _main_or_hang(args, timeout=60.0):
    """``main(args)`` in a thread: its exit code, or a failure (not a hung test) when it blocks."""
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("rc", main(args)), daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"predict blocked on {args}"
    return out["rc"]


def test_a_non_utf8_file_name_gets_its_row_and_nothing_is_truncated(good, tmp_path, capsys):
    d = tmp_path / "batch"
    d.mkdir()
    names = [f"ok{i:02d}.png" for i in range(19)]
    for i, n in enumerate(names):
        shutil.copy(good[i % 2], d / n)
    bad = os.path.join(os.fsencode(d), b"caf\xe9-\xff.png")          # Latin-1 bytes: not UTF-8
    shutil.copy(good[0], bad)
    out = tmp_path / "preds.csv"
    assert main(["predict", str(d), "--out", str(out)]) == 0
    rows = _rows(out)
    assert len(rows) == 20
    shown = display_name(os.fsdecode(bad))
    assert shown == f"{d}/caf\\xe9-\\xff.png" and shown in rows
    _predicted(rows, [shown] + [str(d / n) for n in names])
    assert "wrote 20 predictions" in capsys.readouterr().out


def test_control_characters_in_a_name_stay_on_one_line(good, tmp_path, capsys):
    odd = tmp_path / "two\nlines\r.png"
    odd.write_bytes(b"")
    shutil.copy(good[0], tmp_path / "fine.png")
    out = tmp_path / "preds.csv"
    assert main(["predict", str(odd), str(tmp_path / "fine.png"), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"tagloop: {tmp_path}/two\\x0alines\\x0d.png: empty file (0 bytes)\n" in err
    rows = _rows(out)
    assert rows[f"{tmp_path}/two\\x0alines\\x0d.png"] == ["", "0.0000"]
    _predicted(rows, [str(tmp_path / "fine.png")])


def test_fifos_devices_and_sockets_are_refused_without_blocking(good, tmp_path, capsys):
    d = tmp_path / "dir"
    d.mkdir()
    shutil.copy(good[0], d / "a.png")
    os.mkfifo(d / "pipe.png")                                       # found in a directory
    os.mkfifo(tmp_path / "arg.jpg")                                 # given as an argument
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(d / "sock.png"))
    (d / "sub.png").mkdir()                                         # a directory named like an image: skipped
    out = tmp_path / "preds.csv"
    try:
        rc = _main_or_hang(["predict", str(d), str(tmp_path / "arg.jpg"), "/dev/null", good[1], "--out", str(out)])
    finally:
        sock.close()
    assert rc == 0
    err = capsys.readouterr().err
    assert f"{d}/pipe.png: not a regular file (a FIFO)" in err
    assert f"{tmp_path}/arg.jpg: not a regular file (a FIFO)" in err
    assert f"{d}/sock.png: not a regular file (a socket)" in err
    assert "/dev/null: not a regular file (a character device)" in err
    rows = _rows(out)
    assert set(rows) == {f"{d}/a.png", f"{d}/pipe.png", f"{d}/sock.png", f"{tmp_path}/arg.jpg", "/dev/null", good[1]}
    _predicted(rows, [f"{d}/a.png", good[1]])


def test_a_fifo_swapped_in_after_the_listing_is_still_refused(tmp_path):
    """The check is made on the opened descriptor too (opened non-blocking), not only on the name."""
    from crops.image import open_regular

    os.mkfifo(tmp_path / "p")
    real_stat = os.stat
    with pytest.MonkeyPatch.context() as mp:      # the first look sees a regular file
        mp.setattr(os, "stat", lambda p, *a, **k: real_stat(__file__) if str(p) == str(tmp_path / "p")
                   else real_stat(p, *a, **k))
        with pytest.raises(CropError, match=r"not a regular file \(a FIFO\)"):
            open_regular(str(tmp_path / "p"))


def test_an_image_over_the_pixel_limit_is_refused_from_its_header(good, tmp_path):
    big = tmp_path / "huge.png"
    Image.new("1", (8000, 6000)).save(big)            # 48 Mpixel in a few kB: nothing may be decoded
    predictor = Predictor(None, loaded=_loaded())
    tracemalloc.start()
    try:
        preds = predictor.predict_files([str(big), good[0]])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert preds[0].error == "image too large (8000x6000 pixels, limit 40000000)" and preds[0].text == ""
    assert preds[1].text and peak < 20 << 20, peak        # 48 MB of grey (144 MB RGB) would have shown


def _loaded():
    from recognizer.checkpoint import base_model_dir, load_model

    return load_model(base_model_dir())


def test_files_are_read_in_chunks_under_a_pixel_budget(good, tmp_path, monkeypatch):
    sizes = [(600, 200), (300, 100), (900, 300), (120, 40), (2000, 700), (64, 32)]
    paths = []
    for i, (w, h) in enumerate(sizes):
        p = tmp_path / f"c{i}.png"
        Image.open(good[i % 2]).convert("RGB").resize((w, h)).save(p)
        paths.append(str(p))
    paths.insert(3, str(tmp_path / "missing.png"))
    predictor = Predictor(None, loaded=_loaded())
    calls = []
    real = predictor.predict_arrays
    monkeypatch.setattr(predictor, "predict_arrays", lambda ims: calls.append(sum(g.size for g in ims)) or real(ims))
    budget = 400_000
    preds = predictor.predict_files(paths, budget=budget)
    # 120k + 30k (+270k would pass 400k) | 270k + 4.8k | 1.4M alone (over the budget by itself) | 2k
    assert calls == [600 * 200 + 300 * 100, 900 * 300 + 120 * 40, 2000 * 700, 64 * 32]
    assert preds[3].error.startswith("cannot open file") and all(p.text for i, p in enumerate(preds) if i != 3)
    whole = Predictor(None, loaded=_loaded()).predict_files(paths)          # one chunk: the same readings
    assert [p.text for p in whole] == [p.text for p in preds]
    assert np.allclose([p.confidence for p in whole], [p.confidence for p in preds], atol=1e-4)


@pytest.mark.parametrize("mode", ["RGB", "L", "P", "RGBA", "1", "I;16", "CMYK"])
def test_grey_decoding_strip_by_strip_gives_the_same_pixels(good, tmp_path, monkeypatch, mode):
    monkeypatch.setattr("crops.image.STRIP_PIXELS", 5_000)            # many strips on a small crop
    src = Image.open(good[0]).convert("RGB")
    im = src.convert(mode) if mode != "I;16" else Image.fromarray(
        (np.asarray(src.convert("L"), np.uint16) * 200)).convert("I;16")
    path = tmp_path / ("x.tif" if mode == "CMYK" else "x.png")
    im.save(path)
    assert np.array_equal(load_gray(str(path)), to_gray(load_image(str(path))))


def test_exif_orientation_is_applied_when_reading_grey(good, tmp_path):
    im = Image.open(good[0]).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6                                                  # turned 90 degrees
    im.save(tmp_path / "o.jpg", exif=exif)
    gray = load_gray(str(tmp_path / "o.jpg"))
    assert gray.shape == (im.width, im.height)
    assert np.array_equal(gray, to_gray(load_image(str(tmp_path / "o.jpg"))))


def test_exit_1_when_no_input_could_be_read_and_the_csv_is_still_written(tmp_path, capsys):
    (tmp_path / "zero.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    out = tmp_path / "preds.csv"
    assert main(["predict", str(tmp_path / "zero.png"), str(tmp_path / "text.png"), str(tmp_path / "gone.png"),
                 "--out", str(out)]) == NOTHING_READ == 1
    err = capsys.readouterr().err
    assert "no input could be read (exit 1)" in err and "empty file (0 bytes)" in err and "no such file" in err
    assert _rows(out) == {str(tmp_path / "zero.png"): ["", "0.0000"], str(tmp_path / "text.png"): ["", "0.0000"]}
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["predict", str(empty), "--out", str(out)]) == 1
    assert _rows(out) == {}


def test_spreadsheet_formulas_are_neutralised(good, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    names = ["=HYPERLINK(1).png", "+1.png", "-2.png", "@SUM(A1).png", "plain.png"]
    for n in names:
        shutil.copy(good[0], n)
    assert main(["predict", "--out", "preds.csv", "--", *names]) == 0
    rows = _rows("preds.csv")
    assert set(rows) == {"'=HYPERLINK(1).png", "'+1.png", "'-2.png", "'@SUM(A1).png", "plain.png"}
    _predicted(rows, rows)
    for text, cell in [("-123", "'-123"), ("=1+1", "'=1+1"), ("\tx", "'\tx"), ("\rx", "'\rx"), ("+", "'+"),
                       ("@a", "'@a"), ("AB-12", "AB-12"), ("", ""), (" =x", " =x")]:
        assert csv_cell(text) == cell


def test_two_files_with_one_name_in_two_folders_get_two_rows(good, tmp_path):
    for d, src in (("d1", good[0]), ("d2", good[1])):
        (tmp_path / d).mkdir()
        shutil.copy(src, tmp_path / d / "a.jpg")
    out = tmp_path / "preds.csv"
    assert main(["predict", str(tmp_path / "d1"), str(tmp_path / "d2" / "a.jpg"), "--out", str(out)]) == 0
    rows = _rows(out)
    assert set(rows) == {str(tmp_path / "d1" / "a.jpg"), str(tmp_path / "d2" / "a.jpg")}
    _predicted(rows, rows)
    assert rows[str(tmp_path / "d1" / "a.jpg")] != rows[str(tmp_path / "d2" / "a.jpg")]


def test_preds_csv_and_atomic_writes_get_the_usual_file_mode(good, tmp_path, monkeypatch):
    old = os.umask(0o022)
    try:
        out = tmp_path / "preds.csv"
        assert main(["predict", good[0], "--out", str(out)]) == 0
        assert stat.S_IMODE(os.stat(out).st_mode) == 0o644
        os.umask(0o027)
        atomic_write(str(tmp_path / "q.json"), b"{}")
        assert stat.S_IMODE(os.stat(tmp_path / "q.json").st_mode) == 0o640       # the umask still applies
    finally:
        os.umask(old)

    def full_disk(*a):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        atomic_write(str(tmp_path / "q.json"), b"[]")
    assert sorted(os.listdir(tmp_path)) == ["preds.csv", "q.json"] and (tmp_path / "q.json").read_bytes() == b"{}"
