"""Operating the whole: health, doctor, seed, first run and the reconciler. It may import every context."""
