"""The hub's small shared core: settings, the error hierarchy, masking and the command line."""
