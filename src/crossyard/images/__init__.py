"""Image recipes: plan which images to assemble (pure), resolve their bases, assemble them into
the store, and export them for `docker load` / `skopeo`."""
