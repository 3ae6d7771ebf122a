"""Command-line entry points (Hydra apps): train, evaluate, predict."""
