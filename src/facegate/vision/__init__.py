"""Image -> faces: safe decoding, detection, alignment, embedding, quality, model registry."""
