"""Reproducibility checks: rebuild under variations, compare, and explain every mismatch."""
