"""mlpx's grid sweeper for Hydra (``hydra/sweeper=grid``, mlpx's default): see grid_sweeper.py."""
