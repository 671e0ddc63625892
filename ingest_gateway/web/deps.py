"""The services a request's endpoint uses, typed: settings, the store's pool, the write path's.

``app.create_app`` makes one ``Services`` per process at start-up and hands it to
every request (in the ASGI scope); endpoints read it through these functions, so a
reader and mypy see exactly what each one uses.

Imports: settings, the write path's services (publisher, quotas, controls, lanes,
tracking plans) and the key cache (``web.auth_cache``).
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from starlette.requests import Request

from ingest_gateway.web.auth_cache import KeyCache
from ingest_gateway.write.controls import TeamControls
from ingest_gateway.write.lanes import Lanes
from ingest_gateway.write.publisher import Publisher
from ingest_gateway.write.quotas import Quotas
from ingest_gateway.write.tracking import TrackingPlans
from runtime.settings import Settings

SCOPE_KEY = "ingest.services"


@dataclass(frozen=True)
class Services:
    settings: Settings
    db: asyncpg.Pool
    publisher: Publisher
    key_cache: KeyCache
    quotas: Quotas
    controls: TeamControls
    lanes: Lanes
    plans: TrackingPlans


def services(request: Request) -> Services:
    found: Services = request.scope[SCOPE_KEY]
    return found


def settings(request: Request) -> Settings:
    return services(request).settings


def db(request: Request) -> asyncpg.Pool:
    return services(request).db


def publisher(request: Request) -> Publisher:
    return services(request).publisher
