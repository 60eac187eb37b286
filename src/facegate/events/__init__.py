"""Events from the camera workers and the sinks that deliver them."""
