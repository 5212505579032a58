"""HistoLabel: event-sourced, active-learning superpixel labeling for whole-slide images."""

__version__ = "0.1.0"
