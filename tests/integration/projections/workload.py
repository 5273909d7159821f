"""A busy log for the read-model tests: channels, payments, checkpoints, a settlement, a dispute.

Also a script: ``python workload.py EVENTS_DB PAYMENTS SEED ROUNDS [PAUSE]`` writes
ROUNDS workloads (new channels each round) through ChannelService on the
SQLite event store: the busy subprocess writer of the SIGKILL test.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from domain.application import ChannelService
from infrastructure.settings import Settings
from infrastructure.tools.demo import Demo


def service(events_db: Path, event_store: str = "sqlite", env: dict[str, str] | None = None) -> ChannelService:
    """ChannelService on the SQLite file, or on Kafka (bootstrap and topic from PARSEC_* in the environment)."""
    settings = Settings(data_dir=events_db.parent, event_store=event_store)
    return ChannelService(env={**settings.application_env(sqlite_path=events_db), **(env or {})})


def write(app: ChannelService, payments: int, seed: int = 7, channels: int = 6) -> Demo:
    demo = Demo(app, channels=channels, payments=payments, seed=seed, checkpoint_interval=10,
                duplicates=0.05, invalid=0.02)
    result = demo.run()
    plans = result.channels
    # the rest of a channel's life: a top-up, a confirmed checkpoint, a dispute, a settlement and a close
    first, second = plans[0], plans[1 % len(plans)]
    app.deposit(first.channel_id, first.a.address, 10**15)
    view = app.get_channel(first.channel_id)
    if view.checkpoint_sequence:
        app.confirm_checkpoint(first.channel_id, view.checkpoint_sequence, "0x" + "cd" * 32, 1234)
    app.request_dispute(second.channel_id, at=1_700_000_000, requested_by="watchtower")
    app.request_settlement(first.channel_id, at=1_700_000_100)
    app.close_channel(first.channel_id, at=1_700_000_200)
    return demo


if __name__ == "__main__":
    events_db, n, seed, rounds = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    pause = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
    app = service(events_db, os.environ.get("PARSEC_EVENT_STORE", "sqlite"))
    for i in range(rounds):
        write(app, n, seed * 1000 + i)
        time.sleep(pause)  # keep the log busy for a while, whatever the machine's speed
    sys.stdout.flush()
    # Every write above is committed already. Leave without the interpreter's finalisation:
    # closing a Kafka consumer from Application.__del__ at exit can hang (reported).
    os._exit(0)
