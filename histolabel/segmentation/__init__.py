"""Tiled SLIC superpixels with seamless tiles, and the superpixel table."""
