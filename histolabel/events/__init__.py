"""The event catalogue and the stored-event envelope."""
