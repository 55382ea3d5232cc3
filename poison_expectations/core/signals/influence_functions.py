"""Influence functions of L2-regularised logistic regression (Koh & Liang 2017).

Model: binary classes use one sigmoid output, more classes a softmax over
every class; parameters W have one row per output and one column per
feature plus the intercept (last column). The objective is the mean
log-loss plus (l2 / 2) ||w||^2 on the weights (scikit-learn's lbfgs with
C = 1 / (l2 * n_train)), so l2 is on the scale of the mean loss and does not
shrink as the table grows.

For a row z with gradient g(z) = r(z) (x) [x, 1] (r = predicted
probabilities minus the one-hot label) and the Hessian
H = (1/n) sum_i (diag(p_i) - p_i p_i^T) (x) x~_i x~_i^T + l2 I:
- self-influence  g(z)^T H^-1 g(z): the Newton step the row alone asks for,
  in the model's own curvature; high for mislabelled and boundary-pushing
  rows (Koh & Liang, section 5.4). The same l2 also damps the intercepts,
  which keeps the over-parameterised softmax Hessian positive definite;
- held-out influence  I(z) = -(1/m) sum_v g(v)^T H^-1 g(z): the derivative
  of the mean loss on m held-out rows v when z is up-weighted; positive means
  adding z raises the held-out loss (harmful);
- leverage  trace(H^-1 J(z)) / n_train with J(z) = (diag(p) - p p^T) (x)
  x~ x~^T: the hat-matrix diagonal the row would have in the fit.

Solves are exact (Cholesky of H) when the model has at most
`exact_max_params` parameters. Above that, H^-1 times the one validation
gradient is found by conjugate gradients on Hessian-vector products (Jacobi
preconditioner), and the per-row quadratic forms use diag(H) instead of H.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_factor, cho_solve, solve_triangular
from scipy.sparse.linalg import LinearOperator, cg
from scipy.special import expit, softmax
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

CHUNK_ROWS = 65_536
FIT_MAX_ITER = 300
CG_MAX_ITER = 200
CG_RTOL = 1e-6


@dataclass
class LogisticModel:
    """Fitted parameters: W is (outputs, d + 1); `classes` are the label codes
    the outputs stand for (binary: the single output is P(classes[1]))."""

    W: np.ndarray
    classes: np.ndarray
    l2: float
    n_train: int

    @property
    def binary(self) -> bool:
        return self.W.shape[0] == 1

    @property
    def n_params(self) -> int:
        return self.W.size

    def probabilities(self, X: np.ndarray) -> np.ndarray:
        logits = X @ self.W[:, :-1].T + self.W[:, -1]
        if self.binary:
            return expit(logits)
        return softmax(logits, axis=1)

    def residuals(self, P: np.ndarray, y: np.ndarray) -> np.ndarray:
        """p - onehot(y) per output; a label the model never saw has no 1."""
        R = P.copy()
        if self.binary:
            R[:, 0] -= (y == self.classes[1])
            return R
        position = np.full(int(max(self.classes.max(), y.max())) + 1, -1)
        position[self.classes] = np.arange(len(self.classes))
        col = position[y]
        known = col >= 0
        R[np.flatnonzero(known), col[known]] -= 1.0
        return R


def fit_logistic(X: np.ndarray, y: np.ndarray, l2: float, random_state: int) -> LogisticModel | None:
    """L2-regularised logistic regression; None when only one class is present."""
    classes = np.unique(y)
    if len(classes) < 2:
        return None
    n = len(y)
    model = LogisticRegression(C=1.0 / (l2 * n), max_iter=FIT_MAX_ITER, tol=1e-6, random_state=random_state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    W = np.hstack([model.coef_, model.intercept_[:, None]]).astype(np.float64)
    return LogisticModel(W, model.classes_.astype(np.int64), float(l2), n)


def _augment(X: np.ndarray) -> np.ndarray:
    out = np.empty((X.shape[0], X.shape[1] + 1), dtype=np.float64)
    out[:, :-1] = X
    out[:, -1] = 1.0
    return out


def _chunks(n: int):
    for start in range(0, n, CHUNK_ROWS):
        yield slice(start, min(n, start + CHUNK_ROWS))


def gradients(model: LogisticModel, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row loss gradients (n, outputs * (d + 1)) and probabilities."""
    Xt = _augment(X)
    P = model.probabilities(Xt[:, :-1])
    R = model.residuals(P, y)
    G = (R[:, :, None] * Xt[:, None, :]).reshape(len(y), -1)
    return G, P


class HessianSolver:
    """H^-1 products for one fitted model and its training rows."""

    def __init__(self, model: LogisticModel, X_train: np.ndarray, exact_max_params: int):
        self.model = model
        self.X = X_train
        self.q = X_train.shape[1] + 1
        self.exact = model.n_params <= exact_max_params
        self.diag = self._diagonal()
        if self.exact:
            H = self._hessian()
            self.factor = cho_factor(H, lower=True)
            self.inverse = cho_solve(self.factor, np.eye(H.shape[0]))

    def to_state(self) -> dict:
        """What scoring new rows needs, as plain data: the parameters, diag(H),
        and the Cholesky factor of H when the solves are exact (no training rows)."""
        m = self.model
        return {"W": m.W, "classes": m.classes, "l2": m.l2, "n_train": m.n_train, "exact": self.exact,
                "diag": self.diag, "cholesky": np.tril(self.factor[0]) if self.exact else None}

    @classmethod
    def from_state(cls, state: dict) -> "HessianSolver":
        """A solver for quadratic forms and leverage from `to_state` (it cannot
        run conjugate gradients: `solve` above the exact limit needs the rows)."""
        solver = cls.__new__(cls)
        solver.model = LogisticModel(np.asarray(state["W"]), np.asarray(state["classes"]), float(state["l2"]),
                                     int(state["n_train"]))
        solver.X = None  # type: ignore[assignment]  # no rows: quadratic forms only
        solver.q = solver.model.W.shape[1]
        solver.exact = bool(state["exact"])
        solver.diag = np.asarray(state["diag"])
        if solver.exact:
            solver.factor = (np.asarray(state["cholesky"]), True)
            solver.inverse = cho_solve(solver.factor, np.eye(solver.diag.size))
        return solver

    # -- building H --------------------------------------------------------
    def _hessian(self) -> np.ndarray:
        m, q = self.model.W.shape[0], self.q
        H = np.zeros((m * q, m * q))
        for part in _chunks(self.X.shape[0]):
            Xt = _augment(self.X[part])
            P = self.model.probabilities(Xt[:, :-1])
            if self.model.binary:
                w = P[:, 0] * (1.0 - P[:, 0])
                H += (Xt * w[:, None]).T @ Xt
                continue
            for a in range(m):
                for b in range(a, m):
                    w = P[:, a] * ((a == b) - P[:, b])
                    block = (Xt * w[:, None]).T @ Xt
                    H[a * q:(a + 1) * q, b * q:(b + 1) * q] += block
                    if a != b:
                        H[b * q:(b + 1) * q, a * q:(a + 1) * q] += block.T
        H /= self.X.shape[0]
        H[np.diag_indices_from(H)] += self.model.l2
        return H

    def _diagonal(self) -> np.ndarray:
        m, q = self.model.W.shape[0], self.q
        diag = np.zeros((m, q))
        for part in _chunks(self.X.shape[0]):
            Xt = _augment(self.X[part])
            P = self.model.probabilities(Xt[:, :-1])
            curvature = P * (1.0 - P)
            diag += curvature.T @ (Xt * Xt)
        return diag.ravel() / self.X.shape[0] + self.model.l2

    def hvp(self, v: np.ndarray) -> np.ndarray:
        """H v without forming H (for conjugate gradients)."""
        m, q = self.model.W.shape[0], self.q
        V = v.reshape(m, q)
        out = np.zeros((m, q))
        for part in _chunks(self.X.shape[0]):
            Xt = _augment(self.X[part])
            P = self.model.probabilities(Xt[:, :-1])
            U = Xt @ V.T  # (rows, m)
            if self.model.binary:
                S = P * (1.0 - P) * U
            else:
                S = P * (U - (P * U).sum(axis=1, keepdims=True))
            out += S.T @ Xt
        return out.ravel() / self.X.shape[0] + self.model.l2 * v

    # -- products --------------------------------------------------------------
    def solve(self, b: np.ndarray) -> np.ndarray:
        """H^-1 b for one vector."""
        if self.exact:
            return cho_solve(self.factor, b)
        size = b.size
        operator = LinearOperator((size, size), matvec=self.hvp, dtype=np.float64)
        preconditioner = LinearOperator((size, size), matvec=lambda r: r / self.diag, dtype=np.float64)
        x, _ = cg(operator, b, rtol=CG_RTOL, maxiter=CG_MAX_ITER, M=preconditioner)
        return x

    def quadratic(self, G: np.ndarray) -> np.ndarray:
        """g^T H^-1 g per row of G (diag(H) in place of H above the exact limit)."""
        if not self.exact:
            return (G * G / self.diag).sum(axis=1)
        L = self.factor[0]
        out = np.empty(G.shape[0])
        for part in _chunks(G.shape[0]):
            half = solve_triangular(L, G[part].T, lower=True, check_finite=False)
            out[part] = (half * half).sum(axis=0)
        return out

    def _leverage(self, Xt: np.ndarray, P: np.ndarray) -> np.ndarray:
        """trace(H^-1 J(x)) / n_train per row (diag(H) above the exact limit)."""
        m, q = self.model.W.shape[0], self.q
        n = self.model.n_train
        if not self.exact:
            per_output = (Xt * Xt) @ (1.0 / self.diag).reshape(m, q).T  # x~^T diag(H_aa)^-1 x~
            if self.model.binary:
                return P[:, 0] * (1.0 - P[:, 0]) * per_output[:, 0] / n
            return (P * (1.0 - P) * per_output).sum(axis=1) / n
        Hinv = self.inverse
        if self.model.binary:
            quad = np.einsum("ij,jk,ik->i", Xt, Hinv, Xt, optimize=True)
            return P[:, 0] * (1.0 - P[:, 0]) * quad / n
        blocks = Hinv.reshape(m, q, m, q)
        own = np.zeros(Xt.shape[0])
        for a in range(m):
            own += P[:, a] * np.einsum("ij,jk,ik->i", Xt, blocks[a, :, a, :], Xt, optimize=True)
        PX = (P[:, :, None] * Xt[:, None, :]).reshape(Xt.shape[0], -1)
        cross = np.einsum("ij,jk,ik->i", PX, Hinv, PX, optimize=True)
        return (own - cross) / n

    def gradient_sum(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Sum of the loss gradients of rows (X, y), chunked."""
        total = np.zeros(self.model.n_params)
        for part in _chunks(X.shape[0]):
            G, _ = gradients(self.model, X[part], y[part])
            total += G.sum(axis=0)
        return total

    def row_stats(self, X: np.ndarray, y: np.ndarray, s: np.ndarray):
        """Per row: g^T H^-1 g, g . s (s = H^-1 times a validation gradient), leverage."""
        n = X.shape[0]
        quad, dot, lev = np.empty(n), np.empty(n), np.empty(n)
        for part in _chunks(n):
            G, P = gradients(self.model, X[part], y[part])
            quad[part] = self.quadratic(G)
            dot[part] = G @ s
            lev[part] = self._leverage(_augment(X[part]), P)
        return quad, dot, lev
