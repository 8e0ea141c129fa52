"""Early stopping on a validation loss: the rule, and the loss of a model on held-out windows.

The rule (:class:`EarlyStopping`): the first ``warmup`` epochs are not watched (a randomly initialised network
can sit on a loss plateau for its first epochs; Keras calls this ``start_from_epoch``). After them, an epoch
improves when its validation loss is strictly below the best so far; training stops after ``patience`` epochs
without improvement, i.e. at epoch ``best + patience`` (1-based), unless the maximum number of epochs comes
first. The best watched epoch's weights are the ones kept.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

__all__ = ["EarlyStopping", "validation_loss"]


@dataclass
class EarlyStopping:
    """Patience-based stopping on a loss that should decrease, after ``warmup`` unwatched epochs; feed it one loss
    per epoch with :meth:`update`."""

    patience: int
    warmup: int = 0
    best_loss: float = math.inf
    best_epoch: int = 0
    epochs: int = 0
    best_state: dict[str, torch.Tensor] | None = field(default=None, repr=False)

    def update(self, loss: float, model: torch.nn.Module | None = None) -> bool:
        """Record one epoch's validation loss (and, when it is the best, a copy of ``model``'s weights).

        Returns:
            True when training should stop: ``patience`` epochs have passed since the best watched one.
        """
        self.epochs += 1
        if self.epochs <= self.warmup:
            return False
        if loss < self.best_loss:
            self.best_loss, self.best_epoch = loss, self.epochs
            if model is not None:
                self.best_state = copy.deepcopy(model.state_dict())
        return self.epochs - self.best_epoch >= self.patience

    def restore(self, model: torch.nn.Module) -> None:
        """Load the best epoch's weights back into ``model`` (no-op when none were kept)."""
        if self.best_state is not None:
            model.load_state_dict(self.best_state)


@torch.no_grad()
def validation_loss(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    device: torch.device,
    batch_size: int = 16,
) -> float:
    """Mean ``loss_fn`` of ``model`` (set to eval, then back to train) over windows ``x`` and labels ``y``."""
    model.eval()
    total = 0.0
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size].to(device), y[start : start + batch_size].to(device)
        total += float(loss_fn(model(xb), yb)) * len(xb)
    model.train()
    return total / len(x)
