"""Per-sound matching by gradient descent (pnp_core.matching.matchers) and the DTFA diagnostics."""

import numpy as np
import pytest
import torch

from pnp_core.matching.dtfa import draw_pairs, landscape, summarise, time_shift_curve
from pnp_core.matching.matchers import LOSSES, box_scaler, match_pairs, param_error
from pnp_core.spec import RunSpec

#: a small AM/FM + JTFS: the whole 2 s window at 4096 Hz, J = 8, Q = (8, 1) (a 0.5 s crop
#: truncates the Gaussian window and creates local minima in (f_c, γ))
SMALL = {"type": "amfm", "settings": {"sr": 4096, "n_samples": 8192},
         "dataset": {"bins": 3, "val_margin": 1, "n_test": 2, "seed": 0, "jitter": "linear"},
         "feature": {"type": "jtfs", "settings": {"J": 8, "Q": [8, 1], "Q_fr": 1, "F": 2,
                                                   "T": "global", "log_eps": 0.001}}}


@pytest.fixture(scope="module")
def spec():
    torch.set_num_threads(1)
    return RunSpec.from_entry(dict(SMALL))


def near(spec, nu_offset, seed=0, n=3):
    """n targets inside the box and inits ν* + offset (physical θ, (n, P) each)."""
    rng = np.random.default_rng(seed)
    scaler = box_scaler(spec.space)
    nu_t = rng.uniform(-0.5, 0.5, (n, len(spec.space)))
    nu_i = nu_t + nu_offset * rng.choice([-1.0, 1.0], nu_t.shape)
    inv = lambda v: scaler.inverse(torch.as_tensor(v)).numpy()  # noqa: E731
    return inv(nu_t), inv(nu_i)


def test_box_scaler_maps_bounds_to_unit_box(spec):
    s = box_scaler(spec.space)
    nu = s.forward(torch.tensor(np.stack([spec.space.low, spec.space.high])))
    assert torch.allclose(nu, torch.tensor([[-1.0] * 3, [1.0] * 3], dtype=nu.dtype))


def test_jtfs_matching_recovers_theta_from_nearby_init(spec):
    theta, init = near(spec, 0.1)
    res = match_pairs(spec, theta, init, "jtfs", steps=60, lr=0.02, tolerance=0.01)
    assert (res.error[0] > 0.04).all()          # starts well outside the tolerance
    assert res.success.all(), res.final_error
    np.testing.assert_allclose(res.theta, theta, rtol=0.03)
    it = res.iterations_to_tolerance()
    assert np.isfinite(it).all() and (it > 0).all()
    assert (res.seconds_to_tolerance() > 0).all()
    assert res.loss.shape == (61, 3) and res.path.shape == (61, 3, 3)
    assert res.loss[-1].mean() < 0.05 * res.loss[0].mean()


def test_levenberg_marquardt_recovers_theta_in_fewer_steps_than_adam(spec):
    theta, init = near(spec, 0.1)
    lm = match_pairs(spec, theta, init, "jtfs_lm", steps=15, lr=0.0, tolerance=0.01)
    assert (lm.error[0] > 0.04).all()
    assert lm.success.all(), lm.final_error
    np.testing.assert_allclose(lm.theta, theta, rtol=0.03)
    assert lm.meta["optimizer"] == "lm" and lm.loss.shape == (16, 3)
    # every accepted trial lowers the loss, a rejected one keeps it: the trace never rises
    assert (np.diff(lm.loss, axis=0) <= 1e-12).all()
    # Adam from the same inits is still outside the tolerance after as many steps
    adam = match_pairs(spec, theta, init, "jtfs", steps=15, lr=0.02, tolerance=0.01)
    assert np.nanmax(lm.iterations_to_tolerance()) <= 10
    assert adam.final_error.mean() > lm.final_error.mean()


def test_levenberg_marquardt_only_minimises_the_jtfs_loss(spec):
    from pnp_core.matching.matchers import Objective, match_lm

    theta, init = near(spec, 0.1, n=1)
    scaler = box_scaler(spec.space)
    nu = scaler.forward(torch.as_tensor(theta)).float()
    obj = Objective("p", spec.synth, scaler, None, nu_star=nu)
    with pytest.raises(ValueError, match="jtfs"):
        match_lm(obj, nu, steps=1)


@pytest.mark.parametrize("loss", ["p", "pnp", "mss"])
def test_other_losses_reduce_the_error(spec, loss):
    theta, init = near(spec, 0.05, seed=1, n=2)
    res = match_pairs(spec, theta, init, loss, steps=30, lr=0.01)
    assert res.loss[-1].sum() < res.loss[0].sum()
    if loss in ("p", "pnp"):                       # convex quadratics: the error must shrink
        assert (res.final_error < 0.5 * res.error[0]).all()


def test_iterates_stay_in_the_box(spec):
    theta, init = near(spec, 0.0, seed=2, n=2)
    init = np.stack([spec.space.high, spec.space.low])          # corners
    res = match_pairs(spec, theta, init, "p", steps=5, lr=0.5)
    assert np.abs(res.path).max() <= 1.0 + 1e-6


def test_param_error_is_normalised():
    a = torch.full((1, 4), -1.0)
    assert param_error(a, -a).item() == pytest.approx(1.0)


def test_landscape_centre_is_its_minimum(spec):
    theta, _ = near(spec, 0.0, seed=3, n=1)
    for loss in ("jtfs", "mss"):
        ga, gb, vals = landscape(spec, theta[0], loss, (1, 2), n=5, span=0.3)
        assert vals.shape == (5, 5)
        assert np.unravel_index(np.argmin(vals), vals.shape) == (2, 2)
        assert vals[2, 2] == pytest.approx(0.0, abs=1e-6 * vals.max())
        assert vals.max() > 0


def test_time_shift_curve_is_zero_at_zero_and_grows(spec):
    theta, _ = near(spec, 0.0, seed=4, n=1)
    shifts = np.array([0.0, 0.01, 0.1])
    for loss in ("jtfs", "mss"):
        c = time_shift_curve(spec, theta[0], shifts, loss)
        assert c[0] == pytest.approx(0.0, abs=1e-6)
        assert c[2] > c[0] and np.all(np.isfinite(c))


def test_draw_pairs_and_summary():
    import pandas as pd

    params = pd.DataFrame({"id": np.arange(10)})
    t, i = draw_pairs(params, 8, seed=0)
    assert len(t) == len(i) == 8 and (t != i).all()
    t2, _ = draw_pairs(params, 8, seed=0)
    assert (t == t2).all()
    # two pairs, 3 iterations: pair 0 reaches 0.005 at iteration 2, pair 1 never
    traces = pd.DataFrame({"synth": "s", "loss": "jtfs", "pair": [0, 1] * 3,
                           "iteration": np.repeat([0, 1, 2], 2),
                           "error": [0.5, 0.5, 0.1, 0.4, 0.005, 0.3],
                           "seconds": np.repeat([0.0, 1.0, 2.0], 2), "value": 0.0})
    row = summarise(traces, 0.01).iloc[0]
    assert row["success_rate"] == 0.5 and row["median_iterations"] == 2
    assert row["median_seconds"] == 2.0 and row["median_final_error"] == pytest.approx(0.1525)


def test_losses_listed():
    from pnp_core.matching.matchers import MATCHERS

    assert set(LOSSES) == {"jtfs", "mss", "p", "pnp"}
    assert set(MATCHERS) == set(LOSSES) | {"jtfs_lm"}
