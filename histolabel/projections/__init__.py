"""Projections: current state folded from events, as pure functions."""
