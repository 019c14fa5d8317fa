"""Pieces several methods share: synthetic domains, generated-image sources, freezing."""
