"""Pure mapping between native records and the canonical model."""
