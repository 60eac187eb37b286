"""Step-up by liveness: whether a liveness session id may vouch for a face now.

Placeholder until the liveness sessions exist (issue 7): no session is ever valid, so a
door or verify that requires liveness is refused with ``liveness_required``.
"""

from __future__ import annotations

from typing import Any


def consume_liveness(state: Any, session_id: str | None, embedding: Any) -> bool:
    """True when ``session_id`` names a passed, unexpired, unused liveness session whose
    face matches ``embedding``; the session is then used up (single use)."""
    return False
