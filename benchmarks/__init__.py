"""bulksync benchmarks: `python -m benchmarks.<script>`."""
