"""Training a TAP model: frame pairs, augmentations, the training loop, multi-GPU helpers."""
