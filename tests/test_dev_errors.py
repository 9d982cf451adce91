"""``scripts/dev_errors.py``: the error breakdown recipe decisions rest on (docs/MODEL.md)."""

import json

import scripts.dev_errors as de

from ._util import script_checkpoint


def test_breakdown_counts_each_kind_of_error():
    truth = ["皖A12345", "苏B0O123", "京CZ2345", "沪D88888"]
    pred = ["皖A12345", "苏B00123", "津CZ2345", "渝D88B88"]
    b = de.breakdown(pred, truth)
    assert (b["plates"], b["wrong"]) == (4, 3)
    assert b["province_wrong"] == 2  # 京->津, 沪->渝
    assert b["serial_wrong"] == 2  # O->0, 8->B
    assert b["O_read_0"] == 1
    assert set(b["top_confusions"]) == {"O->0 x1", "京->津 x1", "沪->渝 x1", "8->B x1"}


def test_compares_two_models_plate_by_plate(tmp_path, capsys):
    a = script_checkpoint(tmp_path / "a.pt")
    assert de.main(["--model", str(a), "--other", str(a), "--per-province", "1", "--threads", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    for look in ("harsh", "matched"):
        assert out["model"][look]["plates"] == 31
        # The same weights: neither gets a plate wrong that the other reads right.
        assert out[f"paired_{look}"] == {"only_model_wrong": 0, "only_other_wrong": 0}
    assert out["model"]["total_wrong"] == out["other"]["total_wrong"]
