"""The latent-variable intrinsic probe of Stańczak, Torroba Hennigen, Williams, Cotterell and
Augenstein (AAAI 2023, "A Latent-Variable Model for Intrinsic Probing").

What the paper defines, and what is implemented here:

* The probe is a linear softmax over the masked representation,
  ``p_θ(π | h_C) = softmax(Wᵀ(h ⊙ m_C) + b)``, with ``m_C`` the indicator of the neuron
  subset C. The masked input is not rescaled and the bias is never masked, so a subset
  that is empty predicts ``softmax(b)``.
* C is latent. With a uniform prior over subsets (a constant, dropped) the log-likelihood
  is bounded below by the ELBO ``Σ_n E_{C∼q_φ}[log p_θ(π_n | h_{n,C})] + H(q_φ)``.
* The variational family is Poisson sampling: each neuron enters C independently with
  probability ``ρ_d = σ(φ_d)``. So ``log q(m) = Σ_d m_d φ_d − Σ_d log(1 + e^{φ_d})`` and
  ``H(q) = Σ_d [log(1 + e^{φ_d}) − ρ_d φ_d]``, both in closed form.
* The expectation is estimated with Monte-Carlo masks. θ gets the usual gradient of the
  sampled log-likelihood. φ gets the score-function (REINFORCE) gradient
  ``E_q[−log p · ∇_φ log q(m)]`` with no baseline, plus the exact gradient of H(q).

Where the reference code decides what the paper leaves open, this follows it
(``copenlu/flexible-probing``: ``trainers/poisson_trainer.py``,
``trainers/flexible_neural_probe_trainer.py``, ``models/neural_probe.py``, ``utils.py``;
``ErikaaWang/probing-multilingual-dynamics``, the copy of that code that was run on each
BLOOM checkpoint: ``multilingual-typology-probing/trainers/poisson_trainer.py``,
``utils/setup.py``):

* a one-layer probe (``nn.Linear`` with bias, default initialisation
  ``U(±1/√D)``), ``φ ~ U[0, 1)``, Adam on θ and φ together, learning rate 1e-2, batch 256;
* every example in a minibatch gets its own mask, and there are ``mc_samples`` (5) of them.
  One set of masks gives the likelihood term and a second, independent set gives the
  REINFORCE term;
* the data terms are averaged over the minibatch, and H(q) is added once per minibatch with
  weight 1, as in the BLOOM runs (``entropy_weight``). The original repository weights it by
  1e-2 instead;
* optional L1/L2 penalties on W and b (both 0 in the BLOOM runs);
* early stopping uses a held-out 10 % of the training words. The criterion is the
  Monte-Carlo estimate of the held-out cross-entropy minus ``1e-2 · H(q)``
  (``early_stopping_entropy_weight``, the BLOOM runs' ``--entropy-scale``). Training stops
  after ``patience`` epochs without improvement.
* at selection time the fitted linear layer is reused with the indicator mask of C, so
  ``log p(π | h_C) = log_softmax(Σ_{d∈C} h_d W_d + b)``. Adding a neuron d adds
  ``h_d W_d`` to the logits, and :meth:`LatentProbe.log_proba_candidates` scores every
  candidate in one broadcast.

Departures from the reference code:

* the defaults are 50 epochs and a patience of 3, where the reference used up to 5000
  epochs and a patience of 50. Pass ``max_epochs=5000, patience=50`` to match it;
* the reference means to reload the best checkpoint when it stops early. It does not: it
  binds the reloaded model to a local variable, so the probe keeps the weights of the last
  epoch, and it never saves φ. Here θ and φ from the best epoch are restored.
  ``restore_best=False`` keeps the last epoch, as the reference in effect did;
* the held-out criterion is averaged over words, not over minibatches (the reference gives
  the short last minibatch the same weight as the others);
* all randomness (split, shuffling, initialisation, masks) comes from ``seed``. The
  reference used the global torch generator without a seed;
* training runs in float32 (as the reference did on GPU), and the fitted parameters are
  kept as float64 numpy arrays. Scoring needs only numpy, not torch.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import BaseEstimator

from xalign.analysis.metrics import log_normalise
from xalign.errors import XalignError

if TYPE_CHECKING:
    import torch

__all__ = ["LatentProbe", "TorchRequiredError"]

log = logging.getLogger(__name__)


class TorchRequiredError(XalignError, ImportError):
    """Fitting the latent probe needs torch, which is not installed."""


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise TorchRequiredError(
            "the latent-variable probe needs torch to fit (pip install torch); "
            "the Gaussian probe (xalign.analysis.gaussian) works without it"
        ) from exc
    return torch


class LatentProbe(BaseEstimator):  # type: ignore[misc]
    """Linear softmax probe over a latent neuron subset with a Poisson-sampling posterior.

    Parameters
    ----------
    mc_samples
        Monte-Carlo masks per word and step, for each of the two gradient terms.
    learning_rate
        Adam step size for the probe and the variational logits.
    batch_size
        Words per minibatch.
    max_epochs, patience
        Train for at most ``max_epochs`` epochs. Stop after ``patience`` epochs in a row
        without a better held-out criterion.
    validation_fraction
        Share of the training words held out for early stopping, in (0, 1).
    seed
        Seeds the held-out split, shuffling, initialisation and masks.
    device
        Torch device to train on (``"cpu"``, ``"cuda"``).
    entropy_weight
        Weight of H(q) in the training objective. The paper and the BLOOM runs use 1.
    early_stopping_entropy_weight
        Weight of H(q) in the held-out criterion (1e-2 in the BLOOM runs).
    l1_weight, l2_weight
        L1 and L2 penalties on the probe's weights and bias.
    restore_best
        Keep the parameters of the best held-out epoch (True) or of the last epoch.
    elbo_entropy
        Weigh H(q) by 1/N (N training words) instead of entropy_weight: the ELBO's own weight
        when its data terms are averaged over words. The reference adds H(q) at weight 1 per
        minibatch, about N times too much, which keeps every inclusion probability near 0.5.

    Attributes
    ----------
    coef_ : (neuron, value)
        Weights W of the linear layer.
    intercept_ : (value,)
        Bias b (never masked).
    phi_ : (neuron,)
        Variational logits φ. ``σ(φ_d)`` is the posterior probability that neuron d is in C.
    rho_ : (neuron,)
        ``σ(φ)``: each neuron's fitted inclusion probability.
    entropy_scale_ : float
        The weight H(q) was trained with (entropy_weight, or 1/N with elbo_entropy).
    n_classes_, n_features_in_ : int
    n_epochs_ : int
        Epochs trained.
    best_epoch_ : int
        Epoch (1-based) with the lowest held-out criterion.
    validation_loss_ : (epoch,)
        Held-out criterion after each epoch, in nats.
    """

    def __init__(
        self,
        *,
        mc_samples: int = 5,
        learning_rate: float = 1e-2,
        batch_size: int = 256,
        max_epochs: int = 50,
        patience: int = 3,
        validation_fraction: float = 0.1,
        seed: int = 0,
        device: str = "cpu",
        entropy_weight: float = 1.0,
        early_stopping_entropy_weight: float = 1e-2,
        l1_weight: float = 0.0,
        l2_weight: float = 0.0,
        restore_best: bool = True,
        elbo_entropy: bool = False,
    ) -> None:
        self.mc_samples = mc_samples
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.seed = seed
        self.device = device
        self.entropy_weight = entropy_weight
        self.early_stopping_entropy_weight = early_stopping_entropy_weight
        self.l1_weight = l1_weight
        self.l2_weight = l2_weight
        self.restore_best = restore_best
        self.elbo_entropy = elbo_entropy

    # ------------------------------------------------------------------ fitting

    def fit(self, X: np.ndarray, y: np.ndarray, n_classes: int | None = None) -> LatentProbe:
        """Fit on words ``X`` (word, neuron) with value ids ``y`` in ``0..n_classes-1``."""
        X, y, n_classes = self._check_fit_input(X, y, n_classes)
        torch = _import_torch()
        device = torch.device(self.device)
        gen = torch.Generator(device=device).manual_seed(self.seed)
        n_words, n_neurons = X.shape

        order = np.random.default_rng(self.seed).permutation(n_words)
        n_train = int((1 - self.validation_fraction) * n_words)
        if n_train < 1 or n_train == n_words:
            raise ValueError(
                f"validation_fraction={self.validation_fraction} leaves {n_train} of {n_words} words "
                "for training; both parts must be non-empty"
            )
        X_all = torch.as_tensor(X[order], dtype=torch.float32, device=device)
        y_all = torch.as_tensor(y[order], dtype=torch.int64, device=device)
        X_train, y_train = X_all[:n_train], y_all[:n_train]
        self.entropy_scale_ = 1.0 / n_train if self.elbo_entropy else float(self.entropy_weight)
        X_val, y_val = X_all[n_train:], y_all[n_train:]

        # nn.Linear's default initialisation, drawn from our generator.
        bound = 1.0 / math.sqrt(n_neurons)
        W = (
            (torch.rand(n_neurons, n_classes, generator=gen, device=device) * 2 - 1) * bound
        ).requires_grad_()
        b = ((torch.rand(n_classes, generator=gen, device=device) * 2 - 1) * bound).requires_grad_()
        phi = torch.rand(n_neurons, generator=gen, device=device).requires_grad_()
        params = [W, b, phi]
        optimizer = torch.optim.Adam(params, lr=self.learning_rate)

        best = math.inf
        best_state = [p.detach().clone() for p in params]
        best_epoch, stale, history = 0, 0, []
        for epoch in range(1, self.max_epochs + 1):
            shuffled = torch.randperm(n_train, generator=gen, device=device)
            for start in range(0, n_train, self.batch_size):
                idx = shuffled[start : start + self.batch_size]
                loss = self._train_loss(gen, X_train[idx], y_train[idx], W, b, phi)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            with torch.no_grad():
                criterion = self._held_out_criterion(gen, X_val, y_val, W, b, phi)
            history.append(criterion)
            log.debug("latent probe epoch %d: held-out criterion %.5f", epoch, criterion)
            if criterion < best:
                best, best_epoch, stale = criterion, epoch, 0
                best_state = [p.detach().clone() for p in params]
            else:
                stale += 1
                if stale >= self.patience:
                    break

        final = best_state if self.restore_best else [p.detach() for p in params]
        W_fit, b_fit, phi_fit = (t.to("cpu", torch.float64).numpy() for t in final)
        self.coef_: np.ndarray = W_fit
        self.intercept_: np.ndarray = b_fit
        self.phi_: np.ndarray = phi_fit
        self.rho_: np.ndarray = 1.0 / (1.0 + np.exp(-phi_fit))
        self.n_classes_: int = n_classes
        self.n_features_in_: int = n_neurons
        self.n_epochs_: int = len(history)
        self.best_epoch_: int = best_epoch
        self.validation_loss_: np.ndarray = np.asarray(history, dtype=np.float64)
        log.info(
            "latent probe: %d epochs, best held-out criterion %.5f at epoch %d",
            len(history),
            best,
            best_epoch,
        )
        return self

    def _sampled_nll(
        self,
        gen: torch.Generator,
        X: torch.Tensor,
        y: torch.Tensor,
        W: torch.Tensor,
        b: torch.Tensor,
        rho: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Fresh masks (sample, word, neuron) and the cross-entropy of each masked word."""
        import torch

        masks = torch.rand((self.mc_samples, *X.shape), generator=gen, device=X.device) < rho
        logits = (X * masks) @ W + b  # (sample, word, value)
        nll = torch.nn.functional.cross_entropy(
            logits.flatten(0, 1), y.repeat(self.mc_samples), reduction="none"
        ).view(self.mc_samples, -1)
        return masks, nll

    def _train_loss(
        self,
        gen: torch.Generator,
        X: torch.Tensor,
        y: torch.Tensor,
        W: torch.Tensor,
        b: torch.Tensor,
        phi: torch.Tensor,
    ) -> torch.Tensor:
        import torch

        rho = torch.sigmoid(phi).detach()
        log_z = torch.nn.functional.softplus(phi).sum()
        _, nll = self._sampled_nll(gen, X, y, W, b, rho)  # gradient for θ
        with torch.no_grad():  # second draw, for φ: the likelihood enters as a constant
            masks, nll_rf = self._sampled_nll(gen, X, y, W, b, rho)
        log_q = masks.to(phi.dtype) @ phi - log_z  # (sample, word)
        reinforce = (nll_rf * log_q).mean()
        entropy = log_z - torch.sigmoid(phi) @ phi
        penalty = self.l1_weight * (W.abs().sum() + b.abs().sum()) + self.l2_weight * (
            W.square().sum() + b.square().sum()
        )
        loss: torch.Tensor = nll.mean() + reinforce - self.entropy_scale_ * entropy + penalty
        return loss

    def _held_out_criterion(
        self,
        gen: torch.Generator,
        X: torch.Tensor,
        y: torch.Tensor,
        W: torch.Tensor,
        b: torch.Tensor,
        phi: torch.Tensor,
    ) -> float:
        import torch

        rho = torch.sigmoid(phi)
        total = 0.0
        for start in range(0, len(X), self.batch_size):
            _, nll = self._sampled_nll(
                gen, X[start : start + self.batch_size], y[start : start + self.batch_size], W, b, rho
            )
            total += float(nll.mean(0).sum())
        entropy = float(torch.nn.functional.softplus(phi).sum() - rho @ phi)
        penalty = self.l1_weight * float(W.abs().sum() + b.abs().sum()) + self.l2_weight * float(
            W.square().sum() + b.square().sum()
        )
        return total / len(X) - self.early_stopping_entropy_weight * entropy + penalty

    def _check_fit_input(
        self, X: np.ndarray, y: np.ndarray, n_classes: int | None
    ) -> tuple[np.ndarray, np.ndarray, int]:
        X = np.asarray(X)
        y = np.asarray(y)
        if X.ndim != 2 or y.ndim != 1 or len(X) != len(y):
            raise ValueError(f"X must be (word, neuron) and y (word,); got shapes {X.shape} and {y.shape}")
        if not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"y must hold integer value ids, not {y.dtype}")
        n_classes = int(y.max()) + 1 if n_classes is None else int(n_classes)
        if y.min() < 0 or y.max() >= n_classes:
            raise ValueError(f"value ids must lie in 0..{n_classes - 1}")
        if self.mc_samples < 1 or self.batch_size < 1 or self.max_epochs < 1 or self.patience < 1:
            raise ValueError("mc_samples, batch_size, max_epochs and patience must be positive")
        return X, y, n_classes

    # ------------------------------------------------------------------ scoring

    def log_proba(self, X: np.ndarray, selected: Sequence[int] | np.ndarray) -> np.ndarray:
        """(word, value) natural-log p(value | X masked to the neurons in ``selected``)."""
        X, C = self._check_scoring_input(X, selected)
        logits = X[:, C] @ self.coef_[C] + self.intercept_
        result: np.ndarray = log_normalise(logits)
        return result

    def log_proba_candidates(
        self, X: np.ndarray, selected: Sequence[int], candidates: np.ndarray
    ) -> np.ndarray:
        """(candidate, word, value) log-probabilities of ``selected ∪ {d}`` for each candidate d.

        Masking is linear in the logits, so each candidate adds ``X[:, d] · W_d`` to the
        logits of ``selected``: one broadcast, no loop over candidates.
        """
        X, C = self._check_scoring_input(X, selected)
        D = self._check_neurons(candidates)
        base = X[:, C] @ self.coef_[C] + self.intercept_  # (word, value)
        logits = base[None, :, :] + X[:, D].T[:, :, None] * self.coef_[D][:, None, :]
        result: np.ndarray = log_normalise(logits)
        return result

    def _check_scoring_input(
        self, X: np.ndarray, selected: Sequence[int] | np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        if not hasattr(self, "coef_"):
            raise AttributeError("this LatentProbe is not fitted yet; call fit first")
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"X must be (word, {self.n_features_in_}); got shape {X.shape}")
        return X, self._check_neurons(selected)

    def _check_neurons(self, neurons: Sequence[int] | np.ndarray) -> np.ndarray:
        idx = np.asarray(neurons, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_features_in_):
            raise ValueError(f"neuron indices must lie in 0..{self.n_features_in_ - 1}")
        return idx
