"""Training pieces: losses, metrics, the LightningModule and the image-logging callback."""
