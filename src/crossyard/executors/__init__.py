"""Executors run commands somewhere (this machine, SSH hosts, Docker engines) and move files; they know nothing about recipes."""
