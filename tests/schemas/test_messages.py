"""Client-named message ids (``client_message_id``): stable, per team, RFC 9562 UUIDv8."""

from __future__ import annotations

import uuid

from schemas.messages import client_message_id


def test_a_client_named_id_is_the_same_for_every_resend_and_differs_per_team() -> None:
    first = client_message_id(7, "ajs-next-1712345678-abc")
    assert client_message_id(7, "ajs-next-1712345678-abc") == first
    assert client_message_id(8, "ajs-next-1712345678-abc") != first
    assert client_message_id(7, "ajs-next-1712345678-abd") != first


def test_a_client_named_id_is_a_canonical_uuid_version_8() -> None:
    for n in range(200):
        text = client_message_id(n, f"message-{n}")
        parsed = uuid.UUID(text)
        assert str(parsed) == text  # canonical lower-case 8-4-4-4-12 form
        assert parsed.version == 8
        assert parsed.variant == uuid.RFC_4122
