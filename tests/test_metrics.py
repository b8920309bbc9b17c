"""Community and paper metrics on hand-computed matrices (sign and denominator
conventions)."""

import numpy as np
import pytest

from moecl_lib.analysis import metrics

NAN = np.nan
# accuracy matrix: row = after step i, column = task j
A = np.array(
    [
        [0.9, NAN, NAN],
        [0.6, 0.8, NAN],
        [0.7, 0.5, 0.95],
    ]
)


def test_average_accuracy():
    assert metrics.average_accuracy(A) == pytest.approx((0.7 + 0.5 + 0.95) / 3)


def test_backward_transfer_divides_by_T_minus_1():
    # (0.7 - 0.9) + (0.5 - 0.8) = -0.5 ; / (T - 1) = 2  -> -0.25 (GEM's code would give
    # -0.5/3)
    assert metrics.backward_transfer(A) == pytest.approx(-0.25)


def test_forgetting_chaudhry_uses_max_over_previous_steps():
    # task 0: max(0.9, 0.6) - 0.7 = 0.2 ; task 1: max(0.8) - 0.5 = 0.3 ; mean = 0.25
    assert metrics.forgetting_chaudhry(A) == pytest.approx(0.25)
    B = np.array([[0.5, NAN, NAN], [0.9, 0.8, NAN], [0.7, 0.8, 0.9]])
    # task 0: max(0.5, 0.9) - 0.7 = 0.2, task 1: 0.8 - 0.8 = 0 -> 0.1 of forgetting,
    # while BWT = ((0.7 - 0.5) + 0) / 2 = +0.1 reports positive transfer on the same
    # matrix
    assert metrics.forgetting_chaudhry(B) == pytest.approx(0.1)
    assert metrics.backward_transfer(B) == pytest.approx(0.1)


def test_forward_transfer():
    b = np.array([0.1, 0.2, 0.3])
    A2 = np.array([[0.9, 0.4, 0.1], [0.6, 0.8, 0.5], [0.7, 0.5, 0.95]])
    # (A[0,1] - b1) + (A[1,2] - b2) = 0.2 + 0.2 -> / 2
    assert metrics.forward_transfer(A2, b) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="shape"):
        metrics.forward_transfer(A2, b[:2])


def test_paper_metrics_on_error_matrix():
    E = np.array([[1.0, NAN, NAN], [2.0, 0.5, NAN], [3.0, 0.25, 0.1]])
    # F_3 = ((3 - 1) + (0.25 - 0.5)) / 2 = 0.875 ; G_3 = (3 + 0.25 + 0.1) / 3
    assert metrics.paper_forgetting(E) == pytest.approx(0.875)
    assert metrics.paper_generalization(E) == pytest.approx(3.35 / 3)
    assert metrics.paper_forgetting(E) == pytest.approx(-metrics.backward_transfer(-E))
    F, G = metrics.curves_from_error_matrix(E)
    assert np.isnan(F[0])
    assert F[1] == pytest.approx(1.0) and G[1] == pytest.approx(1.25)


def test_error_matrix_hand_values():
    weights = np.array([[[1.0, 0.0]], [[1.0, 1.0]]])  # T=2, M=1, d=2
    W = np.array([[1.0, 0.0], [0.0, 1.0]])
    E = metrics.error_matrix(weights, experts=[0, 0], tasks=[0, 1], W=W)
    assert E[0, 0] == 0.0 and np.isnan(E[0, 1])
    assert E[1, 0] == pytest.approx(1.0) and E[1, 1] == pytest.approx(1.0)


def test_mean_se_and_load_entropy():
    m, se = metrics.mean_se(np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 9.0]]))
    assert m == pytest.approx([3.0, 5.0])
    assert se[0] == pytest.approx(2.0 / np.sqrt(3))
    assert metrics.load_entropy([5, 5, 5, 5]) == pytest.approx(np.log(4))
    assert metrics.load_entropy([0, 7]) == pytest.approx(0.0)
    with pytest.raises(ValueError):
        metrics.load_entropy([-1, 2])


def test_bad_shapes_give_clear_errors():
    with pytest.raises(ValueError, match="square"):
        metrics.average_accuracy(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="two"):
        metrics.backward_transfer(np.zeros((1, 1)))
