"""Speed measurements: each benchmark returns a plain dict (JSON-ready) and never prints.

``facegate.bench.pipeline``: decode + detect + align + embed per image on one thread,
optionally against the ``face_recognition`` library on the same images in the same run.
"""
