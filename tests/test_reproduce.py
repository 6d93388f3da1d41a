"""Smoke tests of examples/reproduce at tiny sizes.

Why: the reproduction scripts are what REPRODUCTION.md quotes, so they must keep running. The
paper's linear claims themselves are checked on the product's simulation
(tests/test_linear_simulation.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPRO = Path(__file__).resolve().parents[1] / "examples" / "reproduce"
sys.path.insert(0, str(REPRO))

import _linear as L  # noqa: E402


def _summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def test_first_passage_interpolates_in_log():
    steps = np.array([0, 10, 20])
    eps = np.array([1.0, 0.1, 0.01])
    assert L.first_passage(steps, eps, 0.1) == 10
    assert L.first_passage(steps, eps, np.sqrt(0.1)) == pytest.approx(5.0)
    assert L.first_passage(steps, eps, 1e-3) == float("inf")


def test_fig1a_script_smoke(tmp_path):
    import fig1a

    out = tmp_path / "f1"
    fig1a.main(
        [
            "--Lh",
            "200",
            "--steps",
            "600",
            "--seeds",
            "1",
            "--ratios",
            "1.0",
            "--workers",
            "1",
            "--out",
            str(out),
        ]
    )
    s = _summary(out)
    assert (out / "fig1a.png").stat().st_size > 0 and (out / "fig1a.csv").is_file()
    r = s["results"]["ratios"]["1"]
    assert 0.3 < r["sim_over_theory"]["500"] < 3.0
    assert s["size"].startswith("reduced")


def test_fig3b_script_onset_later_for_smaller_rates(tmp_path):
    import fig3b

    out = tmp_path / "f3b"
    fig3b.main(
        [
            "--Lh",
            "300",
            "--steps",
            "3000",
            "--seeds",
            "1",
            "--ratios",
            "1.4,2.0",
            "--workers",
            "1",
            "--out",
            str(out),
        ]
    )
    rows = _summary(out)["results"]["rows"]
    assert rows[0]["sim_onset"] > rows[1]["sim_onset"]
    assert rows[0]["theory_onset"] > rows[1]["theory_onset"]


def test_fig2a_script_smoke(tmp_path):
    import fig2a

    out = tmp_path / "f2a"
    fig2a.main(
        [
            "--widths",
            "100",
            "--seeds",
            "1",
            "--np-ratios",
            "0.9",
            "--sgd-ratios",
            "1.0",
            "--target",
            "5e-3",
            "--workers",
            "1",
            "--out",
            str(out),
        ]
    )
    row = _summary(out)["results"]["rows"][0]
    assert row["sgd_time"] < row["np_time"] < float("inf")
