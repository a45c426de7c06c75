"""The commands: ``mlpx`` (Hydra), sweeps, reports, and the settings -> objects assembly."""
