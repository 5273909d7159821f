"""The composition root: every service Parsec runs is built here, from one ``Settings``.

The CLI (``infrastructure/cli``), the tools (``infrastructure/tools``) and tests ask this module for
what they run; nothing else constructs a ``ChannelService``, a node, a settler, a settlement
executor, a chain watcher or a projection runner (import-linter checks who imports this module;
``grep "ChannelService("`` finds the constructor here only). Constructors elsewhere take their
collaborators; the order things are built in (a settler fences its predecessor before its executor
exists, a partition's writer is opened by the node that owns it) is written here once.

Read models: the event source and the read-model store are chosen here too (``projections`` may
not import ``infrastructure``); another event source can be plugged in with
``SOURCE_FACTORIES[name] = factory`` where ``factory(settings) -> EventSource``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from eventsourcing.application import Application

from domain.application import ChannelService
from domain.crypto import PrivateKey
from infrastructure.settings import Settings
from projections.model import ReadModel
from projections.runner import ProjectionRunner
from projections.source import (
    SETTLER_PARTITION_BASE,
    CombinedEventSource,
    EventSource,
    PartitionedEventSource,
    source_for,
)
from projections.store import ReadModelStore

SOURCE_FACTORIES: dict[str, Callable[[Settings], EventSource]] = {}


class NotWired(ValueError):
    """The chosen event store has no event source plugged in."""


# ---------------------------------------------------------------------- channels
def load_kind_plugins(settings: Settings) -> list[str]:
    """Register the transaction kinds the settings name (``kind_plugins``) in the domain's catalogue:
    every process that parses, signs or applies channel transactions calls this first."""
    from domain.kinds import load_plugins

    added = load_plugins(settings.kind_plugin_modules)
    if added:
        logging.getLogger("parsec").info("transaction kinds from plugins: %s", ", ".join(added))
    return added


def channel_service(settings: Settings, *, sqlite_path: Path | None = None) -> ChannelService:
    """The write side on the configured event store (SQLite, Kafka or memory)."""
    return ChannelService(env=settings.application_env(sqlite_path=sqlite_path),
                          min_challenge_period=settings.min_challenge_period)


def channel_reader(settings: Settings) -> ChannelService:
    """A reader of every partition of the Kafka events topic (it never writes: no cache)."""
    return ChannelService(env=settings.store_env(None), min_challenge_period=settings.min_challenge_period)


# ---------------------------------------------------------------------- the node
def partition_service(settings: Settings, partition: int) -> Any:
    """The only writer of events partition ``partition`` (opened by the node that owns it)."""
    from infrastructure.node.service import NodeChannelService

    return NodeChannelService(env=settings.store_env(partition), min_challenge_period=settings.min_challenge_period)


def partition_worker(settings: Settings, partition: int, **kwargs: Any) -> Any:
    """A partition's worker outside a node (tools and tests): fences the previous owner."""
    from infrastructure.node.partition import PartitionWorker

    return PartitionWorker(partition, settings, partition_service(settings, partition), **kwargs)


def node(settings: Settings, **kwargs: Any) -> Any:
    """A node: joins the group and opens a writer per partition it is given."""
    from infrastructure.node.runner import Node

    return Node(settings, open_service=lambda p: partition_service(settings, p), **kwargs)


def mediation_service(settings: Settings, key: PrivateKey, **kwargs: Any) -> Any:
    """A party's mediation agent on Kafka (``parsec mediate``, ``parsec pay --to``): it reads every
    partition of the events topic through its own reader."""
    from infrastructure.mediation.kafka import MediationService

    return MediationService(settings, key, channel_reader(settings), **kwargs)


def sender(settings: Settings) -> Any:
    """A producer of signed payments and control requests (creates the node's topics if missing)."""
    from infrastructure.node.send import Sender

    return Sender(settings)


# ---------------------------------------------------------------------- settlement
def settlement(service: ChannelService, contract: Any, wallet: Any, *, start_block: int | None = None,
               **executor_kwargs: Any) -> tuple[Any, Any]:
    """The settlement executor over ``service`` and the chain watcher that feeds it."""
    from infrastructure.settlement.executor import SettlementExecutor
    from infrastructure.settlement.watcher import ChainWatcher

    executor = SettlementExecutor(service, contract, wallet, **executor_kwargs)
    watcher = ChainWatcher(executor) if start_block is None else ChainWatcher(executor, start_block=start_block)
    return executor, watcher


def settler(settings: Settings, contract: Any, wallet: Any, *, store_topic: str | None = None,
            start_block: int = 0, interval: float = 1.0) -> Any:
    """The deployment's settler: fences any previous settler on its store topic, then builds its executor."""
    from infrastructure.settlement.control import ControlTopicCommands
    from infrastructure.settlement.settler import Settler, SettlerStore, settler_store_env

    if store_topic is not None:
        settings = settings.model_copy(update={"settlement_topic": store_topic})
    out = sender(settings)
    reader = channel_reader(settings)
    store = SettlerStore(env=settler_store_env(settings, settings.settlement_topic))
    try:
        store.recorder.acquire()  # fence any previous settler; read its intents
        commands = ControlTopicCommands(out, reader, PrivateKey(bytes(wallet.key)))
        executor, watcher = settlement(reader, contract, wallet, store=store, commands=commands,
                                       start_block=start_block)
        return Settler(settings, sender=out, reader=reader, store=store, executor=executor, watcher=watcher,
                       contract=contract, operator=wallet.address, interval=interval)
    except BaseException:
        for closing in (out, reader, store):
            closing.close()
        raise


# ---------------------------------------------------------------------- read models
def events_path(settings: Settings, events_db: str | None = None) -> Path:
    return Path(events_db).expanduser() if events_db else Path(settings.data_dir) / "events.sqlite"


def event_source(settings: Settings, events_db: str | None = None) -> EventSource:
    """What the read models follow: the SQLite log, or the Kafka events topic beside the settler's store.

    Each source names its log (``identity``: ``sqlite:<path>``, ``kafka:<topic>``, combined with their
    bases); a plugged-in factory's source must too: a store refuses read models of another log."""
    if settings.event_store in SOURCE_FACTORIES:
        return SOURCE_FACTORIES[settings.event_store](settings)
    if settings.event_store == "sqlite":
        path = events_path(settings, events_db)
        if not path.exists():
            raise FileNotFoundError(f"no event store at {path}; run `parsec demo` or pass --events-db")
        return source_for(channel_service(settings, sqlite_path=path))
    if settings.event_store == "kafka":
        app = channel_service(settings)
        if not PartitionedEventSource.supports(app.recorder):
            raise NotWired("the Kafka event store's recorder has no per-partition notification API")
        return CombinedEventSource((0, source_for(app)), (SETTLER_PARTITION_BASE, settler_source(settings)))
    raise NotWired(
        f"no event source for the {settings.event_store!r} event store is plugged in "
        "(infrastructure.bootstrap.SOURCE_FACTORIES)"
    )


def settler_source(settings: Settings, topic: str | None = None) -> EventSource:
    """The settler's own one-partition log on Kafka (its intents: hashes, blocks, gas, failures)."""
    # the intents' classes, and the topics of their module's earlier name, must be registered
    # before the log is decoded (a read-models process imports nothing else of the settler)
    import infrastructure.settlement.aggregates  # noqa: F401

    class SettlerLog(Application):  # the settler's store, read only (the settler is its writer)
        name = "settler"

    env = {**settings.application_env(), "KAFKA_EVENTS_TOPIC": topic or settings.settlement_topic,
           "KAFKA_PARTITIONS": "1", "AGGREGATE_CACHE_MAXSIZE": "0"}
    return source_for(SettlerLog(env=env))


def backend_name(settings: Settings, backend: str | None) -> str:
    return backend or ("postgres" if settings.postgres_dsn else "sqlite")


def read_model_store(
    settings: Settings,
    backend: str | None = None,
    *,
    db: str | None = None,
    schema: str = "public",
    events_db: str | None = None,
) -> ReadModelStore:
    """SQLite: ``readmodels.sqlite`` next to the event store (so each log has its own); PostgreSQL: the DSN."""
    name = backend_name(settings, backend)
    if name == "postgres":
        if not settings.postgres_dsn:
            raise ValueError("--backend postgres needs a DSN: --postgres or PARSEC_POSTGRES_DSN")
        from projections.postgres import PostgresStore

        return PostgresStore(settings.postgres_dsn, schema=schema)
    from projections.sqlite import SQLiteStore

    if db:
        path = Path(db).expanduser()
    elif settings.event_store == "sqlite":
        path = events_path(settings, events_db).parent / "readmodels.sqlite"
    else:
        path = Path(settings.data_dir) / "readmodels.sqlite"
    return SQLiteStore(path)


def projection_runner(source: EventSource, store: ReadModelStore, models: Sequence[ReadModel],
                      **kwargs: Any) -> ProjectionRunner:
    """Read models fed from ``source`` into ``store``, exactly once (positions saved with the rows)."""
    return ProjectionRunner(source, store, list(models), **kwargs)


# ---------------------------------------------------------------------- the payer's wallet
def wallet_token(settings: Settings) -> str | None:
    """The REST API's bearer token: ``PARSEC_WALLET_API_TOKEN_FILE`` (one trailing newline ignored), else
    ``PARSEC_WALLET_API_TOKEN``."""
    if settings.wallet_api_token_file:
        return Path(settings.wallet_api_token_file).expanduser().read_text().removesuffix("\n")
    return settings.wallet_api_token.get_secret_value() if settings.wallet_api_token else None


def wallet(settings: Settings, key: PrivateKey, *, send: bool = True, after_record: Any = None) -> Any:
    """A payer's wallet on its record (``PARSEC_WALLET_PATH``). It sends to the REST API when
    ``PARSEC_WALLET_API_URL`` is set, else to the inbound topic directly (``send=False``: it only
    signs and records); it reconciles with the node's events and rejected topics on Kafka, connected
    on first use."""
    from infrastructure.client import (
        HttpTransport,
        KafkaAcknowledgements,
        KafkaTransport,
        Wallet,
        WalletRecord,
    )
    from infrastructure.client.acks import LazyAcknowledgements

    transport: Any = None
    if send:
        if settings.wallet_api_url:
            transport = HttpTransport(settings.wallet_api_url, wallet_token(settings), timeout=settings.kafka_timeout)
        else:
            transport = KafkaTransport(sender(settings), timeout=settings.kafka_timeout)

    def acks() -> Any:
        consumer = settings.kafka.kafka_python(group_id=None, enable_auto_commit=False,
                                               isolation_level="read_committed", client_id="parsec-wallet")
        return KafkaAcknowledgements(channel_reader(settings), consumer, inbound_topic=settings.inbound_topic,
                                     rejected_topic=settings.rejected_topic, timeout=settings.kafka_timeout)

    record = WalletRecord(settings.wallet_path)
    return Wallet(record, key, transport=transport, acks=LazyAcknowledgements(acks), after_record=after_record)


def wallet_record(settings: Settings) -> Any:
    """The wallet's record alone (``PARSEC_WALLET_PATH``), for reading it without a key."""
    from infrastructure.client import WalletRecord

    return WalletRecord(settings.wallet_path)
# ---------------------------------------------------------------------- the REST API
def deployed_contract(settings: Settings) -> Any:
    """The channel contract at ``settings.contract`` on ``settings.eth_rpc`` (a ValueError when there is none)."""
    from eth_utils import to_checksum_address

    from infrastructure.chain import ChannelContract, connect

    if not settings.eth_rpc or not settings.contract:
        raise ValueError("no deployed contract configured (PARSEC_ETH_RPC and PARSEC_CONTRACT)")
    w3 = connect(settings.eth_rpc)
    try:
        address = to_checksum_address(settings.contract)
    except ValueError:
        raise ValueError(f"--contract {settings.contract!r} is not an address") from None
    if not w3.eth.get_code(address):
        raise ValueError(f"no contract at {address} on chain {w3.eth.chain_id} ({settings.eth_rpc})")
    return ChannelContract(w3, address)


def dashboard_sources(settings: Settings) -> Any:
    """What the dashboard shows beside the read models and the log: the node group's partitions
    (from the broker), the nodes' latency (their /metrics), a channel's on-chain record (the
    contract, read only) and the last audit report; each only when configured."""
    from infrastructure.api.services import Lazy
    from infrastructure.dashboard.cluster import Cached, admin_client, describe_group
    from infrastructure.dashboard.node_metrics import NodeMetricsSampler
    from infrastructure.dashboard.sources import DashboardSources

    group = None
    if settings.event_store == "kafka":
        topics = {"inbound": settings.inbound_topic, "control": settings.control_topic}
        admin = Lazy(lambda: admin_client(settings.kafka.librdkafka()), "the Kafka admin client")
        group = Cached(lambda: describe_group(admin.get(), settings.node_group, topics))
    latency = None
    if settings.node_metrics:
        urls = [u.strip() for u in settings.node_metrics.split(",") if u.strip()]
        latency = NodeMetricsSampler(urls, interval=settings.node_metrics_interval)
    onchain = None
    if settings.eth_rpc and settings.contract:
        from infrastructure.chain.lifecycle import onchain_state

        contract = Lazy(lambda: deployed_contract(settings), "the Ethereum node")
        onchain = lambda cid: onchain_state(contract.get(), cid)  # noqa: E731
    return DashboardSources(group=group, latency=latency, onchain=onchain, audit_report=settings.audit_report)


def api_services(settings: Settings, *, events_db: str | None = None, schema: str = "public",
                 follow: bool = False) -> Any:
    """What ``parsec api`` uses, each made on first use: the producer, the read-model store (one
    connection per thread, its tables created), a read-only channel reader on the event store (a
    control request's deployment, participants and operators), the readers of ``/v1/events`` and
    the ``/readyz`` checks. ``follow``: a projection runner in a thread keeps the read models
    current while the server runs (what ``parsec projections run`` does, exactly once beside it)."""
    import threading

    from infrastructure.api.events import EventSourceReader, RejectedTopicReader
    from infrastructure.api.readiness import chain_check, database_check, kafka_check
    from infrastructure.api.services import ApiServices, Lazy, PerThread
    from projections import registry

    models = [registry.get(name) for name in registry.BUILT_IN]

    def open_store() -> ReadModelStore:
        store = read_model_store(settings, events_db=events_db, schema=schema)
        store.create([t for m in models for t in m.tables])  # an empty read model answers empty pages
        return store

    def open_channels() -> ChannelService:
        if settings.event_store == "kafka":
            return channel_reader(settings)
        if settings.event_store == "sqlite":
            path = events_path(settings, events_db)
            if not path.exists():
                raise FileNotFoundError(f"no event store at {path}")
            return channel_service(settings, sqlite_path=path)
        raise NotWired(f"the API reads channels from the sqlite or kafka event store, not {settings.event_store!r}")

    sender_ = Lazy(lambda: sender(settings), "the Kafka producer")
    stores = PerThread(open_store, "the read-model database")
    channels = Lazy(open_channels, "the event store")
    # one reader of each log for every stream (each keeps its own positions; a lock serialises them)
    settler_log = Lazy(lambda: settler_source(settings), "the settler's log")
    events_lock, settler_lock = threading.Lock(), threading.Lock()

    def readers() -> list[Any]:
        out: list[Any] = [EventSourceReader("events", source_for(channels.get()), lock=events_lock)]
        if settings.event_store == "kafka":
            from kafka import KafkaConsumer

            from infrastructure.node.messages import Rejection

            sender_.get()  # the node's topics exist from here on (a reader of a missing topic would see none)
            out.append(EventSourceReader("settler", settler_log.get(), lock=settler_lock))
            consumer = KafkaConsumer(**settings.kafka.kafka_python(
                client_id="parsec-api-events", group_id=None, enable_auto_commit=False,
                isolation_level="read_committed", auto_offset_reset="earliest"))
            out.append(RejectedTopicReader(consumer, settings.rejected_topic, settings.inbound_topic, Rejection.of))
        return out

    checks = {
        "broker": kafka_check(settings.kafka.librdkafka(), settings.inbound_topic),
        "database": database_check(lambda: read_model_store(settings, events_db=events_db, schema=schema)),
        "chain": chain_check(settings.eth_rpc),
    }
    dashboard = dashboard_sources(settings)
    services = ApiServices(sender=sender_.get, read_store=stores.get, channels=channels.get, readers=readers,
                           checks=checks, on_close=[sender_.close, stores.close, channels.close, settler_log.close],
                           dashboard=dashboard)
    if dashboard.latency is not None:
        services.on_start.append(dashboard.latency.start)
        services.on_close.insert(0, dashboard.latency.close)
    if follow:
        stop = threading.Event()
        thread: list[threading.Thread] = []

        def follow_once() -> None:
            source, store = event_source(settings, events_db), open_store()
            try:
                projection_runner(source, store, models).run_forever(stop)
            finally:
                store.close()
                closing = getattr(source, "close", None)
                if closing is not None:
                    closing()

        def follow_log() -> None:
            # a failure (no event store yet, the broker or the database away) must not leave the
            # server answering from read models that silently stopped: say it, and start again
            while not stop.is_set():
                try:
                    follow_once()
                except Exception as err:
                    logging.getLogger("parsec.api").error(
                        "the API's projection runner stopped (%s: %s); starting again in 5 s", type(err).__name__, err)
                    stop.wait(5.0)

        def start() -> None:
            thread.append(threading.Thread(target=follow_log, name="parsec-api-projections", daemon=True))
            thread[0].start()

        def halt() -> None:
            stop.set()
            if thread:
                thread[0].join(30)

        services.on_start.append(start)
        services.on_close.insert(0, halt)
    return services


def api_app(settings: Settings, *, insecure_no_token: bool = False, events_db: str | None = None,
            schema: str = "public", follow: bool = False, **kwargs: Any) -> Any:
    """The REST API's ASGI app on this deployment's services (``parsec api``); ``kwargs`` go to
    ``create_app`` (``tokens``, ``limiter``)."""
    from infrastructure.api.app import create_app

    return create_app(settings, api_services(settings, events_db=events_db, schema=schema, follow=follow),
                      insecure_no_token=insecure_no_token, **kwargs)
