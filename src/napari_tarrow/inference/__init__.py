"""Using a trained model: tiled dense features, Grad-CAM attribution, peak regions, PCA views."""
