"""Lambda entry points of the stream and event functions: light modules (no numpy, pyarrow,
scikit-image, zarr, s3fs or torch), each packaged as its own small zip (infra/package.py)."""
