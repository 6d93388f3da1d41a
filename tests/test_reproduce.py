"""Smoke tests of examples/reproduce at tiny sizes; the paper's linear claims at reduced size.

Why: the reproduction scripts are what REPRODUCTION.md quotes, so they must keep running; and the
two qualitative linear claims of the issue (teacher noise makes NP's error turn back up; weight
normalisation makes it settle) are cheap enough to check on every test run.
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

from np_envs import theory  # noqa: E402

SIGMA_T = 0.32  # sigma_t^2 ~ 0.1, the paper's teacher noise


def _summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def test_simulate_matches_theory_simulation_exactly():
    """Plain NP here is the theory module's simulation, draw for draw."""
    lr = 0.8 * theory.critical_learning_rate(20, 50, 5)
    s1, a1, e1 = theory.simulate_linear_np(20, 50, 5, lr, 200, seed=3, record_every=50)
    run = L.simulate(20, 50, 5, lr, 200, seed=3, record_every=50)
    np.testing.assert_array_equal(s1, run.steps)
    np.testing.assert_allclose(a1, run.a, rtol=1e-12)
    np.testing.assert_allclose(e1, run.eps, rtol=1e-12)


def test_sgd_learns_and_normalisation_holds_the_norm():
    lr = theory.sgd_optimal_learning_rate(30, 100, 5)
    run = L.simulate(30, 100, 5, lr, 600, rule="sgd", record_every=300)
    assert run.eps[-1] < 0.2 * run.eps[0]
    lr_np = theory.critical_learning_rate(30, 100, 5)
    wn = L.simulate(30, 100, 5, lr_np, 300, normalize_w1=True, record_every=100, sigma_t=SIGMA_T)
    # rows at RMS sqrt(2/(Lx+Lh)) => a = Lh * 2/(Lx+Lh) * Lx / (Lx Lh^(1/3))
    np.testing.assert_allclose(wn.a[1:], 2 * 100 / 130 / np.cbrt(100.0), rtol=1e-9)


def test_first_passage_interpolates_in_log():
    steps = np.array([0, 10, 20])
    eps = np.array([1.0, 0.1, 0.01])
    assert L.first_passage(steps, eps, 0.1) == 10
    assert L.first_passage(steps, eps, np.sqrt(0.1)) == pytest.approx(5.0)
    assert L.first_passage(steps, eps, 1e-3) == float("inf")


def test_teacher_noise_error_reaches_minimum_then_rises():
    """Fig. 3A at reduced size (Lh=500, 1.4 eta*): a minimum, then the error climbs again."""
    Lx, Lh, Ly = 100, 500, 10
    lr = 1.4 * theory.critical_learning_rate(Lx, Lh, Ly)
    runs = [
        L.simulate(Lx, Lh, Ly, lr, 3000, sigma_t=SIGMA_T, seed=s, record_every=50) for s in range(2)
    ]
    eps = np.mean([r.eps for r in runs], axis=0)
    imin = int(np.argmin(eps))
    assert 0 < imin < eps.size - 1
    assert eps[imin] < 0.8 * eps[0]  # it did learn first
    assert eps[-1] > 2.0 * eps[imin]  # and then rose again
    onset = theory.instability_onset(Lx, Lh, Ly, lr, SIGMA_T)
    assert 0.5 * onset < runs[0].steps[imin] < 2.0 * onset


def test_weight_normalisation_settles_where_plain_np_rises():
    """Fig. 3D at reduced size: same rate, same seeds; plain NP rises, row-normalised NP settles."""
    Lx, Lh, Ly = 100, 500, 10
    lr = 1.4 * theory.critical_learning_rate(Lx, Lh, Ly)
    kw = dict(sigma_t=SIGMA_T, record_every=100)
    plain = [L.simulate(Lx, Lh, Ly, lr, 4000, seed=s, **kw) for s in range(2)]
    wn = [L.simulate(Lx, Lh, Ly, lr, 4000, seed=s, normalize_w1=True, **kw) for s in range(2)]
    e_plain = np.mean([r.eps for r in plain], axis=0)
    e_wn = np.mean([r.eps for r in wn], axis=0)
    assert e_plain[-1] > 3.0 * e_plain.min()
    assert e_wn[-1] < 1.3 * e_wn.min()
    assert e_wn[-1] < 0.8 * e_wn[0]
    # the last quarter is flat: settled, not slowly climbing
    q = 3 * e_wn.size // 4
    assert e_wn[-1] < 1.15 * e_wn[q]


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
