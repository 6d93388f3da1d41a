"""The issue's SARCOS acceptance (Figs. 4B/4C) at reduced size; smoke runs of fig4a-f, fig5b/c.

Why: the paper's nonlinear claim is that NP's input-weight norm grows until its error turns back
up, that weight normalisation holds the norm fixed, and that SGD at its best rate has no such
late rise. These tests check the three on the SARCOS ``test-file`` scheme (the only SARCOS data
on this machine) with a small network, so they run on every machine that has the data. The
MNIST smoke tests (and fig4e's four sweeps) are marked slow.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest

REPRO = Path(__file__).resolve().parents[1] / "examples" / "reproduce"
sys.path.insert(0, str(REPRO))

import _sarcos as S  # noqa: E402

DATA = Path(os.environ.get("NP_ENVS_DATA", "/work/shared/data"))
pytestmark = pytest.mark.skipif(
    not any(DATA.glob("**/sarcos_inv_test*")), reason="SARCOS test file not available"
)

needs_mnist = pytest.mark.skipif(
    not any(DATA.glob("**/t10k-images*")), reason="MNIST files not available"
)

WIDTH = 200
EPOCHS = 40
EVERY = 2
NP_LR = 3e-4  # high enough that plain NP turns back up within EPOCHS
SGD_LRS = (3e-4, 1e-3, 3e-3)


@pytest.fixture(autouse=True)
def _data_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NP_ENVS_DATA", str(DATA))


def _curve(rule: str, lr: float, **kw: object) -> dict:
    """One curve through the product's runner (as the panels get theirs)."""
    import tempfile

    job = dict(rule=rule, width=WIDTH, learning_rate=lr, seed=0, epochs=EPOCHS,
               eval_every=EVERY, split_scheme="test-file", agent_kwargs=kw or None)
    with tempfile.TemporaryDirectory() as root:
        (curve,) = S.run_many([job], 1, root=root)
    return curve


def test_np_norm_grows_and_error_rises_while_wn_np_holds_the_norm_and_sgd_does_not_rise():
    """Fig. 4B/4C on SARCOS test-file: NP's ||W1||^2 grows up to a minimum of the test error,
    after which the error climbs back above its initial value; weight-normalised NP keeps
    ||W1||^2 fixed to 1e-6; SGD at the best of three rates never climbs back above 1.1 x its
    start after its minimum and ends within 2x of its minimum (median of the last quarter)."""
    np_run = _curve("np", NP_LR)
    m = np.where(np.isfinite(np_run["mse"]), np_run["mse"], np.inf)
    imin = int(np.argmin(m))
    assert imin > 0 and m[imin] < 0.5 * m[0], "NP learned first"
    w = np_run["w1_sq"][: imin + 1]
    assert np.all(np.diff(w) > 0), f"||W1||^2 grows to the minimum: {w}"
    assert w[-1] > 1.5 * w[0]
    onset, back = S.onset_and_return(np_run["epoch"], np_run["mse"])
    assert math.isfinite(onset) and math.isfinite(back), (onset, back, np_run["mse"])

    wn = _curve("wn-np", NP_LR, normalize="first")
    assert np.all(np.isfinite(wn["w1_sq"]))
    np.testing.assert_allclose(wn["w1_sq"], wn["w1_sq"][0], rtol=1e-6)
    assert np.min(wn["mse"]) < 0.5 * wn["mse"][0], "wn-np learns too"

    sgd = [_curve("sgd", lr) for lr in SGD_LRS]
    best = min(sgd, key=lambda c: float(np.min(np.where(np.isfinite(c["mse"]), c["mse"], np.inf))))
    assert not best["diverged"]
    onset_s, back_s = S.onset_and_return(best["epoch"], best["mse"])
    assert back_s == math.inf, (best["learning_rate"], best["mse"])
    tail = best["mse"][-max(2, len(best["mse"]) // 4):]
    assert np.median(tail) < 2 * np.min(best["mse"]), (best["learning_rate"], best["mse"])


def test_fig4a_smoke(tmp_path: Path):
    """fig4a at a tiny size runs and writes its files; the hidden cosine falls with width."""
    import fig4a

    out = tmp_path / "fig4a"
    s = fig4a.main(["--out", str(out), "--widths", "50,800", "--seeds", "1", "--epochs", "0.1",
                    "--workers", "1"])
    assert (out / "fig4a.png").exists() and (out / "fig4a.csv").exists()
    r = json.loads((out / "summary.json").read_text())["results"]
    assert r["width 800"]["cos_hidden"] < r["width 50"]["cos_hidden"]
    assert s["wall_s"] > 0


def test_fig4c_and_fig4f_smoke(tmp_path: Path):
    """fig4c and fig4f at tiny sizes run and write their files; at a rate that diverges at once
    the minimum is the start and the return comes at the first record."""
    import fig4c
    import fig4f

    s = fig4c.main(["--out", str(tmp_path / "c"), "--width", "50", "--rates", "3e-3",
                    "--epochs", "4", "--eval-every", "1", "--seeds", "1", "--workers", "1"])
    r = s["results"]["lr 0.003"]
    # the first record after one epoch: 35 whole batches of 100 of the 3,549 training rows
    assert r["min_epoch_median"] == 0.0 and r["return_epoch_median"] == pytest.approx(1.0,
                                                                                    abs=0.02)
    assert (tmp_path / "c" / "fig4c.png").exists()
    s = fig4f.main(["--out", str(tmp_path / "f"), "--widths", "50", "--epochs", "2",
                    "--eval-every", "1", "--seeds", "1", "--workers", "1"])
    wn = next(v for k, v in s["results"].items() if k.startswith("wn-np"))
    assert wn["w1_sq_end"] == pytest.approx(wn["w1_sq_start"], rel=1e-3)
    assert (tmp_path / "f" / "fig4f.csv").exists()


@pytest.mark.slow
@needs_mnist
def test_fig5b_smoke(tmp_path: Path):
    """fig5b at a tiny size (one width, one rate each, a low target) runs through the sweep."""
    import fig5b

    s = fig5b.main(["--out", str(tmp_path), "--widths", "50", "--target", "50",
                    "--np-rates", "3e-4", "--sgd-rates", "3e-3", "--np-epochs", "2",
                    "--sgd-epochs", "0.5", "--workers", "1"])
    assert s["results"]["sgd width 50"]["min_epochs_to_target"] < 0.5
    assert (tmp_path / "fig5b.png").exists()


@pytest.mark.slow
def test_fig4e_smoke(tmp_path: Path):
    """fig4e at a tiny size (one width, one rate per rule) runs its four sweeps."""
    import fig4e

    s = fig4e.main(["--out", str(tmp_path), "--widths", "50", "--seeds", "1",
                    "--np-epochs", "2", "--reinforce-epochs", "2", "--sgd-epochs", "2",
                    "--np-rates", "1e-4", "--reinforce-rates", "1e-3", "--sgd-rates", "1e-3",
                    "--target", "100", "--workers", "1"])
    assert s["results"]["sgd width 50"]["min_epochs_to_target"] < 2
    assert set(k.split(" width")[0] for k in s["results"]) == {"np", "reinforce",
                                                                "reinforce-hn", "sgd"}
    assert (tmp_path / "fig4e.png").exists()


@pytest.mark.slow
@needs_mnist
def test_fig5c_smoke(tmp_path: Path):
    """fig5c at a tiny size (width 30, depths 1 and 2, one rate, one epoch) runs both rules."""
    import fig5c

    s = fig5c.main(["--out", str(tmp_path), "--width", "30", "--depths", "1,2",
                    "--rates", "3e-4", "--epochs", "1", "--target", "30", "--workers", "1"])
    assert {"np depth 1", "np depth 2", "wn-np-all depth 1", "wn-np-all depth 2"} <= set(
        s["results"])
    assert (tmp_path / "fig5c.png").exists()
