"""Models: one folder per model (``parsing``, ``portrait``, ``reshuffle``), one LightningModule per trainable thing."""
