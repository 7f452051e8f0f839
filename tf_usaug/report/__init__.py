"""Reports people open in a browser: self-contained HTML over a run's outputs."""
