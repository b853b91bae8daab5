"""The in-process fake target of the tests and the quick examples."""
