"""OCI data structures crossyard writes: descriptors, layouts, layers, images, indexes."""
