"""tapsift appliance: settings, the composition root (sensor), CLI and outputs."""

__version__ = "0.1.0"
