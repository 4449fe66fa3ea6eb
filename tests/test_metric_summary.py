"""Eigenvalue spectra, condition numbers and their quantiles."""

from __future__ import annotations

import numpy as np
import pytest

from pnp_core.metric.file import MetricTable
from pnp_core.metric.summary import condition_numbers, summarise

# ---------------------------------------------------------------------------------------------
# summaries


def test_condition_numbers_and_summary():
    eig = np.array([[1e-2, 1.0, 1e4], [0.0, 2.0, 8.0], [-1e-18, 1e-3, 1.0]])
    c1, c2 = condition_numbers(eig)
    np.testing.assert_allclose(c1[:1], [1e6])
    assert np.isinf(c1[1:]).all()
    np.testing.assert_allclose(c2, [1e4, 4.0, 1e3])
    table = MetricTable(ids=np.array([5, 6, 7]), M=np.zeros((3, 3, 3)), eig=eig, meta={})
    per, quant = summarise(table)
    df = per.to_pandas()
    assert list(df["id"]) == [5, 6, 7]
    np.testing.assert_allclose(df["log10_cond2"], np.log10([1e4, 4.0, 1e3]))
    assert list(df["singular"]) == [False, True, True]
    assert np.isnan(df["log10_eigenvalues"][1][0])
    q = quant.to_pandas().set_index(["quantity", "q"])["value"]
    assert q[("log10_cond2", 0.5)] == pytest.approx(3.0)
    assert q[("log10_lambda_3", 1.0)] == pytest.approx(4.0)


