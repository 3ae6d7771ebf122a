"""Train a segmentation model: ``python train.py experiment=pets_binary`` (see README)."""

from segattn.cli.train import main

if __name__ == "__main__":
    main()
