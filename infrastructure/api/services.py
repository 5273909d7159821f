"""What the API uses, as factories the composition root fills in (``bootstrap.api_services``).

Nothing is opened when the app is built: the producer, the event-store reader and the read-model
connections are made on first use (so ``/healthz`` and ``/readyz`` answer while the broker or
the database is down, and the OpenAPI document is made with nothing running), then kept.
Read-model connections are one per worker thread (a SQLite connection is not shared across
threads mid-query).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from infrastructure.api.errors import ServiceUnavailable

log = logging.getLogger("parsec.api")


class Lazy:
    """One object made on first use by ``make`` (a failure is not kept: the next use tries again)."""

    def __init__(self, make: Callable[[], Any], what: str) -> None:
        self._make = make
        self._what = what
        self._value: Any = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        if self._value is None:
            with self._lock:
                if self._value is None:
                    try:
                        self._value = self._make()
                    except (ConnectionError, OSError, TimeoutError) as err:
                        raise ServiceUnavailable(f"{self._what}: {err}") from err
                    except Exception as err:
                        if type(err).__name__ in ("BrokerUnavailableError", "NoBrokersAvailable",
                                                  "KafkaTimeoutError", "OperationalError"):
                            raise ServiceUnavailable(f"{self._what}: {err}") from err
                        raise
        return self._value

    def close(self) -> None:
        value, self._value = self._value, None
        if value is not None and hasattr(value, "close"):
            try:
                value.close()
            except Exception:  # closing on shutdown
                log.debug("closing %s failed", self._what, exc_info=True)


class PerThread:
    """One object per thread made by ``make`` (read-model store connections); all closed at shutdown."""

    def __init__(self, make: Callable[[], Any], what: str) -> None:
        self._make = make
        self._what = what
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()

    def get(self) -> Any:
        value = getattr(self._local, "value", None)
        if value is None:
            try:
                value = self._make()
            except (ConnectionError, OSError) as err:
                raise ServiceUnavailable(f"{self._what}: {err}") from err
            self._local.value = value
            with self._lock:
                self._all.append(value)
        return value

    def close(self) -> None:
        with self._lock:
            values, self._all = self._all, []
        for value in values:
            try:
                value.close()
            except Exception:  # closing on shutdown
                log.debug("closing %s failed", self._what, exc_info=True)


@dataclass
class ApiServices:
    """The API's collaborators, each made when first needed.

    ``sender()``: a ``infrastructure.node.send.Sender`` (payments to the inbound topic, requests
    to the control topic). ``read_store()``: this thread's ``ReadModelStore``. ``channels()``: a
    read-only ``ChannelService`` on the event store (a control request's channel: its deployment,
    participants and operators). ``readers()``: the ``LogReader``s of one new event stream.
    ``checks``: the ``/readyz`` checks by name. ``on_start`` / ``on_close``: run when the server
    starts and stops (a projection runner in the same process, connections to close).
    """

    sender: Callable[[], Any]
    read_store: Callable[[], Any]
    channels: Callable[[], Any]
    readers: Callable[[], list[Any]]
    checks: Mapping[str, Callable[[float], str]] = field(default_factory=dict)
    on_start: list[Callable[[], None]] = field(default_factory=list)
    on_close: list[Callable[[], None]] = field(default_factory=list)
    dashboard: Any = None  # infrastructure.dashboard.sources.DashboardSources (None: read models and log only)

    def start(self) -> None:
        for starting in self.on_start:
            starting()

    def close(self) -> None:
        for closing in reversed(self.on_close):
            try:
                closing()
            except Exception:  # closing on shutdown
                log.debug("closing an API service failed", exc_info=True)


def unwired() -> ApiServices:
    """Services that refuse every use: enough to build the app for its OpenAPI document."""

    def refuse() -> Any:
        raise ServiceUnavailable("this API was built without services (an OpenAPI document only)")

    return ApiServices(sender=refuse, read_store=refuse, channels=refuse, readers=refuse)
