"""Camera workers: capture, tracking, best-shot identification per track, events."""
