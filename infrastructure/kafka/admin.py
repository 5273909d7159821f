"""Topic administration: the topics a log reads and writes (:class:`TopicSpec`), created when
missing and described until every partition has a leader (:func:`ensure_topics`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from eventsourcing.persistence import OperationalError, ProgrammingError
from kafka import errors as kerrors
from kafka.admin import KafkaAdminClient, NewTopic

from infrastructure.kafka.errors import connect_error

if TYPE_CHECKING:
    from collections.abc import Sequence

    from infrastructure.kafka.settings import KafkaSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    configs: dict[str, str]


def ensure_topics(settings: KafkaSettings, specs: Sequence[TopicSpec]) -> dict[str, int]:
    """Create missing topics; return the actual partition count of each."""
    try:
        admin = KafkaAdminClient(client_id="parsec-admin", **settings.client_kwargs())
    except Exception as e:
        raise connect_error(settings, "admin connect", e) from e
    try:
        existing = set(admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if missing and settings.create_topics:
            new = [
                NewTopic(
                    name=s.name,
                    num_partitions=s.partitions,
                    replication_factor=settings.replication_factor,
                    topic_configs=settings.topic_configs(s.configs),
                )
                for s in missing
            ]
            try:
                admin.create_topics(new, timeout_ms=settings.timeout_ms)
            except kerrors.TopicAlreadyExistsError:
                pass
            except Exception as e:
                # Several processes may race to create the same topic.
                if "TopicAlreadyExists" not in repr(e):
                    raise
        elif missing:
            msg = f"Kafka topics do not exist (and CREATE_TABLE is off): {[s.name for s in missing]}"
            raise ProgrammingError(msg)
        counts: dict[str, int] = {}
        deadline = time.monotonic() + settings.timeout
        while True:
            described = admin.describe_topics([s.name for s in specs])
            ok = True
            for d in described:
                name = d.get("name") or d.get("topic")
                err = d.get("error_code", 0)
                parts = d.get("partitions") or []
                if err or not parts:
                    ok = False
                    break
                counts[name] = len(parts)
            if ok:
                break
            if time.monotonic() > deadline:
                msg = f"Kafka topics not ready in {settings.timeout:g}s: {described}"
                raise OperationalError(msg)
            time.sleep(0.1)
        for s in specs:
            if counts[s.name] != s.partitions:
                logger.warning(
                    "Topic %s has %d partitions, configured %d: using %d",
                    s.name,
                    counts[s.name],
                    s.partitions,
                    counts[s.name],
                )
        return counts
    except (OperationalError, ProgrammingError):
        raise
    except (kerrors.KafkaTimeoutError, kerrors.KafkaConnectionError) as e:
        raise connect_error(settings, "topic admin", e) from e
    finally:
        admin.close()
