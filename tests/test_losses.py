"""Losses (P, PNP, DDSP) and damping schedules against their definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pnp_core.training.damping import Damping, initial_lambda
from pnp_core.features import get_feature
from pnp_core.metric.jacobian import forward_map, jacobian_jvp
from pnp_core.training.losses import auto_mu, ddsp_loss, p_loss, pnp_loss
from pnp_core.params import Scaler
from pnp_core.synth import get_synth


def _random_psd(B, P, gen):
    A = torch.randn(B, P, P, generator=gen, dtype=torch.float64)
    return A @ A.transpose(1, 2)


def test_p_loss_is_mse():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(7, 5, generator=gen), torch.randn(7, 5, generator=gen)
    assert torch.allclose(p_loss(a, b), torch.nn.functional.mse_loss(a, b))


@pytest.mark.parametrize("matrix", ["identity", "diag", "mean"])
def test_pnp_equals_its_definition(matrix):
    gen = torch.Generator().manual_seed(1)
    B, P, mu, lam = 6, 4, 0.3, 0.7
    nu_hat = torch.randn(B, P, generator=gen, dtype=torch.float64)
    nu = torch.randn(B, P, generator=gen, dtype=torch.float64)
    M = _random_psd(B, P, gen)
    Mbar = _random_psd(1, P, gen)[0]
    got = pnp_loss(nu_hat, nu, M, lam=lam, mu=mu, damping_matrix=matrix, mean_metric=Mbar)
    want = 0.0
    for b in range(B):
        d = (nu_hat[b] - nu[b]).numpy()
        D = {"identity": np.eye(P), "diag": mu * np.diag(np.diag(M[b].numpy())),
             "mean": mu * Mbar.numpy()}[matrix]
        want += 0.5 * d @ (mu * M[b].numpy() + lam * D) @ d
    assert got.dtype == torch.float64
    assert math.isclose(got.item(), want / B, rel_tol=1e-12)


def test_pnp_is_per_sample_mean():
    """Duplicating the batch leaves the loss unchanged (no whole-batch norm)."""
    gen = torch.Generator().manual_seed(2)
    nu_hat, nu = torch.randn(3, 5, generator=gen), torch.randn(3, 5, generator=gen)
    M = _random_psd(3, 5, gen)
    one = pnp_loss(nu_hat, nu, M, lam=0.1)
    two = pnp_loss(nu_hat.repeat(2, 1), nu.repeat(2, 1), M.repeat(2, 1, 1), lam=0.1)
    assert torch.allclose(one, two)


def test_pnp_gradient_tends_to_p_loss_gradient_as_lambda_grows():
    gen = torch.Generator().manual_seed(3)
    B, P = 8, 5
    nu = torch.randn(B, P, generator=gen, dtype=torch.float64)
    start = torch.randn(B, P, generator=gen, dtype=torch.float64)
    M = _random_psd(B, P, gen)
    x = start.clone().requires_grad_()
    gp, = torch.autograd.grad(p_loss(x, nu), x)
    errors = []
    for lam in (1e2, 1e4, 1e6):
        y = start.clone().requires_grad_()
        g, = torch.autograd.grad(pnp_loss(y, nu, M, lam=lam) / lam, y)
        # ½‖Δ‖² per sample vs (1/P)‖Δ‖²: the gradients differ by the constant P/2
        errors.append(((g - gp * P / 2).norm() / (gp * P / 2).norm()).item())
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-4


@pytest.mark.slow  # ~20 s: a laptop-JTFS Jacobian and feature gradients in float64
def test_pnp_gradient_matches_the_feature_distance_near_the_target():
    """λ = 0, ‖ν̂ − ν‖∞ = 1e−3: ∇PNP ≈ ∇ ½‖Φ(g(h⁻¹(ν̂))) − Φ(g(h⁻¹(ν)))‖² within 5 %
    (float64, the laptop JTFS; measured ≤ 0.4 % on these samples).

    The sound must hold its Gaussian window (σ = 0.2/γ s, up to 0.4 s): the frame is the
    paper's 4 s, at 4096 Hz to keep the cost of 16384 samples. On a frame that cuts the
    window, the JTFS oscillates with the carrier's phase at the edges and M becomes far
    more curved: on 1 s (8192 Hz) M's top eigenvalue reached 3e7 instead of ~1e5 and the
    two gradients differed by up to 130 % at 1e−3; on 2 s (the laptop's 16384 samples at
    8192 Hz, edges at 2.5σ for γ = 0.5) by up to 11 %.
    """
    synth = get_synth("amfm", sr=4096, n_samples=16384)
    feature = get_feature("jtfs", n_samples=16384, J=8, Q=(12, 1), Q_fr=1, F=2, T="global")
    space = synth.space
    gen = np.random.default_rng(0)
    lo, hi = space.to_natural(space.low), space.to_natural(space.high)
    theta_train = space.from_natural(lo + gen.uniform(0.2, 0.8, size=(64, len(space))) * (hi - lo))
    scaler = Scaler.fit(space, "logminmax", theta_train)
    F = forward_map(synth, feature, scaler)
    nu = scaler.forward(torch.as_tensor(theta_train[:4]))
    J = jacobian_jvp(F, nu)              # (B, K, P), as the Jacobian stage computes it
    M = J.transpose(1, 2) @ J
    rng = torch.Generator().manual_seed(5)
    errors = []
    for b in range(len(nu)):
        step = torch.randn(1, len(space), generator=rng, dtype=torch.float64)
        nu_hat = (nu[b:b + 1] + 1e-3 * step / step.abs().max()).requires_grad_()
        g_pnp, = torch.autograd.grad(pnp_loss(nu_hat, nu[b:b + 1], M[b:b + 1]), nu_hat)
        nu_hat2 = nu_hat.detach().clone().requires_grad_()
        dist = 0.5 * ((F(nu_hat2) - F(nu[b:b + 1]).detach()) ** 2).sum()
        g_phi, = torch.autograd.grad(dist, nu_hat2)
        errors.append(((g_pnp - g_phi).norm() / g_phi.norm()).item())
    assert max(errors) < 0.05, errors


def test_auto_mu_puts_pnp_on_the_p_loss_scale():
    eig = np.array([[1e-2, 1.0, 1e3], [1e-1, 10.0, 1e4], [1.0, 1.0, 1.0]])
    mu = auto_mu(eig)
    assert mu == pytest.approx(2.0 / np.median(eig.sum(axis=1)))
    # the claim itself: for isotropic errors E ΔΔᵀ = σ²I and an M with the median trace,
    # the mean PNP loss ½μ E[ΔᵀMΔ] equals the mean P-loss σ² (Monte Carlo, 200k errors)
    gen = torch.Generator().manual_seed(0)
    Q, _ = torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=torch.float64))
    M = (Q @ torch.diag(torch.tensor([1e-2, 1.0, 1e3], dtype=torch.float64)) @ Q.T)[None]
    sigma = 0.3
    delta = sigma * torch.randn(200_000, 3, generator=gen, dtype=torch.float64)
    nu = torch.zeros_like(delta)
    pnp = pnp_loss(delta, nu, M.expand(len(delta), 3, 3), mu=mu).item()
    assert pnp == pytest.approx(p_loss(delta, nu).item(), rel=0.02)
    assert pnp == pytest.approx(sigma ** 2, rel=0.02)
    with pytest.raises(ValueError):
        auto_mu(np.zeros((2, 3)))


def test_initial_lambda_rules():
    eig = np.array([[0.1, 4.0], [0.2, 3.0]])
    assert initial_lambda(eig, mu=0.5) == pytest.approx(2.0)
    assert initial_lambda(eig, mu=0.5, rule="max_eigenvalue_squared") == pytest.approx(8.0)
    with pytest.raises(ValueError):
        initial_lambda(eig, 1.0, rule="nope")


def test_ddsp_loss_is_zero_at_target_and_differentiable():
    synth = get_synth("ftm", sr=22050, n_samples=2048, modes=4)
    feature = get_feature("mss", n_samples=2048, n_ffts=(256, 64))
    space = synth.space
    theta = torch.as_tensor(space.from_natural(
        0.5 * (space.to_natural(space.low) + space.to_natural(space.high)))[None].repeat(2, 0))
    scaler = Scaler.fit(space, "logminmax", np.stack([space.low, space.high]))
    nu = scaler.forward(theta).float()
    x = synth(theta.float())
    at_target = ddsp_loss(nu, x, synth, scaler, feature).item()   # float32 round-off only
    nu_hat = (nu + 0.1).requires_grad_()
    loss = ddsp_loss(nu_hat, x, synth, scaler, feature)
    loss.backward()
    assert at_target < 1e-2 * loss.item() and torch.isfinite(nu_hat.grad).all() and nu_hat.grad.abs().sum() > 0


# -- damping ------------------------------------------------------------------------------------


class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(3))


def test_adaptive_rule_on_a_scripted_validation_sequence():
    net = _Net()
    d = Damping("adaptive", lam0=1.0, accelerator=0.05, brake=2.0, restore_best=True)
    script = [5.0, 4.0, 4.5, 3.0, 3.0, 2.0]
    expect_events = ["improved", "improved", "restored", "improved", "restored", "improved"]
    expect_lam = [0.05, 0.0025, 0.005, 0.00025, 0.0005, 0.000025]
    events, lams, best_w = [], [], {}
    for epoch, loss in enumerate(script):
        with torch.no_grad():
            net.w.fill_(float(epoch))         # "training" changes the weights every epoch
        events.append(d.after_validation(loss, net))
        lams.append(d.lam)
        if events[-1] == "improved":
            best_w = net.w.detach().clone()
        if events[-1] == "restored":
            assert torch.equal(net.w, best_w)  # the weights really are the best ones
    assert events == expect_events
    assert lams == pytest.approx(expect_lam)
    assert d.best_loss == 2.0


def test_adaptive_without_restore_keeps_weights_and_caps_lambda():
    net = _Net()
    d = Damping("adaptive", lam0=1.0, brake=10.0, max_lambda=5.0, restore_best=False)
    d.after_validation(1.0, net)
    with torch.no_grad():
        net.w.fill_(7.0)
    assert d.after_validation(2.0, net) == "braked"
    assert torch.all(net.w == 7.0)
    d.after_validation(3.0, net)
    d.after_validation(3.0, net)
    assert d.lam == 5.0


def test_constant_and_scheduled_and_state_roundtrip():
    net = _Net()
    c = Damping("constant", lam0=0.0)
    assert c.after_validation(1.0, net) == "held" and c.lam == 0.0
    s = Damping("scheduled", lam0=2.0, factor=0.5)
    s.after_validation(1.0, net)
    s.after_validation(0.5, net)
    assert s.lam == 0.5
    a = Damping("adaptive", lam0=1.0)
    a.after_validation(1.0, net)
    b = Damping("adaptive", lam0=9.0)
    b.load_state_dict(a.state_dict())
    assert b.lam == a.lam and b.best_loss == 1.0
    with pytest.raises(ValueError):
        Damping("constant").load_state_dict(a.state_dict())


def test_mss_gradient_is_finite_on_denormal_bins():
    """torch's |z| backward is NaN at denormal magnitudes (silent float32 STFT frames)."""
    from pnp_core.features.mss import _magnitude

    z = torch.tensor([complex(1e-39, 1e-39), 0j, 1 + 1j], dtype=torch.complex64,
                     requires_grad=True)
    g, = torch.autograd.grad(_magnitude(z).sum(), z)
    assert torch.isfinite(torch.view_as_real(g)).all()
    assert torch.allclose(g[2], torch.tensor(0.5 ** 0.5 * (1 + 1j), dtype=torch.complex64))
    assert torch.equal(_magnitude(z.detach()), z.detach().abs())


def test_pnp_norm_form_is_the_linear_model_of_the_distance():
    # ‖JΔ‖ for an explicit J: the norm form (μ = 1, λ = 0) is that distance per sample, and
    # its gradient is JᵀJΔ/‖JΔ‖ (checked against autograd of the explicit norm)
    gen = torch.Generator().manual_seed(4)
    J = torch.randn(6, 40, 3, generator=gen, dtype=torch.float64)
    nu = torch.randn(6, 3, generator=gen, dtype=torch.float64)
    nu_hat = (nu + 0.1 * torch.randn(6, 3, generator=gen, dtype=torch.float64)).requires_grad_()
    M = J.transpose(1, 2) @ J
    per = pnp_loss(nu_hat, nu, M, form="norm", reduce=False)
    want = torch.linalg.vector_norm(torch.einsum("bkp,bp->bk", J, nu_hat - nu), dim=-1)
    torch.testing.assert_close(per, want, rtol=1e-9, atol=1e-9)
    g, = torch.autograd.grad(per.mean(), nu_hat)
    nu_hat2 = nu_hat.detach().clone().requires_grad_()
    g2, = torch.autograd.grad(torch.linalg.vector_norm(
        torch.einsum("bkp,bp->bk", J, nu_hat2 - nu), dim=-1).mean(), nu_hat2)
    torch.testing.assert_close(g, g2, rtol=1e-7, atol=1e-9)
    # the squared form is half the square of the same distance
    sq = pnp_loss(nu_hat, nu, M, reduce=False)
    torch.testing.assert_close(sq, 0.5 * want ** 2, rtol=1e-9, atol=1e-9)
    # finite gradient at Δ = 0
    at = nu.clone().requires_grad_()
    g0, = torch.autograd.grad(pnp_loss(at, nu, M, form="norm"), at)
    assert torch.isfinite(g0).all()
    with pytest.raises(ValueError, match="form"):
        pnp_loss(nu_hat, nu, M, form="cubed")


def test_pnp_gradient_direction_differs_from_p_loss_when_lambda_is_small():
    # an anisotropic M turns the gradient away from Δ; a huge λ brings it back to P-loss
    nu = torch.zeros(1, 3, dtype=torch.float64)
    delta = torch.tensor([[1.0, 1.0, 1.0]], dtype=torch.float64)
    M = torch.diag(torch.tensor([100.0, 1.0, 0.01], dtype=torch.float64))[None]

    def cosine(lam, form):
        x = delta.clone().requires_grad_()
        g, = torch.autograd.grad(pnp_loss(x, nu, M, lam=lam, form=form), x)
        return float(torch.nn.functional.cosine_similarity(g, delta).item())

    for form in ("squared", "norm"):
        assert cosine(0.0, form) < 0.7          # mostly along the stiff axis
        assert cosine(1e6, form) > 0.999        # λ ≫ M: the P-loss direction


def test_median_rule_uses_a_typical_sample_and_lambda_is_capped_at_lambda0():
    eig = np.array([[0.1, 4.0], [0.2, 3.0], [0.0, 1000.0]])
    assert initial_lambda(eig, mu=0.5) == pytest.approx(500.0)
    assert initial_lambda(eig, mu=0.5, rule="median_max_eigenvalue") == pytest.approx(2.0)
    net = _Net()
    d = Damping("adaptive", lam0=1.0, accelerator=0.5, brake=10.0, restore_best=False)
    d.after_validation(1.0, net)              # improved: 0.5
    for _ in range(3):
        d.after_validation(2.0, net)          # braked ×10, capped at λ₀ = 1
    assert d.lam == 1.0


def test_lambda_floor_and_restore_for_every_schedule():
    net = _Net()
    s = Damping("scheduled", lam0=1.0, factor=0.1, min_lambda=0.05, restore_best=False)
    for _ in range(3):
        s.after_validation(1.0, net)
    assert s.lam == 0.05
    a = Damping("adaptive", lam0=1.0, accelerator=0.01, min_lambda=0.2, restore_best=False)
    a.after_validation(1.0, net)
    assert a.lam == 0.2
    # restore_best acts on a constant schedule too (P-loss, DDSP get the same treatment)
    c = Damping("constant", lam0=0.0, restore_best=True)
    with torch.no_grad():
        net.w.fill_(1.0)
    assert c.after_validation(1.0, net) == "held"
    with torch.no_grad():
        net.w.fill_(9.0)
    assert c.after_validation(2.0, net) == "restored"
    assert torch.all(net.w == 1.0) and c.lam == 0.0
