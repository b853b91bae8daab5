"""The service-provider interface: everything a connector may import, and nothing else."""
