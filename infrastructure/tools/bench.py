"""``parsec bench``: Parsec's figures beside the machine's limits, measured in one run.

Every figure is a rate measured here and now, so a result reads as a ratio to
the limits of the same machine (secp256k1 recoveries per second per core,
the raw rate of the same Kafka client on the same messages). Sections that
need a service the run cannot reach say so under ``skipped`` instead of
failing the whole run.
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import tempfile
import time
import uuid
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from domain.application import ChannelService
from domain.channel import ChannelParameters
from domain.crypto import PrivateKey, keccak, recover_public_key
from domain.protocol import SignedInvoice
from infrastructure import bootstrap
from infrastructure.kafka_access import KafkaAccess
from infrastructure.settings import Settings
from infrastructure.tools.workload import DEV_DOMAIN, ChannelPlan, make_channels

BENCH_DOMAIN = DEV_DOMAIN


class SkipSection(Exception):
    """A section that cannot run here (say why)."""


def _access(kafka: KafkaAccess | str) -> KafkaAccess:
    """The Kafka the bench runs against (``Settings.kafka``), or a bare bootstrap address (plaintext)."""
    return kafka if isinstance(kafka, KafkaAccess) else KafkaAccess(bootstrap=kafka)


def raw_clients_config(kafka: KafkaAccess | str) -> dict[str, dict[str, Any]]:
    """The raw sections' clients: kafka-python (admin, producer, consumer) and librdkafka (the same three),
    each with the run's bootstrap and security; producers with ``acks=all`` like Parsec's own."""
    k = _access(kafka)
    return {
        "admin": k.kafka_python(request_timeout_ms=5000, bootstrap_timeout_ms=5000),
        "producer": k.kafka_python_producer(linger_ms=5, batch_size=256 * 1024),
        "consumer": k.kafka_python(enable_auto_commit=False, max_poll_records=5000, fetch_max_bytes=64 * 1024 * 1024),
        "ck_admin": k.librdkafka(),
        "ck_producer": k.librdkafka_producer(**{"linger.ms": 5}),
        "ck_consumer": k.librdkafka(**{"group.id": f"bench-{uuid.uuid4().hex[:6]}", "enable.auto.commit": False,
                                       "auto.offset.reset": "earliest", "isolation.level": "read_committed"}),
    }


def machine() -> dict[str, Any]:
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    libs = {}
    for name in ("eventsourcing", "kafka-python", "web3", "py-ecc", "pydantic", "psycopg", "coincurve",
                 "safe-pysha3", "eth-tester", "py-evm", "confluent-kafka", "crc32c"):
        try:
            libs[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "libraries": libs,
    }


def _rate(fn: Callable[[], None], seconds: float = 1.0) -> float:
    n, start = 0, time.perf_counter()
    while True:
        for _ in range(200):
            fn()
        n += 200
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n / elapsed


def crypto_limits(seconds: float = 1.0) -> dict[str, float]:
    key = PrivateKey.from_seed("bench")
    digest = keccak(b"parsec")
    sig = key.sign_digest(digest)
    payload = b"\x11" * 200
    return {
        "recover_per_s_per_core": round(_rate(lambda: recover_public_key(digest, sig), seconds)),
        "sign_per_s_per_core": round(_rate(lambda: key.sign_digest(digest), seconds)),
        "keccak_200B_per_s_per_core": round(_rate(lambda: keccak(payload), seconds)),
    }


def make_workload(channels: int, payments: int, seed: int = 1) -> tuple[list[ChannelPlan], list[bytes]]:
    """Pre-signed payments (JSON bytes) over ``channels`` ETH channels, round-robin, always affordable."""
    plans = make_channels(f"bench-{seed}", channels, deposits=(10**24, 0), domain=BENCH_DOMAIN)
    messages = [plans[n % channels].pay_json(10**12, invoice_id=uuid.UUID(int=n + 1, version=4))
                for n in range(payments)]
    return plans, messages


def open_all(service: ChannelService, plans: list[ChannelPlan], checkpoint_interval: int = 1000) -> None:
    params = ChannelParameters(challenge_period=3600, checkpoint_interval=checkpoint_interval, checkpoint_timeout=3600)
    for plan in plans:
        service.open_channel(**plan.open_kwargs(params, int(time.time())))


def embedded_payments(channels: int = 100, payments: int = 20_000, batch: int = 200) -> dict[str, Any]:
    """Verified payments applied end to end on the embedded store (SQLite), one process."""
    opens, messages = make_workload(channels, payments)
    with tempfile.TemporaryDirectory() as tmp:
        service = bootstrap.channel_service(Settings(data_dir=Path(tmp), event_store="sqlite"))
        open_all(service, opens)
        start = time.perf_counter()
        accepted = 0
        for i in range(0, len(messages), batch):
            for r in service.accept_payments(messages[i : i + batch], at=int(time.time())):
                accepted += not isinstance(r, Exception)
        elapsed = time.perf_counter() - start
        service.close()
    if accepted != payments:
        raise RuntimeError(f"only {accepted} of {payments} benchmark payments were accepted")
    return {"payments": payments, "channels": channels, "batch": batch, "seconds": round(elapsed, 3),
            "payments_per_s": round(payments / elapsed)}


def _verify_chunk(chunk: list[bytes]) -> int:
    return sum(1 for raw in chunk if SignedInvoice.from_json(raw))


def parallel_verification(payments: int = 20_000) -> dict[str, Any]:
    """Message parsing + signature verification alone, 1 process vs all cores."""
    _, messages = make_workload(50, payments)
    start = time.perf_counter()
    _verify_chunk(messages)
    one = payments / (time.perf_counter() - start)
    cores = os.cpu_count() or 1
    chunks = [messages[i::cores] for i in range(cores)]
    with multiprocessing.get_context("fork").Pool(cores) as pool:
        start = time.perf_counter()
        pool.map(_verify_chunk, chunks)
        many = payments / (time.perf_counter() - start)
    return {"verify_per_s_1_process": round(one), f"verify_per_s_{cores}_processes": round(many)}


def kafka_raw(kafka: KafkaAccess | str, messages: int = 20_000, size: int | None = None) -> dict[str, Any]:
    """The Kafka client alone: produce then consume ``messages`` of a signed invoice's size."""
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import NewTopic

    k = _access(kafka)
    conf = raw_clients_config(k)
    if size is None:
        size = len(make_workload(1, 1)[1][0])
    try:
        admin = KafkaAdminClient(**conf["admin"])
    except Exception as exc:
        raise SkipSection(f"no Kafka broker at {k.bootstrap}: {exc}") from None
    topic = f"parsec.bench.raw.{uuid.uuid4().hex[:8]}"
    try:
        admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=k.replication_factor,
                                      topic_configs=k.topic_configs())])
        payload = b"x" * size
        producer = KafkaProducer(**conf["producer"])
        start = time.perf_counter()
        for i in range(messages):
            producer.send(topic, key=str(i % 100).encode(), value=payload, partition=0)
        producer.flush()
        produce_s = time.perf_counter() - start
        producer.close()
        consumer = KafkaConsumer(**conf["consumer"])
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        got, start = 0, time.perf_counter()
        while got < messages:
            for records in consumer.poll(timeout_ms=1000).values():
                got += len(records)
        consume_s = time.perf_counter() - start
        consumer.close()
    finally:
        try:
            admin.delete_topics([topic])
        except Exception:
            pass
        admin.close()
    return {
        "message_bytes": size,
        "messages": messages,
        "produce_per_s": round(messages / produce_s),
        "consume_per_s": round(messages / consume_s),
        "produce_then_consume_per_s": round(messages / (produce_s + consume_s)),
    }


LATENCY_LOADS = (500, 1000, 2000, 5000)  # offered payments/s of the latency-versus-load table


def kafka_payments(kafka: KafkaAccess | str, quick: bool = False, nodes: int | None = None,
                   loads: tuple[int, ...] = LATENCY_LOADS, partitions: int | None = None) -> dict[str, Any]:
    """Signature-verified payments end to end on Kafka: throughput per node count, latency per load.

    For 1 node process and for one per core (``nodes``), each on fresh private topics with
    ``partitions`` (default: one per node process of the larger run). Throughput: the nodes are
    paused (SIGSTOP) while a backlog of payments is produced to the inbound topic, then resumed; the clock runs from the resume until the balances read
    model, following the events topic in this process, has applied the last PaymentAccepted event,
    and then every channel's balances in it must equal what the workload's clients sent. The nodes'
    CPU time over that window gives the cost of a payment per core, and from it the figure N cores
    would reach on paper. Latency (with one node per core): paced streams at each offered load;
    each payment from its hand-over to the producer to a read_committed consumer receiving its
    PaymentAccepted event (the node's transaction committed)."""
    from kafka import KafkaAdminClient

    from infrastructure.node.send import Sender
    from infrastructure.tools import simulate

    k = _access(kafka)
    try:
        KafkaAdminClient(**k.kafka_python(request_timeout_ms=5000)).close()
    except Exception as exc:
        raise SkipSection(f"no Kafka broker at {k.bootstrap}: {exc}") from None
    nodes = nodes or os.cpu_count() or 1
    # one partition per node process at the most: a node commits its partitions' transactions one
    # after another, so two per node doubled the loop (p50 at 1,000/s offered 25 -> 39-51 ms here)
    partitions = partitions or nodes
    payments = 4_000 if quick else 20_000
    seconds_per_load = 1.5 if quick else 5.0
    channels = 100
    by_nodes: list[dict[str, Any]] = []
    latency: list[dict[str, Any]] = []
    for n in sorted({1, nodes}):
        config = simulate.kafka_config(k, prefix=f"parsec.bench.{uuid.uuid4().hex[:8]}", partitions=partitions)
        spawned = None
        try:
            Sender(config).close()  # the topics, before the nodes race to create them
            spawned = simulate.SpawnedNodes(n, config)
            thr = simulate.run_kafka(simulate.Workload(channels, seed=11), config, payments=payments,
                                     checkpoint_interval=1000, nodes=spawned, preproduce=True, follow_balances=True)
            _check_throughput_run(thr, payments)
            row: dict[str, Any] = {"nodes": n, "payments": payments, "seconds": round(thr.seconds, 3),
                                   "payments_per_s": round(thr.payments_per_s),
                                   "produce_seconds": round(thr.send_seconds, 3),
                                   "balances_equal": f"{thr.balances['equal']} of {thr.balances['channels']}"}
            if thr.node_cpu_seconds:
                us = thr.node_cpu_seconds / payments * 1e6
                row.update(node_cpu_seconds=thr.node_cpu_seconds, node_cpu_us_per_payment=round(us, 1),
                           payments_per_s_per_core_on_paper=round(1e6 / us))
            by_nodes.append(row)
            if n == nodes:
                for i, rate in enumerate(loads):
                    lat = simulate.run_kafka(simulate.Workload(channels, seed=12 + i), config,
                                             payments=int(rate * seconds_per_load), rate=rate,
                                             checkpoint_interval=1000, nodes=spawned)
                    if not lat.complete:
                        raise RuntimeError(f"latency run at {rate}/s incomplete: {lat.accepted} accepted ({lat.notes})")
                    pct = lat.percentiles()
                    split = lat.latency_split()
                    latency.append({"offered_per_s": rate, "achieved_per_s": round(lat.payments_per_s),
                                    "payments": lat.accepted, "p50_ms": pct.get("p50"), "p90_ms": pct.get("p90"),
                                    "p99_ms": pct.get("p99"), "max_ms": pct.get("max"),
                                    **{f"{part}_{p}_ms": split[part][p] for part in split for p in ("p50", "p99")}})
        finally:
            if spawned is not None:
                spawned.stop()
            _delete_topics(k, [config.inbound_topic, config.control_topic, config.events_topic,
                               config.rejected_topic])
    best = by_nodes[-1]
    per_core = min(r.get("payments_per_s_per_core_on_paper") or 0 for r in by_nodes) or None
    return {
        "throughput": {"payments": payments, "channels": channels, "nodes": nodes, "partitions": partitions,
                       "seconds": best["seconds"], "payments_per_s": best["payments_per_s"],
                       "produce_seconds": best["produce_seconds"], "balances_equal": best["balances_equal"],
                       "method": "backlog pre-produced while the nodes are paused; clock from resume to the "
                                 "balances read model (SQLite, following the events topic) having the last "
                                 "payment; its balances then checked against the workload's, every channel"},
        "by_nodes": by_nodes,
        "on_paper": {"node_cpu_payments_per_s_per_core": per_core,
                     "method": "payments / node CPU seconds (user + system, /proc) over the throughput window, "
                               "the more costly of the node counts; N cores: N times it, with the producer, "
                               "the broker and the read model on cores of their own"},
        "latency_by_load": latency,
        "latency": {**next((r for r in latency if r["offered_per_s"] == 1000), latency[0] if latency else {}),
                    "method": "producer hand-over -> PaymentAccepted received by a read_committed consumer; "
                              "to_event: until the node produced that record (its timestamp), event_to_read: "
                              "its transaction committed and the record read"},
    }


def _check_throughput_run(thr: Any, payments: int) -> None:
    """A throughput figure counts only if every payment was accepted and the read model is right."""
    if not thr.complete or thr.accepted != payments:
        raise RuntimeError(f"Kafka run incomplete: {thr.accepted} of {payments} accepted ({thr.notes})")
    if thr.balances is None or thr.balances["mismatched"]:
        raise RuntimeError(f"the balances read model disagrees with the workload after the run: {thr.balances}")


def _delete_topics(kafka: KafkaAccess, topics: list[str]) -> None:
    from kafka import KafkaAdminClient

    try:
        admin = KafkaAdminClient(**kafka.kafka_python(request_timeout_ms=5000))
        try:
            admin.delete_topics(topics)
        finally:
            admin.close()
    except Exception:
        pass


def confluent_raw(kafka: KafkaAccess | str, messages: int = 20_000, size: int | None = None) -> dict[str, Any]:
    """confluent-kafka (librdkafka) on the same messages as ``kafka_raw``, for comparison."""
    try:
        import confluent_kafka as ck
        import confluent_kafka.admin  # makes ck.admin available
    except ImportError:
        raise SkipSection("confluent-kafka is not installed (pip install confluent-kafka)") from None
    if size is None:
        size = len(make_workload(1, 1)[1][0])
    k = _access(kafka)
    conf = raw_clients_config(k)
    topic = f"parsec.bench.ckraw.{uuid.uuid4().hex[:8]}"
    admin = ck.admin.AdminClient(conf["ck_admin"])
    try:
        new = ck.admin.NewTopic(topic, num_partitions=1, replication_factor=k.replication_factor,
                                config=k.topic_configs())
        admin.create_topics([new])[topic].result(10)
    except Exception as exc:
        raise SkipSection(f"no Kafka broker at {k.bootstrap}: {exc}") from None
    try:
        payload = b"x" * size
        producer = ck.Producer(conf["ck_producer"])
        start = time.perf_counter()
        for i in range(messages):
            while True:
                try:
                    producer.produce(topic, key=str(i % 100).encode(), value=payload, partition=0)
                    if i % 1000 == 0:
                        producer.poll(0)  # serve delivery reports
                    break
                except BufferError:
                    producer.poll(0.01)
        producer.flush(30)
        produce_s = time.perf_counter() - start
        consumer = ck.Consumer(conf["ck_consumer"])
        consumer.assign([ck.TopicPartition(topic, 0, ck.OFFSET_BEGINNING)])
        got, start = 0, time.perf_counter()
        deadline = time.monotonic() + 60
        while got < messages and time.monotonic() < deadline:
            got += sum(1 for m in consumer.consume(num_messages=5_000, timeout=0.1) if m.error() is None)
        consume_s = time.perf_counter() - start
        consumer.close()
    finally:
        admin.delete_topics([topic])
    return {
        "client": f"confluent-kafka {ck.version()[0]} (librdkafka {ck.libversion()[0]})",
        "message_bytes": size, "messages": messages,
        "produce_per_s": round(messages / produce_s), "consume_per_s": round(got / consume_s),
        "produce_then_consume_per_s": round(messages / (produce_s + consume_s)),
    }


def replay(postgres_dsn: str | None, quick: bool = False) -> tuple[dict[str, Any], list[dict[str, Any]], str | None]:
    """Read-model rebuild rate (events/s) per backend, on a log made by the demo workload."""
    from infrastructure.tools.demo import Demo
    from infrastructure.tools.projections_bench import bench_rebuild
    from projections import registry
    from projections.source import ApplicationEventSource
    from projections.sqlite import SQLiteStore

    payments = 4_000 if quick else 20_000
    skipped = None
    with tempfile.TemporaryDirectory(prefix="parsec-bench-replay-") as tmp:
        settings = Settings(data_dir=Path(tmp), event_store="sqlite")
        app = bootstrap.channel_service(settings, sqlite_path=Path(tmp) / "events.sqlite")
        Demo(app, channels=50, payments=payments, seed=7).run()
        source = ApplicationEventSource.of(app)
        models = list(registry.read_models().values())
        stores: dict[str, Any] = {"sqlite": SQLiteStore(Path(tmp) / "readmodels.sqlite")}
        schema = None
        if postgres_dsn:
            try:
                from projections.postgres import PostgresStore

                schema = f"bench_{uuid.uuid4().hex[:8]}"
                stores["postgres"] = PostgresStore(postgres_dsn, schema=schema)
            except Exception as exc:
                skipped = f"PostgreSQL at the DSN is unreachable: {type(exc).__name__}: {exc}"
                schema = None
        else:
            skipped = "no PostgreSQL DSN (--postgres or PARSEC_POSTGRES_DSN)"
        try:
            results = bench_rebuild(source, stores, models, batch_size=1000)
        finally:
            if schema:
                stores["postgres"].drop_schema()
            for st in stores.values():
                st.close()
            app.close()
    rates = {r.backend: round(r.rate) for r in results if r.read_model == "all"}
    detail = [{"backend": r.backend, "read_model": r.read_model, "events": r.events, "seconds": round(r.seconds, 3),
               "events_per_s": round(r.rate)} for r in results]
    return rates, detail, skipped


def gas() -> dict[str, Any]:
    from infrastructure.tools.gas_report import measure

    return measure()


SECTIONS: dict[str, Callable[..., dict[str, Any]]] = {}


def multihop_payments(quick: bool = False) -> dict[str, Any]:
    """Multi-hop payments on the embedded network (infrastructure/tools/multihop.py), one process.

    Throughput: random payments between parties that share no channel, started 5 per simulated
    second, no failing hop, wall time of the whole run (agents not saving state, and a smaller run
    with saving). Latency: payments one at a time on a quiet network, in pump rounds (one round:
    every agent handles what reached it and acts) and in simulated seconds (the clock moves 1 s
    between rounds of work)."""
    import logging
    import random

    from infrastructure.tools import multihop

    logging.getLogger("parsec.mediation").setLevel(logging.ERROR)
    n = 200 if quick else 1000
    cfg = multihop.MultiHopConfig(parties=20, channels=60, payments=n, seed=11)
    fast = multihop.run(cfg)
    saving = multihop.run(multihop.MultiHopConfig(parties=20, channels=60, payments=n // 5, seed=11, save_state=True))
    for r in (fast, saving):
        if not r.ok or r.pending:
            raise RuntimeError(f"the multi-hop benchmark run failed its checks: {r.to_dict()['checks']}")
    rng = random.Random(5)
    sim = multihop.build(multihop.MultiHopConfig(parties=10, channels=30, seed=5), rng)
    rounds, seconds = [], []
    for _ in range(10 if quick else 40):
        a, b = multihop._pair(rng, sim)
        payer = sim.agents[a]
        pid = payer.pay(sim.agents[b].me, multihop.UNIT, sim.net.now)
        r, t0 = sim.net.pump(), sim.net.now
        while payer.payment(pid).status == "pending" and sim.net.now - t0 < 60:
            r += multihop._advance(sim.net, 1)
        if payer.payment(pid).status != "succeeded":
            raise RuntimeError(f"an isolated multi-hop payment did not succeed: {payer.payment(pid).to_json()}")
        rounds.append(r)
        seconds.append(sim.net.now - t0)
        multihop._advance(sim.net, 1)  # let the last unlocks land before the next payment
    rounds.sort()
    seconds.sort()
    d = fast.to_dict()
    return {"payments": n, "parties": 20, "channels": 60, "succeeded": d["succeeded"], "hops_mean": d["hops"]["mean"],
            "wall_seconds": d["wall_seconds"], "payments_per_s": d["payments_per_s"],
            "payments_per_s_saving_state": saving.to_dict()["payments_per_s"],
            "in_flight_time_to_complete_s": d["time_to_complete_s"],
            "latency": {"payments": len(rounds), "rounds_p50": rounds[len(rounds) // 2], "rounds_max": rounds[-1],
                        "simulated_s_p50": seconds[len(seconds) // 2], "simulated_s_max": seconds[-1]}}


SECTIONS["multihop"] = multihop_payments


def run(sections: list[str] | None = None, quick: bool = False, kafka_bootstrap: KafkaAccess | str | None = None,
        postgres_dsn: str | None = None) -> dict[str, Any]:
    """Run the benchmark; returns the JSON document. ``kafka_bootstrap``: the Kafka to run against
    (``Settings.kafka``: bootstrap, security, replication; a bare address: plaintext), None: no Kafka."""
    result: dict[str, Any] = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine()}
    skipped: dict[str, str] = {}
    want = set(sections) if sections else None

    def section(name: str, fn: Callable[[], Any]) -> Any:
        if want is not None and name not in want:
            return None
        try:
            return fn()
        except SkipSection as why:
            skipped[name] = str(why)
            return None

    limits = section("limits", lambda: crypto_limits(0.5 if quick else 1.5)) or {}
    limits["cores"] = os.cpu_count()
    n = 4_000 if quick else 20_000
    embedded = section("embedded", lambda: embedded_payments(payments=n))
    verify = section("verify", lambda: parallel_verification(n))
    if kafka_bootstrap:
        raw = section("kafka_raw", lambda: kafka_raw(kafka_bootstrap, 5_000 if quick else 20_000))
        if raw:
            limits["kafka_raw_msgs_per_s"] = raw["produce_then_consume_per_s"]
            result["kafka_raw"] = raw
        ck = section("confluent_raw", lambda: confluent_raw(kafka_bootstrap, 5_000 if quick else 20_000))
        if ck:
            limits["confluent_kafka_raw_msgs_per_s"] = ck["produce_then_consume_per_s"]
            result["confluent_raw"] = ck
        kafka = section("kafka", lambda: kafka_payments(kafka_bootstrap, quick))
        if kafka:
            result["kafka_run"] = kafka
            lat = kafka["latency"]
            result["latency_ms"] = {"p50": lat.get("p50_ms"), "p99": lat.get("p99_ms"),
                                    "offered_load": f"{lat.get('offered_per_s')}/s"}
    else:
        for name in ("kafka_raw", "kafka"):
            skipped[name] = "no Kafka bootstrap given (--kafka or PARSEC_KAFKA_BOOTSTRAP)"
    replayed = section("replay", lambda: replay(postgres_dsn, quick))
    if replayed:
        result["replay_events_per_s"], result["replay"], why = replayed
        if why:
            skipped["replay_postgres"] = why
    gas_figures = section("gas", gas)
    if gas_figures:
        result["gas"] = gas_figures
    for name, fn in SECTIONS.items():
        value = section(name, lambda fn=fn: fn(quick=quick))
        if value is not None:
            result[name] = value
    result["limits"] = limits
    result["payments_per_s"] = {"embedded": embedded["payments_per_s"] if embedded else None,
                                "kafka": result["kafka_run"]["throughput"]["payments_per_s"]
                                if "kafka_run" in result else None}
    if embedded:
        result["embedded_run"] = embedded
    if verify:
        result["verification"] = verify
    result["against_limits"] = against_limits(result)
    if skipped:
        result["skipped"] = skipped
    return result


# issue 17's floors (../shared/design/benchmarks.md has the targets): what each figure is held to
FLOORS = {"kafka_payments_per_s": 10_000, "embedded_payments_per_s": 15_000, "p99_ms_at_1000_per_s": 20,
          "rebuild_sqlite_events_per_s": 100_000}


def against_limits(result: dict[str, Any]) -> dict[str, Any]:
    """Each headline figure beside the limits measured in the same run, as ratios, and its floor."""
    limits = result.get("limits", {})
    cores = limits.get("cores") or 1
    recover_all = (limits.get("recover_per_s_per_core") or 0) * cores or None
    verification = result.get("verification") or {}
    verify_all = verification.get(f"verify_per_s_{cores}_processes")
    out: dict[str, Any] = {}

    def ratio(value: float | None, limit: float | None) -> float | None:
        return round(value / limit, 3) if value and limit else None

    for where in ("kafka", "embedded"):
        value = (result.get("payments_per_s") or {}).get(where)
        if value is None:
            continue
        out[f"{where}_payments_per_s"] = {
            "value": value, "floor": FLOORS[f"{where}_payments_per_s"],
            "recover_limit_all_cores": recover_all, "ratio_to_recover_limit": ratio(value, recover_all),
            "verify_limit_all_cores": verify_all, "ratio_to_verify_limit": ratio(value, verify_all)}
    p99 = (result.get("latency_ms") or {}).get("p99")
    if p99 is not None and (result.get("latency_ms") or {}).get("offered_load") == "1000/s":
        out["p99_ms_at_1000_per_s"] = {"value": p99, "floor": FLOORS["p99_ms_at_1000_per_s"],
                                       "ratio_to_floor": ratio(p99, FLOORS["p99_ms_at_1000_per_s"])}
    rebuild = (result.get("replay_events_per_s") or {}).get("sqlite")
    if rebuild:
        out["rebuild_sqlite_events_per_s"] = {"value": rebuild, "floor": FLOORS["rebuild_sqlite_events_per_s"],
                                              "ratio_to_floor": ratio(rebuild, FLOORS["rebuild_sqlite_events_per_s"])}
    return out
