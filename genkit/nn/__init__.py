"""Shared network building blocks (VGG-19 encoder, initialisation, blocks) used by every model."""
