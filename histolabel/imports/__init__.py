"""Bring your own segmentation, labels and features: objects, classes and vectors made by
other tools (QuPath, Histomics, StarDist, Cellpose...) read into the product's own layout."""
