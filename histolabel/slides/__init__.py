"""Slide I/O: readers, pyramid writer, tissue mask, ingest."""
