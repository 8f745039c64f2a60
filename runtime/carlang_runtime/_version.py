"""The version of the carlang distribution (compiler and runtime ship together)."""

__version__ = "0.1.0"
