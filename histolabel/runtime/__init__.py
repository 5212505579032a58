"""Lambda handler bodies, shared by the deployed functions and the local runtime."""
