"""Shipyard: a deployment manager for SSH fleets."""

__version__ = "0.1.0"
