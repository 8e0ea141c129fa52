"""The result cache: memory and disk stores, the budget, and the integrity key."""
