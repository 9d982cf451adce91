from __future__ import annotations

import pytest

from core import plates
from core.plates import Scheme, build_name, label_error, parse_name, provinces_matching

CCPD = "025-95_113-154&383_386&473-386&473_177&454_154&383_363&402-0_0_22_27_27_33_16-37-15.jpg"


def test_alphabets_match_the_notebook():
    assert len(plates.PROVINCES) == len(set(plates.PROVINCES)) == 31
    assert len(plates.OTHERS) == 35 and "I" not in plates.OTHERS and "O" in plates.OTHERS
    assert list(plates.PROVINCES) == sorted(plates.PROVINCES)  # notebook's np.unique order
    assert set(plates.PROVINCE_PINYIN) == set(plates.PROVINCES)


@pytest.mark.parametrize(
    "name, scheme, label, id_",
    [
        ("0001-皖A26Y56.jpg", Scheme.DL1, "皖A26Y56", "0001"),
        ("sub/0001-皖A26Y56.png", Scheme.DL1, "皖A26Y56", "0001"),
        ("0001-皖A26Y56-3.jpg", Scheme.DL1, "皖A26Y56", "0001"),  # collision suffix
        ("皖A26Y56.jpg", Scheme.PLATE, "皖A26Y56", ""),
        ("皖A26Y56_2.bmp", Scheme.PLATE, "皖A26Y56", ""),
        (CCPD, Scheme.CCPD, "皖AY339S", "025-95_113-154&383_386&473-386&473_177&454_154&383_363&402"),
    ],
)
def test_parse_schemes(name, scheme, label, id_):
    p = parse_name(name)
    assert (p.scheme, p.label, p.id, p.error) == (scheme, label, id_, None)


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("0001-皖AI6Y56.jpg", "not a plate letter"),  # I is not used on plates
        ("0001-皖A26Y5.jpg", "6 characters"),
        ("0001-AA26Y56.jpg", "province"),
        ("0001-皖126Y56.jpg", "must be a letter"),
        ("junk.jpg", "4 characters"),
        ("0001-.jpg", "empty"),
        ("025-95_113-1-2-99_0_22_27_27_33_16-37-15.jpg", "out of range"),
        ("025-95_113-1-2-31_0_22_27_27_33_16-37-15.jpg", "province"),  # 警 is outside our 31
    ],
)
def test_invalid_names_are_reported_not_raised(name, fragment):
    p = parse_name(name)
    assert not p.valid and fragment in p.error


def test_build_name_keeps_scheme_and_id():
    assert build_name(parse_name("0001-皖A26Y56.jpg"), "京PL3N67") == "0001-京PL3N67.jpg"
    assert build_name(parse_name("皖A26Y56.jpg"), "京PL3N67") == "京PL3N67.jpg"
    new = build_name(parse_name(CCPD), "京PL3N67")
    assert parse_name(new).label == "京PL3N67" and parse_name(new).id == parse_name(CCPD).id


@pytest.mark.parametrize("name", ["0001-皖A26Y56.jpg", "皖A26Y56.jpg", CCPD])
def test_collision_suffix_still_parses(name):
    for n in (2, 3, 11):
        new = build_name(parse_name(name), "京PL3N67", n)
        assert new != build_name(parse_name(name), "京PL3N67")
        p = parse_name(new)
        assert p.label == "京PL3N67" and p.valid
        # suffixes never pile up when a suffixed name is renamed again
        assert parse_name(build_name(p, "沪AMS087", 2)).label == "沪AMS087"


def test_build_name_rejects_invalid_label():
    with pytest.raises(ValueError, match="province"):
        build_name(parse_name("0001-皖A26Y56.jpg"), "XA26Y56")


def test_label_error_and_normalize():
    assert label_error("皖A26Y56") is None
    assert plates.normalize_label(" 皖a·26y56 ") == "皖A26Y56"


def test_pinyin_lookup():
    assert provinces_matching("wan") == ["皖"]
    assert set(provinces_matching("ji")) >= {"冀", "吉", "京", "晋", "津"}
    assert set(provinces_matching("yu")) == {"渝", "豫", "粤", "云"}  # yue, yun start with yu too
    assert provinces_matching("皖") == ["皖"]
    assert provinces_matching("zzz") == []


def test_name_parts_match_pathlib():
    from pathlib import PurePath

    from core.plates import _stem_suffix

    names = ["a.jpg", "a.b.jpg", ".hidden", "x.", "..jpg", "noext", "0001-皖A26Y56.JPG", "a..png", ".a.jpg"]
    for n in names:
        assert _stem_suffix(n) == (PurePath(n).stem, PurePath(n).suffix), n
    assert parse_name("some/dir/0001-皖A26Y56.jpg").label == "皖A26Y56"


def test_what_follows_the_plate_in_a_dl1_name_survives_a_rename():
    p = parse_name("0015-皖A0H628-cam3.jpg")
    assert (p.id, p.label, p.tail) == ("0015", "皖A0H628", "cam3")
    assert build_name(p, "皖A0H627") == "0015-皖A0H627-cam3.jpg"
    assert build_name(p, "皖A0H627", 2) == "0015-皖A0H627-cam3-2.jpg"  # the counter goes last
    again = parse_name("0015-皖A0H627-cam3-2.jpg")
    assert (again.label, again.tail) == ("皖A0H627", "cam3")  # the counter is not part of the tail
    assert build_name(parse_name("0015-皖A0H628-2.jpg"), "皖A0H627") == "0015-皖A0H627.jpg"
    assert build_name(parse_name("0015-皖A0H628-20230105.jpg"), "皖A0H627") == "0015-皖A0H627-20230105.jpg"


def test_a_label_typed_on_a_chinese_keyboard_or_with_separators_is_the_plain_plate():
    assert plates.normalize_label("皖Ａ０Ｈ６２７") == "皖A0H627"  # full-width letters and digits
    assert plates.normalize_label("\ufa75a12345") == "冀A12345"  # a compatibility ideograph of 冀
    for typed in ("皖A-0H627", "皖A・0H627", "皖A·0H627", " 皖a 0h627 "):
        assert plates.normalize_label(typed) == "皖A0H627", typed


def test_a_ccpd2020_green_plate_name_is_read_and_said_unsupported():
    p = parse_name("027-95_113-154&383_386&473-386&473_177&454_154&383_363&402-0_0_3_24_30_33_33_26-37-15.jpg")
    assert p.scheme is Scheme.CCPD and p.box == (154, 383, 386, 473)  # the photo's plate can still be shown
    assert len(p.label) == 8 and p.label.startswith("皖A") and "8 characters" in p.error  # not "95_113"


def test_a_dl1_id_with_dashes_keeps_the_plate_and_the_id_whole():
    p = parse_name("2023-01-05-皖A0W669.jpg")
    assert (p.id, p.label, p.error) == ("2023-01-05", "皖A0W669", None)
    assert build_name(p, "皖A0W668") == "2023-01-05-皖A0W668.jpg"
    assert parse_name("2023-01-05-皖A0W669-2.jpg").label == "皖A0W669"  # a collision counter after it
    odd = parse_name("0015-x-皖A12345-皖B12345.jpg")  # two plates after an invalid one: not guessed
    assert odd.label == "x" and odd.error
