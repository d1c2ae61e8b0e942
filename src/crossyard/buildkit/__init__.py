"""BuildKit from Python: the API compiled from BuildKit's own .proto files (`api`), crossyard's
client for buildkitd (`client`), LLB made in Python (`llb`)."""
