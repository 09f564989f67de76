"""privacy/analysis."""
