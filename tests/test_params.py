import math

import numpy as np
import pytest
import torch

from pnp_core.params import RESCALINGS, Param, ParamSpace, Scaler, reparametrise_metric
from pnp_core.synth import get_synth

SPACE = get_synth("ftm", sr=22050, n_samples=256).space


def _train_theta(n=200, seed=0):
    rng = np.random.default_rng(seed)
    u = rng.random((n, len(SPACE)))
    lo, hi = SPACE.to_natural(SPACE.low), SPACE.to_natural(SPACE.high)
    return SPACE.from_natural(lo + u * (hi - lo))


@pytest.mark.parametrize("kind", RESCALINGS)
def test_round_trip_and_ranges(kind):
    theta = _train_theta()
    sc = Scaler.fit(SPACE, kind, theta)
    t = torch.as_tensor(theta)
    nu = sc.forward(t)
    assert torch.allclose(sc.inverse(nu), t, rtol=1e-12)
    if kind in ("minmax", "logminmax"):
        assert nu.min() == pytest.approx(-1.0) and nu.max() == pytest.approx(1.0)
    if kind == "log":
        assert torch.allclose(nu[:, 0], torch.log10(t[:, 0]))
        assert torch.allclose(nu[:, 1], t[:, 1])  # τ stays linear
    if kind == "raw":
        assert torch.equal(nu, t)


@pytest.mark.parametrize("kind", RESCALINGS)
def test_inverse_is_differentiable_and_jacobian_diag_is_exact(kind):
    sc = Scaler.fit(SPACE, kind, _train_theta())
    theta = torch.as_tensor(_train_theta(3, seed=1))
    nu = sc.forward(theta)
    jac = torch.func.vmap(torch.func.jacfwd(sc.inverse))(nu)  # (B, P, P)
    assert torch.allclose(jac, torch.diag_embed(sc.jacobian_diag(theta)), rtol=1e-10)


def test_minmax_needs_train_fit():
    with pytest.raises(ValueError, match="needs bounds"):
        Scaler(SPACE, "minmax")
    with pytest.raises(ValueError, match="unknown rescaling"):
        Scaler.fit(SPACE, "zscore", _train_theta())


def test_state_round_trip():
    sc = Scaler.fit(SPACE, "logminmax", _train_theta())
    sc2 = Scaler.from_state(SPACE, sc.state())
    t = torch.as_tensor(_train_theta(5, seed=3))
    assert torch.equal(sc.forward(t), sc2.forward(t))


def test_reparametrised_metric_equals_direct_recomputation():
    # f: θ → R^K, any smooth map; M_ν = J_νᵀ J_ν computed directly vs via the chain rule.
    W = torch.randn(7, len(SPACE), dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def feature(theta):
        return torch.sin(W @ torch.log(theta))

    theta = torch.as_tensor(_train_theta(4, seed=2))
    scalers = {k: Scaler.fit(SPACE, k, _train_theta()) for k in RESCALINGS}

    def metric(sc):
        J = torch.func.vmap(torch.func.jacfwd(lambda nu: feature(sc.inverse(nu))))(sc.forward(theta))
        return J.transpose(1, 2) @ J

    M = {k: metric(sc) for k, sc in scalers.items()}
    for src in RESCALINGS:
        for dst in RESCALINGS:
            got = reparametrise_metric(M[src], theta, scalers[src], scalers[dst])
            assert torch.allclose(got, M[dst], rtol=1e-9, atol=0), (src, dst)


def test_validate_names_parameter_and_sample_id():
    theta = _train_theta(5)
    SPACE.validate(theta)  # fine
    bad = theta.copy()
    bad[3, 1] = 5.0  # τ far above 0.8 s
    with pytest.raises(ValueError, match=r"sample id 1003: parameter 'tau'.*out of range"):
        SPACE.validate(bad, ids=range(1000, 1005))
    bad = theta.copy()
    bad[0, 4] = math.nan
    with pytest.raises(ValueError, match=r"sample id 0: parameter 'alpha'.*not finite"):
        SPACE.validate(bad)


def test_param_space_checks():
    with pytest.raises(ValueError, match="must be > 0"):
        Param("f", "Hz", 0.0, 1.0, log=True)
    with pytest.raises(ValueError, match="duplicate"):
        ParamSpace([Param("a", "1", 0, 1), Param("a", "1", 0, 1)])
