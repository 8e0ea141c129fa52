"""Models: building smp networks, checkpoints and their metadata, pretrained weights, initialisation strategies."""
