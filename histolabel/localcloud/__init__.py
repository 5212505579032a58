"""The embedded local cloud: moto's server, the stack's resources, and a local runtime
(stream poller, job runner) that runs our Lambda and Batch code as local processes."""
