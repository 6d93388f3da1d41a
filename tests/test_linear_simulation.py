"""The linear student-teacher simulation on the engine: SGD, W1 row normalisation, early stops,
divergence, grids as one population, and the paper's two qualitative linear claims.

Why: every linear panel (Figs. 1A, 2, 3A, 3B, 3D) and `np-envs theory --simulate` read their
numbers from ``simulate_linear`` / ``simulate_linear_grid`` (the product's agents run by the
population engine); the claims (teacher noise makes NP's error turn back up, row normalisation
makes it settle) are cheap enough to check on every test run.
"""

from __future__ import annotations

import numpy as np
import pytest

from np_envs import theory
from np_envs.linear_simulation import DIVERGED_FACTOR, simulate_linear, simulate_linear_grid

SIGMA_T = 0.32  # sigma_t^2 ~ 0.1, the paper's teacher noise


def test_plain_np_is_the_theory_modules_simulation():
    lr = 0.8 * theory.critical_learning_rate(20, 50, 5)
    steps, a, eps = theory.simulate_linear_np(20, 50, 5, lr, 200, seed=3, record_every=50)
    run = simulate_linear(20, 50, 5, lr, 200, seed=3, record_every=50)
    np.testing.assert_array_equal(steps, run.steps)
    np.testing.assert_array_equal(eps, run.eps)
    np.testing.assert_array_equal(a, run.a)
    assert (run.stopped, run.last) == ("budget", 200)


def test_sgd_learns_and_np_sees_the_same_stream():
    """Same seed, same teacher and initial student: step 0 agrees, SGD then learns."""
    lr = theory.sgd_optimal_learning_rate(30, 100, 5)
    sgd = simulate_linear(30, 100, 5, lr, 600, rule="sgd", record_every=300)
    np_run = simulate_linear(30, 100, 5, 1e-4, 600, rule="np", record_every=300)
    assert sgd.eps[0] == np_run.eps[0] and sgd.a[0] == np_run.a[0]
    assert sgd.eps[-1] < 0.2 * sgd.eps[0]
    # a sign error in the SGD step would raise the error instead
    assert np.all(np.diff(sgd.eps) < 0)


def test_row_normalisation_holds_every_w1_row_at_its_initial_rms():
    lr = theory.critical_learning_rate(30, 100, 5)
    for init_scale in (1.0, 0.25):
        wn = simulate_linear(30, 100, 5, lr, 300, normalize_w1=True, record_every=100,
                             sigma_t=SIGMA_T, init_scale=init_scale)
        # rows at RMS sqrt(2 r/(Lx+Lh)) => a = Lh * 2 r/(Lx+Lh) * Lx / (Lx Lh^(1/3)); the
        # engine's wn-np puts W1 on that surface before the first step too
        expected = 2 * init_scale * 100 / 130 / np.cbrt(100.0)
        np.testing.assert_allclose(wn.a, expected, rtol=1e-9)


def test_early_stops_leave_nan_after_the_crossing_record():
    Lx, Lh, Ly = 20, 100, 5
    eps0 = theory.initial_order_parameters(Lx, Lh, Ly)["eps0"]
    lr = 0.5 * theory.critical_learning_rate(Lx, Lh, Ly)
    below = simulate_linear(Lx, Lh, Ly, lr, 5000, record_every=50, stop_below=0.5 * eps0)
    assert below.stopped == "below" and below.last < 5000
    i = int(np.flatnonzero(below.steps == below.last)[0])
    assert below.eps[i] <= 0.5 * eps0 < below.eps[i - 1]
    assert np.all(np.isnan(below.eps[i + 1:]))
    above = simulate_linear(Lx, Lh, Ly, 3.0 * theory.critical_learning_rate(Lx, Lh, Ly), 5000,
                            record_every=10, stop_above=2.0 * eps0)
    assert above.stopped == "above" and above.eps[above.steps == above.last][0] > 2.0 * eps0


def test_divergence_is_recorded_as_inf_from_the_blow_up_on():
    Lx, Lh, Ly = 20, 100, 5
    # at 10 eta* the error freezes near 1e64-1e97 (l~ == l in float64) and never reaches inf:
    # that is a blow-up too
    run = simulate_linear(Lx, Lh, Ly, 10 * theory.critical_learning_rate(Lx, Lh, Ly), 20000,
                          record_every=100)
    assert run.stopped == "diverged" and run.last < 20000
    bad = ~np.isfinite(run.eps)
    first = int(np.argmax(bad))
    assert first > 0 and np.all(bad[first:]) and np.all(np.isposinf(run.eps[first:]))
    assert np.all(run.eps[:first] <= DIVERGED_FACTOR * run.eps[0])


@pytest.mark.parametrize(
    "kwargs",
    [dict(rule="adam"), dict(stop_below=-1.0), dict(stop_above=float("nan")),
     dict(record_steps=[5, 11]), dict(seed=1.5), dict(learning_rate=0.0),
     dict(teacher_seed=0)],
)
def test_bad_arguments_say_what_was_wrong(kwargs):
    args = dict(Lx=10, Lh=20, Ly=3, learning_rate=1e-3, steps=10)
    args.update(kwargs)
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        simulate_linear(**args)


def test_teacher_noise_error_reaches_minimum_then_rises():
    """Fig. 3A at reduced size (Lh=500, 1.4 eta*): a minimum, then the error climbs again."""
    Lx, Lh, Ly = 100, 500, 10
    lr = 1.4 * theory.critical_learning_rate(Lx, Lh, Ly)
    (runs,) = simulate_linear_grid(Lx, Lh, Ly, [lr], 3000, seeds=[0, 1], sigma_t=SIGMA_T,
                                   record_every=50)
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
    (plain,) = simulate_linear_grid(Lx, Lh, Ly, [lr], 4000, seeds=[0, 1], **kw)
    (wn,) = simulate_linear_grid(Lx, Lh, Ly, [lr], 4000, seeds=[0, 1], normalize_w1=True, **kw)
    e_plain = np.mean([r.eps for r in plain], axis=0)
    e_wn = np.mean([r.eps for r in wn], axis=0)
    assert e_plain[-1] > 3.0 * e_plain.min()
    assert e_wn[-1] < 1.3 * e_wn.min()
    assert e_wn[-1] < 0.8 * e_wn[0]
    # the last quarter is flat: settled, not slowly climbing
    q = 3 * e_wn.size // 4
    assert e_wn[-1] < 1.15 * e_wn[q]


def test_a_grid_is_one_population_whose_members_are_the_single_runs():
    """runs[rate][seed]; each member is the single run with its settings (to rounding: the
    grid's first layer is one product for the members that share a seed)."""
    Lx, Lh, Ly = 20, 50, 5
    eta = theory.critical_learning_rate(Lx, Lh, Ly)
    grid = simulate_linear_grid(Lx, Lh, Ly, [0.5 * eta, 0.8 * eta], 300, seeds=[3, 4],
                                record_every=100)
    assert [[r.params["learning_rate"] for r in g] for g in grid] == [[0.5 * eta] * 2,
                                                                        [0.8 * eta] * 2]
    assert [[r.params["seed"] for r in g] for g in grid] == [[3, 4], [3, 4]]
    single = simulate_linear(Lx, Lh, Ly, 0.8 * eta, 300, seed=4, record_every=100)
    np.testing.assert_allclose(grid[1][1].eps, single.eps, rtol=1e-6)
    np.testing.assert_allclose(grid[1][1].a, single.a, rtol=1e-9)
    # same seed: same initial student; other seed: another one
    assert grid[0][0].eps[0] == grid[1][0].eps[0] != grid[0][1].eps[0]


def test_a_finished_member_is_frozen_while_the_others_go_on():
    Lx, Lh, Ly = 20, 100, 5
    eta = theory.critical_learning_rate(Lx, Lh, Ly)
    eps0 = theory.initial_order_parameters(Lx, Lh, Ly)["eps0"]
    slow, fast = simulate_linear_grid(Lx, Lh, Ly, [0.1 * eta, 0.6 * eta], 3000, seeds=[0],
                                      record_every=50, stop_below=0.3 * eps0)
    slow, fast = slow[0], fast[0]
    assert fast.stopped == "below" and fast.last < slow.last
    assert np.all(np.isnan(fast.eps[fast.steps > fast.last]))
    assert np.all(np.isfinite(slow.eps[slow.steps <= slow.last]))


def test_initial_student_has_the_expected_order_parameters():
    """The engine's Xavier-Glorot draw is NOTES.md's: mean a and student part of eps over
    seeds match alpha0 / Lh^(1/3) and 4 r Lh/((Lx+Lh)(Ly+Lh)) (also with r != 1)."""
    Lx, Lh, Ly = 20, 50, 5
    for r in (1.0, 0.25):
        (runs,) = simulate_linear_grid(Lx, Lh, Ly, [1e-4], 0, seeds=list(range(40)),
                                       init_scale=r)
        p = theory.initial_order_parameters(Lx, Lh, Ly, init_scale=r)
        a0 = np.mean([run.a[0] for run in runs])
        assert a0 == pytest.approx(p["a0"], rel=0.03)
