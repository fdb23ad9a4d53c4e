"""The PyTorch reference: the seed's models and training loop, NCHW, for parity tests and users."""
