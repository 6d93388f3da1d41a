"""Mean-field theory of NP in the linear student-teacher task (np_envs.theory, `np-envs theory`).

Expected values are written out from the formulas of paper/NOTES.md ("Linear student-teacher"),
not obtained by calling the code under test a second time.
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pytest

from np_envs import theory


def _cubic(c: float, eps0: float, a0: float) -> float:
    """The eta* polynomial (eps0 - a0^3/3) c^3 + a0^2 c^2 - 4/3."""
    return (eps0 - a0**3 / 3.0) * c**3 + a0**2 * c**2 - 4.0 / 3.0


def _bisect_root(eps0: float, a0: float) -> float:
    """The positive root of the cubic by bisection: independent of numpy.roots."""
    lo, hi = 0.0, 1.0
    while _cubic(hi, eps0, a0) < 0.0:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _cubic(mid, eps0, a0) < 0.0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


# ------------------------------------------------------------------------------------------
# closed forms, by hand
# ------------------------------------------------------------------------------------------


def test_initial_values_by_hand_100_1000_10():
    p = theory.initial_order_parameters(100, 1000, 10)
    alpha0 = 2 * 1000 / (100 + 1000)  # 1.8181...
    beta0 = 2 * 1000 / (1000 + 10)  # 1.9801...
    eps0 = 4 * 1000 / ((100 + 1000) * (10 + 1000)) + 2 / (100 + 10)
    a0 = alpha0 / 10.0  # 1000^(1/3) = 10
    assert p["alpha0"] == pytest.approx(alpha0, rel=1e-14)
    assert p["beta0"] == pytest.approx(beta0, rel=1e-14)
    assert p["eps0"] == pytest.approx(eps0, rel=1e-14)
    assert p["a0"] == pytest.approx(a0, rel=1e-14)
    assert p["alpha0"] == pytest.approx(1.8181818181818181, rel=1e-14)
    assert p["eps0"] == pytest.approx(0.02178217821782178, rel=1e-14)


def test_initial_values_by_hand_50_200_5_and_init_scale():
    p = theory.initial_order_parameters(50, 200, 5)
    assert p["alpha0"] == pytest.approx(400 / 250, rel=1e-14)
    assert p["beta0"] == pytest.approx(400 / 205, rel=1e-14)
    assert p["eps0"] == pytest.approx(800 / (250 * 205) + 2 / 55, rel=1e-14)
    assert p["a0"] == pytest.approx(1.6 / 200 ** (1 / 3), rel=1e-14)
    # r scales the variance of W1: alpha0 and the student part of eps0, not beta0
    q = theory.initial_order_parameters(50, 200, 5, init_scale=10.0)
    assert q["alpha0"] == pytest.approx(10 * 400 / 250, rel=1e-14)
    assert q["beta0"] == pytest.approx(400 / 205, rel=1e-14)
    assert q["eps0"] == pytest.approx(10 * 800 / (250 * 205) + 2 / 55, rel=1e-14)


@pytest.mark.parametrize(
    ("sizes", "pinned"),
    [((100, 1000, 10), 1.2018658824412572e-04), ((50, 200, 5), 6.084852064922082e-04)],
)
def test_critical_learning_rate_by_hand(sizes, pinned):
    Lx, Lh, Ly = sizes
    alpha0 = 2 * Lh / (Lx + Lh)
    beta0 = 2 * Lh / (Lh + Ly)
    eps0 = 4 * Lh / ((Lx + Lh) * (Ly + Lh)) + 2 / (Lx + Ly)
    a0 = alpha0 / Lh ** (1 / 3)
    c = (1 - 1e-4) * _bisect_root(eps0, a0)
    expected = c / (Lx * Ly * (1 + beta0) * Lh ** (1 / 3))
    got = theory.critical_learning_rate(Lx, Lh, Ly)
    assert got == pytest.approx(expected, rel=1e-10)
    assert got == pytest.approx(pinned, rel=1e-9)


@pytest.mark.parametrize("sizes", [(100, 1000, 10), (50, 200, 5), (100, 10000, 10), (20, 100, 5)])
def test_critical_learning_rate_is_a_root_of_the_cubic(sizes):
    Lx, Lh, Ly = sizes
    p = theory.initial_order_parameters(Lx, Lh, Ly)
    eta = theory.critical_learning_rate(Lx, Lh, Ly)
    c = eta * Lx * Ly * (1 + p["beta0"]) * Lh ** (1 / 3)
    root = c / (1 - 1e-4)
    assert abs(_cubic(root, p["eps0"], p["a0"])) < 1e-10
    assert _cubic(c, p["eps0"], p["a0"]) < 0  # the margin puts eta* on the stable side


def test_critical_learning_rate_with_scaled_up_first_layer():
    """init_scale=10 at paper size: the cubic has two positive roots; the smaller is eta*."""
    Lx, Lh, Ly, r = 100, 10000, 10, 10.0
    p = theory.initial_order_parameters(Lx, Lh, Ly, init_scale=r)
    assert p["eps0"] - p["a0"] ** 3 / 3 < 0  # the regime where "largest root" would be wrong
    eta = theory.critical_learning_rate(Lx, Lh, Ly, init_scale=r)
    c = eta * Lx * Ly * (1 + p["beta0"]) * Lh ** (1 / 3) / (1 - 1e-4)
    assert abs(_cubic(c, p["eps0"], p["a0"])) < 1e-10
    assert 2 / c > p["a0"]  # below threshold at the start
    below = theory.instability_onset(Lx, Lh, Ly, 0.9 * eta, 0.0, 10**6, init_scale=r)
    above = theory.instability_onset(Lx, Lh, Ly, 1.2 * eta, 0.0, 10**6, init_scale=r)
    assert below is None and above is not None
    # scaling W1 up lowers the critical rate (Fig. 1C: large initial norms destabilise)
    assert eta < theory.critical_learning_rate(Lx, Lh, Ly)


def test_sgd_optimal_learning_rate_by_hand():
    assert theory.sgd_optimal_learning_rate(100, 1000, 10) == pytest.approx(
        1 / (100 * (2000 / 1100 + 2000 / 1010)), rel=1e-14
    )
    assert theory.sgd_optimal_learning_rate(50, 200, 5) == pytest.approx(
        1 / (50 * (400 / 250 + 400 / 205)), rel=1e-14
    )
    assert theory.sgd_optimal_learning_rate(100, 1000, 10) == pytest.approx(
        0.0026327014218009478, rel=1e-12
    )


@pytest.mark.parametrize("sizes", [(100, 1000, 10), (50, 200, 5)])
@pytest.mark.parametrize("sigma_t", [0.0, 0.3])
def test_first_three_steps_by_hand(sizes, sigma_t):
    Lx, Lh, Ly = sizes
    lr = 1e-4
    alpha0 = 2 * Lh / (Lx + Lh)
    beta0 = 2 * Lh / (Lh + Ly)
    eps0 = 4 * Lh / ((Lx + Lh) * (Ly + Lh)) + 2 / (Lx + Ly)
    eta_h = lr * Lh ** (1 / 3)
    c = eta_h * Lx * Ly * (1 + beta0)
    s = sigma_t**2 / Lx
    a0 = alpha0 / Lh ** (1 / 3)
    # simultaneous update: both right-hand sides use the previous (a, eps)
    a1 = a0 + eta_h * c * (eps0 + s)
    e1 = eps0 + eta_h * (-2 * a0 * eps0 + c * a0**2 * (eps0 + s))
    a2 = a1 + eta_h * c * (e1 + s)
    e2 = e1 + eta_h * (-2 * a1 * e1 + c * a1**2 * (e1 + s))
    a3 = a2 + eta_h * c * (e2 + s)
    e3 = e2 + eta_h * (-2 * a2 * e2 + c * a2**2 * (e2 + s))

    a, eps = theory.mean_field_trajectory(Lx, Lh, Ly, lr, 3, sigma_t)
    assert a.shape == eps.shape == (4,)
    assert a.dtype == eps.dtype == np.float64
    np.testing.assert_allclose(a, [a0, a1, a2, a3], rtol=1e-12)
    np.testing.assert_allclose(eps, [eps0, e1, e2, e3], rtol=1e-12)


def test_trajectory_length_and_zero_steps():
    a, eps = theory.mean_field_trajectory(20, 100, 5, 1e-3, 0)
    assert a.shape == eps.shape == (1,)
    a, eps = theory.mean_field_trajectory(20, 100, 5, 1e-3, 17)
    assert a.shape == eps.shape == (18,)


# ------------------------------------------------------------------------------------------
# qualitative behaviour of the map
# ------------------------------------------------------------------------------------------


def test_below_eta_star_converges_above_diverges():
    Lx, Lh, Ly = 20, 100, 5
    eta = theory.critical_learning_rate(Lx, Lh, Ly)
    a, eps = theory.mean_field_trajectory(Lx, Lh, Ly, 0.8 * eta, 100_000)
    assert np.all(np.isfinite(eps))
    assert np.all(np.diff(eps) <= 0.0)  # monotone: never turns back up
    assert eps[-1] < 1e-8 * eps[0]
    assert np.all(np.diff(a) >= 0.0)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # divergence must not spam warnings
        a_hi, eps_hi = theory.mean_field_trajectory(Lx, Lh, Ly, 1.4 * eta, 100_000)
    grows = ~np.isfinite(eps_hi[-1]) or eps_hi[-1] > eps_hi[0]
    assert grows
    assert not np.isnan(eps_hi).any()  # a blow-up reads +inf, never nan
    assert np.isinf(eps_hi[-1]) and np.isinf(a_hi[-1])
    assert np.min(eps_hi) > 1e-8 * eps_hi[0]


def test_instability_onset_matches_trajectory_and_sigma_zero():
    Lx, Lh, Ly = 20, 100, 5
    eta = theory.critical_learning_rate(Lx, Lh, Ly)
    onset = theory.instability_onset(Lx, Lh, Ly, 0.8 * eta, 0.3, max_steps=10**6)
    _, eps = theory.mean_field_trajectory(Lx, Lh, Ly, 0.8 * eta, onset + 5, 0.3)
    d = np.diff(eps)
    assert d[onset - 1] > 0 and np.all(d[: onset - 1] <= 0)  # eps[onset] > eps[onset - 1]
    # no teacher noise, below eta*: the error never rises
    assert theory.instability_onset(Lx, Lh, Ly, 0.8 * eta, 0.0, max_steps=20_000) is None
    # above eta* it does, even without noise
    assert theory.instability_onset(Lx, Lh, Ly, 1.4 * eta, 0.0, max_steps=10**6) is not None


def test_onset_comes_later_for_smaller_learning_rates():
    Lx, Lh, Ly = 20, 100, 5
    eta = theory.critical_learning_rate(Lx, Lh, Ly)
    onsets = [
        theory.instability_onset(Lx, Lh, Ly, r * eta, 0.3, max_steps=10**6)
        for r in (1.0, 0.6, 0.3)
    ]
    assert None not in onsets
    assert onsets[0] < onsets[1] < onsets[2]


def test_onset_none_when_budget_too_small():
    eta = theory.critical_learning_rate(20, 100, 5)
    assert theory.instability_onset(20, 100, 5, 0.3 * eta, 0.3, max_steps=3) is None


def test_nullcline():
    c, sigma_t, Lx = 2.0, 0.5, 25
    s = sigma_t**2 / Lx
    a = np.array([0.1, 0.5, 0.9, 1.0, 1.5])
    got = theory.nullcline_eps(a, c, sigma_t, Lx)
    np.testing.assert_allclose(got[:3], [c * x * s / (2 - c * x) for x in a[:3]], rtol=1e-14)
    assert np.isnan(got[3:]).all()  # 2 - c a <= 0
    # on the nullcline the eps increment of the map vanishes
    x = 0.3
    e = theory.nullcline_eps(x, c, sigma_t, Lx)
    assert isinstance(e, float)
    assert -2 * x * e + c * x**2 * (e + s) == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize(
    "call",
    [
        lambda: theory.critical_learning_rate(0, 100, 5),
        lambda: theory.critical_learning_rate(20, 100.0, 5),
        lambda: theory.critical_learning_rate(20, True, 5),
        lambda: theory.sgd_optimal_learning_rate(20, 100, -1),
        lambda: theory.initial_order_parameters(20, 100, 5, init_scale=0.0),
        lambda: theory.mean_field_trajectory(20, 100, 5, 0.0, 10),
        lambda: theory.mean_field_trajectory(20, 100, 5, -1e-3, 10),
        lambda: theory.mean_field_trajectory(20, 100, 5, float("nan"), 10),
        lambda: theory.mean_field_trajectory(20, 100, 5, 1e-3, -1),
        lambda: theory.mean_field_trajectory(20, 100, 5, 1e-3, 10, sigma_t=-0.1),
        lambda: theory.instability_onset(20, 100, 5, 1e-3, -0.3),
        lambda: theory.nullcline_eps(0.1, -1.0, 0.3, 20),
        lambda: theory.simulate_linear_np(20, 100, 5, 1e-3, 10, record_every=0),
        lambda: theory.simulate_linear_np(20, 100, 5, 1e-3, 10, record_steps=[11]),
    ],
)
def test_bad_arguments_raise(call):
    with pytest.raises(ValueError):
        call()


# ------------------------------------------------------------------------------------------
# simulation of the NP rule
# ------------------------------------------------------------------------------------------


def test_simulation_learns_at_half_eta_star():
    Lx, Lh, Ly = 20, 200, 5
    eta = theory.critical_learning_rate(Lx, Lh, Ly)
    steps, a, eps = theory.simulate_linear_np(Lx, Lh, Ly, 0.5 * eta, 3000, seed=0, record_every=500)
    np.testing.assert_array_equal(steps, [0, 500, 1000, 1500, 2000, 2500, 3000])
    # step 0 is the Xavier-Glorot draw: close to the expected initial values
    p = theory.initial_order_parameters(Lx, Lh, Ly)
    assert a[0] == pytest.approx(p["a0"], rel=0.2)
    assert eps[0] == pytest.approx(p["eps0"], rel=0.5)
    assert np.all(np.isfinite(eps))
    assert eps[-1] < eps[0] / 100
    assert np.all(np.diff(a) > 0)  # NP noise inflates ||W1||


def test_simulation_is_seeded_and_records_given_steps():
    args = (10, 50, 3, 1e-3, 40)
    r1 = theory.simulate_linear_np(*args, sigma_t=0.2, seed=3, record_steps=[1, 10, 10, 25])
    r2 = theory.simulate_linear_np(*args, sigma_t=0.2, seed=3, record_steps=[1, 10, 10, 25])
    r3 = theory.simulate_linear_np(*args, sigma_t=0.2, seed=4, record_steps=[1, 10, 10, 25])
    np.testing.assert_array_equal(r1[0], [0, 1, 10, 25, 40])
    np.testing.assert_array_equal(r1[2], r2[2])
    assert not np.array_equal(r1[2], r3[2])


def test_simulation_divergence_reads_inf():
    Lx, Lh, Ly = 20, 200, 5
    eta = theory.critical_learning_rate(Lx, Lh, Ly)
    _, _, eps = theory.simulate_linear_np(Lx, Lh, Ly, 1.4 * eta, 5000, 0.3, record_every=500)
    assert np.isinf(eps[-1]) or eps[-1] > 1e3 * eps[0]


@pytest.mark.slow
def test_simulation_matches_theory_at_paper_size():
    """Fig. 1A setting at 0.8 eta*: 3 seeds' mean within a factor 1.5 of the map, 2,000 steps."""
    Lx, Lh, Ly = 100, 10000, 10
    eta = theory.critical_learning_rate(Lx, Lh, Ly)
    lr = 0.8 * eta
    t0 = time.perf_counter()
    runs = [
        theory.simulate_linear_np(Lx, Lh, Ly, lr, 2000, seed=seed, record_every=100)
        for seed in range(3)
    ]
    steps = runs[0][0]
    mean_eps = np.mean([r[2] for r in runs], axis=0)
    _, eps_theory = theory.mean_field_trajectory(Lx, Lh, Ly, lr, 2000)
    ratio = mean_eps / eps_theory[steps]
    print(f"\nsim/theory at steps {steps.tolist()}:\n{np.round(ratio, 3).tolist()}"
          f"\n({time.perf_counter() - t0:.1f} s)")
    assert np.all(ratio < 1.5) and np.all(ratio > 1 / 1.5)


# ------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------


def test_cli_theory_writes_csv_and_figures(tmp_path, capsys):
    from np_envs.cli.main import main

    rc = main(["theory", "--Lx", "20", "--Lh", "100", "--Ly", "5", "--steps", "2000",
               "--sigma-t", "0.3", "--out", str(tmp_path)])
    assert rc == 0
    for name in ("theory.csv", "eps.png", "a_eps_plane.png"):
        assert (tmp_path / name).stat().st_size > 0
    out = capsys.readouterr().out
    eta = theory.critical_learning_rate(20, 100, 5)
    assert f"{eta:.6e}" in out
    assert "onset" in out

    import csv

    with open(tmp_path / "theory.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["lr_ratio", "learning_rate", "step", "a", "eps"]
    assert {r["lr_ratio"] for r in rows} == {"0.8", "1", "1.2", "1.4"}
    per_curve = [r for r in rows if r["lr_ratio"] == "0.8"]
    assert 50 <= len(per_curve) <= 250  # log-subsampled, not 2001 rows
    assert int(per_curve[0]["step"]) == 0 and int(per_curve[-1]["step"]) == 2000
    _, eps = theory.mean_field_trajectory(20, 100, 5, 0.8 * eta, 2000, 0.3)
    assert float(per_curve[-1]["eps"]) == pytest.approx(eps[-1], rel=1e-8)
    assert not list(tmp_path.glob("*.tmp"))  # atomic writes leave no temporaries


def test_cli_theory_without_noise_has_no_plane_plot(tmp_path):
    from np_envs.cli.main import main

    rc = main(["theory", "--Lx", "20", "--Lh", "100", "--Ly", "5", "--steps", "500",
               "--lr-ratio", "0.5,1.5", "--out", str(tmp_path)])
    assert rc == 0
    assert (tmp_path / "eps.png").stat().st_size > 0
    assert not (tmp_path / "a_eps_plane.png").exists()


def test_cli_theory_simulate_and_resume(tmp_path, capsys):
    from np_envs.cli.main import main

    argv = ["theory", "--Lx", "10", "--Lh", "50", "--Ly", "3", "--steps", "300",
            "--lr-ratio", "0.5", "--sigma-t", "0.2", "--simulate", "--seeds", "2",
            "--out", str(tmp_path)]
    assert main(argv) == 0
    sim = (tmp_path / "simulation.csv").read_text().splitlines()
    assert sim[0] == "lr_ratio,learning_rate,seed,step,a,eps"
    assert len(sim) > 10
    assert len(list((tmp_path / "sim_cache").glob("*.npz"))) == 2
    capsys.readouterr()
    assert main(argv) == 0  # second run reuses the finished simulations
    assert (tmp_path / "simulation.csv").read_text().splitlines() == sim


def test_cli_theory_simulates_rates_in_parallel_to_the_same_tables(tmp_path, capsys):
    """--jobs 2 runs each rate's population in its own process: same simulation.csv, same cache
    files (written by the workers), and a later run reuses them."""
    from np_envs.cli.main import main

    argv = ["theory", "--Lx", "10", "--Lh", "50", "--Ly", "3", "--steps", "300",
            "--lr-ratio", "0.5,0.9,1.6", "--simulate", "--seeds", "2"]
    assert main([*argv, "--out", str(tmp_path / "serial")]) == 0
    assert main([*argv, "--jobs", "2", "--out", str(tmp_path / "parallel")]) == 0
    out = capsys.readouterr().out
    assert out.count("seeds as one population") == 6
    serial, parallel = (tmp_path / "serial" / "simulation.csv", tmp_path / "parallel" /
                        "simulation.csv")
    assert parallel.read_text() == serial.read_text()
    cached = sorted(p.name for p in (tmp_path / "parallel" / "sim_cache").glob("*.npz"))
    assert cached == sorted(p.name for p in (tmp_path / "serial" / "sim_cache").glob("*.npz"))
    assert len(cached) == 6
    assert main([*argv, "--jobs", "2", "--out", str(tmp_path / "parallel")]) == 0
    assert "seeds as one population" not in capsys.readouterr().out  # all from the cache
    assert parallel.read_text() == serial.read_text()


def test_cli_theory_bad_arguments(tmp_path, capsys):
    from np_envs.cli.main import main

    assert main(["theory", "--Lx", "0", "--out", str(tmp_path)]) == 2
    assert "Lx" in capsys.readouterr().err
    assert main(["theory", "--simulate", "--jobs", "0", "--out", str(tmp_path)]) == 2
    assert "--jobs must be >= 1, got 0" in capsys.readouterr().err
    assert main(["theory", "--jobs", "2", "--seeds", "4", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err  # they would have done nothing without --simulate
    assert "--seeds, --jobs only apply to the simulation: add --simulate" in err
    assert not (tmp_path / "theory.csv").exists()  # refused before any work
    a_file = tmp_path / "a_file"
    a_file.write_text("kept")
    assert main(["theory", "--out", str(a_file)]) == 2  # was a FileExistsError traceback
    assert "--out" in capsys.readouterr().err and a_file.read_text() == "kept"
    with pytest.raises(SystemExit):
        main(["theory", "--lr-ratio", "0.5,-1", "--out", str(tmp_path)])
    assert math.isfinite(theory.critical_learning_rate(100, 2000, 10))


# ---------------------------------------------------------------- four-variable model
def test_four_variable_first_steps_by_hand():
    """Lx=Lh=Ly=2 gives alpha0=beta0=eps0=1, phi0=-1/2, psi0=1/2; eta=0.1, sigma_t=0.

    Step 1: q=2, n=0.01*(2*2*2+4)*2=0.24, alpha=1-0.2+0.16, eps=1-0.4+0.08+0.24,
    phi=-0.5+0.3-0.06-0.24. Step 2 from (0.96, 0.96, 0.92, -0.5): q=1.84,
    n=0.01*(3.92*1.8816+3.6864)*1.84.
    """
    r = theory.mean_field_four_variable(2, 2, 2, 0.1, 2)
    assert r["alpha"][:2] == pytest.approx([1.0, 0.96], abs=1e-12)
    assert r["beta"][:2] == pytest.approx([1.0, 0.96], abs=1e-12)
    assert r["eps"][:2] == pytest.approx([1.0, 0.92], abs=1e-12)
    assert r["phi"][:2] == pytest.approx([-0.5, -0.5], abs=1e-12)
    assert r["alpha"][2] == pytest.approx(0.904256, abs=1e-12)
    assert r["beta"][2] == pytest.approx(0.89848576, abs=1e-12)
    assert r["eps"][2] == pytest.approx(0.8438658048, abs=1e-12)


def test_four_variable_teacher_noise_by_hand():
    """sigma_t=1: q=3, n=0.36, psi=1/2, so alpha=beta=1.04, eps=1.06, phi=-0.64 after one step."""
    r = theory.mean_field_four_variable(2, 2, 2, 0.1, 1, sigma_t=1.0)
    assert [r[k][1] for k in ("alpha", "beta", "eps", "phi")] == pytest.approx(
        [1.04, 1.04, 1.06, -0.64], abs=1e-12)


def test_four_variable_starts_with_two_variable_and_falls_below_it():
    """Same eps0; at 0.8 eta* both fall, and late the four-variable eps is the lower one."""
    eta = 0.8 * theory.critical_learning_rate(100, 1000, 10)
    four = theory.mean_field_four_variable(100, 1000, 10, eta, 20_000)
    _, two = theory.mean_field_trajectory(100, 1000, 10, eta, 20_000)
    assert four["eps"][0] == pytest.approx(two[0])
    assert four["eps"][-1] < four["eps"][0] and four["eps"][-1] < two[-1]


def test_four_variable_blow_up_reads_inf():
    r = theory.mean_field_four_variable(100, 1000, 10, 3 * theory.critical_learning_rate(
        100, 1000, 10), 50_000)
    assert np.isinf(r["eps"][-1]) and np.isfinite(r["eps"][0])
    first_inf = int(np.argmax(np.isinf(r["eps"])))
    assert np.all(np.isinf(r["eps"][first_inf:]))
