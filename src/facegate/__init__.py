"""facegate: self-hosted, privacy-first face recognition for consented uses.

The package does no work at import time: models load in factories (see
``facegate.vision.registry``) and are reused.
"""

__version__ = "0.1.0"
