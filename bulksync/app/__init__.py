"""The application: the CLI, the run, plan and prune flows, progress, reports, the demo."""
