"""AWS adapters: the only modules that talk to boto3, s3fs or pynamodb."""
