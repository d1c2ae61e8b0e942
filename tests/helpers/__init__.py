"""Test helpers that start real servers (registry, dockerd, sshd) for the integration tests."""
