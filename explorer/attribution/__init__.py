"""Attribution: the methods and targets, 2D+ windows, the batched engine and its fast path, and the
memory and time limits checked before a run."""
