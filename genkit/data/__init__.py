"""Shared data layer: label schemas, datasets, paired transforms, datamodules, synthetic faces."""
