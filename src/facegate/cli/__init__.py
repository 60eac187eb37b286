"""The command line: the only layer that prints or maps errors to exit codes."""
