"""monitor: watch news feeds and alert once per new development on chosen topics."""

__version__ = "0.1.0"
