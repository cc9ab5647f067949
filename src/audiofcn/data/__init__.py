"""Built-in data: music rendered by the package itself (no downloads), and data utilities."""
