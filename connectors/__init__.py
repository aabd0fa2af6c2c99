"""Connectors: one module per external system."""
