"""Accuracy measurement on a labelled photo set (identity folders), and calibration.

- ``embeddings``: embed every image under a root once per model (with an on-disk cache).
- ``pairs``: 1:1 verification on a pairs file, thresholds cross-validated over folds.
- ``identify``: open-set 1:N (rank-1, FNIR at FPIR) with a first-image-per-identity gallery.
- ``calibrate``: score statistics and operating points from every pair of a photo set,
  written to ``facegate/vision/data/calibration.json``.

Nothing here prints: progress bars appear only when a caller passes ``progress=True``.
"""
