"""Match -> Decision: operating points (thresholds) and, later, access rules and quotas."""
