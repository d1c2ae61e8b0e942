"""The private registry: distribution client, auth, and managing a registry server."""
