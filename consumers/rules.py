"""The tests behind the event rules, and the version order used for last-writer-wins.

One job: answer the questions ``consumers.plan`` asks of one message (is it from a
bot; which of two writes is newer). The rules' names are outcomes of a message and
live in ``schemas.outcomes`` (``Rule``). Imports CrawlerDetect and nothing of the
project.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

from crawlerdetect import CrawlerDetect

_detector = CrawlerDetect()


@lru_cache(maxsize=4096)
def is_bot(user_agent: str | None) -> bool:
    """True for crawlers, spiders and bots, as the maintained CrawlerDetect rules say."""
    if not user_agent:
        return False
    return bool(_detector.isCrawler(user_agent))


def version(occurred_at: datetime, message_id: str) -> str:
    """A string that sorts like (event time, message id).

    Attribute values and client-identified events are last-writer-wins by event time;
    the message id (a UUIDv7) breaks ties the same way in every consumer.
    """
    # Shifted by the seconds from year 1 to 1970 so that every time is positive.
    micros = int(occurred_at.timestamp() * 1_000_000) + 62_135_596_800_000_000
    return f"{micros:020d}/{message_id}"
