"""Command-line entry points (shipped in the package as `jaxgan.scripts`)."""
