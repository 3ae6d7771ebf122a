"""Evaluate a checkpoint: ``python evaluate.py ckpt_path=<file> [split=val]`` (see README)."""

from segattn.cli.evaluate import main

if __name__ == "__main__":
    main()
