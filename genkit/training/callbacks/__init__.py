"""Lightning callbacks shared by every model (image grids, EMA, ...)."""
