"""Videos, frame pairs and augmentations."""
