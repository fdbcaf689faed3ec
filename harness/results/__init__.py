"""What a run leaves: the run directory schema, per-sample records, the store, provenance, loading."""
