"""AWS Batch job entry points, each run as `python -m gpu_jobs.<job> ...`."""
