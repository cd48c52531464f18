import pytest

from recognizer.metrics import TextMatch, exact_match, norm_edit_distance, normalize
from recognizer.tokenizer import DEFAULT_CHARSET, CTCTokenizer


def test_default_charset_covers_design_characters():
    for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ -./:()#":
        assert c in DEFAULT_CHARSET
    assert len(set(DEFAULT_CHARSET)) == len(DEFAULT_CHARSET)


@pytest.mark.parametrize("text", ["DD1391-100", "AV3133 001", "SN 149337 COLOR:WSL", "DX-SHJ1-111(6)",
                                  "1011B548.001", "#A5521", "232040/BBK", "AA11"])
def test_round_trip_through_ctc_paths(text):
    tok = CTCTokenizer()
    ids = tok.encode(text)
    assert all(1 <= i < tok.num_classes for i in ids)
    # a CTC path: each id repeated, blanks between every symbol (needed for doubled letters)
    path = []
    for i in ids:
        path += [i, i, tok.blank_id]
    assert tok.decode(path) == text


def test_repeats_collapse_without_blank():
    tok = CTCTokenizer()
    a = tok.encode("A")[0]
    assert tok.decode([a, a, a]) == "A"
    assert tok.decode([a, 0, a]) == "AA"


def test_unknown_character_is_a_clear_error():
    with pytest.raises(ValueError, match="outside the charset"):
        CTCTokenizer().encode("dd1391")


def test_extension_appends_and_keeps_existing_ids():
    tok = CTCTokenizer()
    new = tok.extend("+ÄA+")
    assert new.charset.startswith(tok.charset)
    assert new.charset[len(tok.charset):] == "+Ä"
    assert new.encode("DD1391-100") == tok.encode("DD1391-100")
    assert new.num_classes == tok.num_classes + 2


def test_duplicate_charset_rejected():
    with pytest.raises(ValueError):
        CTCTokenizer("AAB")


def test_exact_match_normalisation():
    assert normalize("  AV3133   001 ") == "AV3133 001"
    assert exact_match(" AV3133  001", "AV3133 001")
    assert not exact_match("av3133 001", "AV3133 001")   # case-sensitive
    assert not exact_match("AV3133-001", "AV3133 001")


def test_text_match_per_slice():
    tm = TextMatch()
    tm.update("GY7924", "GY7924", {"brand": "adidas"})
    tm.update("DD1391-1O0", "DD1391-100", {"brand": "nike"})
    s = tm.summary()
    assert s["n"] == 2 and s["exact_match"] == 0.5
    assert s["slices"]["brand"]["adidas"]["exact_match"] == 1.0
    assert s["slices"]["brand"]["nike"]["exact_match"] == 0.0
    assert norm_edit_distance("DD1391-1O0", "DD1391-100") == pytest.approx(0.1)
