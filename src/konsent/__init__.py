"""konsent: messenger conversations and newsletters with a provable legal basis."""

__version__ = "0.1.0"
