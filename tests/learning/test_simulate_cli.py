import json

import pytest

from histolabel.cli import main


@pytest.mark.slow
def test_histolabel_simulate_writes_curves_for_every_order(shared_data, tmp_path, capsys):
    out = tmp_path / "curves"
    code = main(["simulate", "--quick", "--budget", "60", "--batch", "20", "--initial", "20",
                 "--data", str(shared_data / "labeled/monuseg"), "--out", str(out)])  # fmt: skip
    assert code == 0
    printed = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines() if ": " in line)
    assert float(printed["random_f1_at_60"]) > 0.5
    curves = json.loads((out / "curves.json").read_text())
    assert set(curves["mean_macro_f1"]) == {"random", "confidence", "margin", "entropy", "batchbald"}
    assert curves["labels"][-1] == 60
    assert (out / "learning_curve.png").stat().st_size > 1000


def test_simulate_refuses_a_missing_data_folder(tmp_path):
    assert main(["simulate", "--quick", "--data", str(tmp_path / "nope")]) == 2


@pytest.mark.parametrize("folds", ["3", "x", "0,-1"])
def test_simulate_refuses_folds_beyond_its_images(shared_data, tmp_path, capsys, folds):
    out = tmp_path / "out"
    assert (
        main(
            ["simulate", "--folds", folds, "--data", str(shared_data / "labeled/monuseg"), "--out", str(out)]
        )
        == 2
    )
    assert "--folds takes image indexes 0-2" in capsys.readouterr().err
    assert not out.exists()
