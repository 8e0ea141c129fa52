"""Training: the loop and its recipe, training on a manifest's subjects, losses, early stopping."""
