"""The Faust app, built in one place. Agents stay thin: parse, hand to the pure core, write.

Run it with ``ecowatch worker``. One agent, ``enforce`` (streams/worker/enforcement.py), reads the
readings: it takes each (device, time) once, stores the batch's new readings here
(:func:`store_readings`), and judges them. Offsets are committed only after a batch is in
InfluxDB, so a worker that dies re-reads, never skips; what it had already taken is then a
repeat, skipped.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter
from typing import Any

import faust

from ecowatch import topics
from ecowatch.clock import Clock, SystemClock
from ecowatch.config.catalogue import load_catalogue
from ecowatch.config.kafka_accounts import Role, access_for
from ecowatch.config.settings import Settings
from ecowatch.edges.files import private_dir
from ecowatch.edges.kafka import SCRAM, KafkaAccess, read_range
from ecowatch.edges.tokens import load_tokens
from ecowatch.ingest.dead_letters import DeadLetters
from ecowatch.schema import Reading, ReadingSource, RejectReason
from ecowatch.stall import STALLED_EXIT_CODE, PartitionWatch, StallWatch
from ecowatch.streams.api.requests import MAX_BODY_BYTES
from ecowatch.streams.api.views import install_api
from ecowatch.streams.storage.points import store_lines
from ecowatch.streams.storage.proofs import ProofStore
from ecowatch.streams.storage.store import InfluxWriter, PermanentWriteError
from ecowatch.streams.worker.enforcement import Enforcement

log = logging.getLogger(__name__)

# How old the consumer's view of Kafka's topics may grow (aiokafka's default: 5 minutes).
METADATA_MAX_AGE_MS = 10_000


def _credentials(kafka: KafkaAccess) -> faust.SASLCredentials | None:
    if not kafka.username:
        return None
    return faust.SASLCredentials(username=kafka.username, password=kafka.password, mechanism=SCRAM)


class FaustDeadLetterTopic:
    """The worker's dead letters go out through Faust's producer, on the worker's principal:
    ``send`` returns the future of Kafka's acknowledgement, as ``ecowatch.edges.kafka.Producer``'s
    does. Faust flushes its producer before it commits offsets, so a record's letter is in
    Kafka before the record is committed."""

    def __init__(self, topic: faust.TopicT) -> None:
        self._topic = topic

    async def send(
        self, topic: str, value: bytes, *, key: bytes | None = None
    ) -> asyncio.Future[Any]:
        assert topic == self._topic.get_topic_name()
        return await self._topic.send(key=key, value=value)  # type: ignore[return-value]


def rss_bytes() -> int:
    """This process's resident memory now (Linux); elsewhere its peak so far."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def create_app(settings: Settings, clock: Clock | None = None) -> faust.App:
    clock = clock or SystemClock()
    catalogue = load_catalogue(settings.catalogue_folder())
    worker_kafka = access_for(settings, Role.WORKER)
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        # Signed in as the worker's principal: the only one Kafka lets write commands, case
        # events and officers' actions (config/kafka_accounts.py).
        broker_credentials=_credentials(worker_kafka),
        # Faust makes only the last folder of its datadir: the rest must exist (a new machine).
        datadir=str(private_dir(settings.state_dir / "faust" / settings.app_id)),
        store="memory://",
        topic_partitions=settings.kafka_partitions,
        # Faust listens on web_bind (all interfaces by default); web_host only names it.
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        # Announced to the other workers of the group, which forward case API requests here.
        canonical_url=settings.web_url or f"http://{settings.web_host}:{settings.web_port}",
        web_in_thread=False,
        # Faust's own pages (/table/ reads any table key, /router/ shows the cluster, the
        # statistics, graph and metrics) answer without a token: off. What is left: the case
        # API, /health, and Faust's plain index at / ({"status": "OK"}).
        web_tables_enabled=False,
        web_router_enabled=False,
        web_stats_enabled=False,
        web_graph_enabled=False,
        web_metrics_enabled=False,
        # Larger request bodies are refused (413) before a view reads them.
        web_application_options={"client_max_size": MAX_BODY_BYTES},
        # Faust's settings come from here only: its environment variables (WEB_BIND,
        # APP_WEB_TABLES_ENABLED, ...) would override these, and ECOWATCH_* are the settings.
        env={},
        producer_acks=-1,
        # A worker that dies without leaving the group holds its partitions until the session
        # times out: keep that short, so a restarted worker resumes within seconds.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
        # A group that forms while Kafka is still loading its topics hands out no partitions,
        # and aiokafka rejoins only when its metadata shows them: by default after 5 minutes
        # (metadata_max_age_ms). A storm's restarted worker stood idle that long; 10 s costs
        # one small request.
        consumer_metadata_max_age_ms=METADATA_MAX_AGE_MS,
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer="raw",
    )
    dead_letters = DeadLetters(
        FaustDeadLetterTopic(
            app.topic(topics.READINGS_DLQ, key_serializer="raw", value_serializer="raw")
        ),
        source=ReadingSource.KAFKA,
        clock=clock,
    )
    writer = InfluxWriter(
        settings.influx_url,
        settings.influx_token.get_secret_value(),
        settings.influx_org,
        settings.influx_bucket,
    )
    counts: Counter[str] = Counter()

    async def store_readings(readings: list[Reading]) -> None:
        """Write readings' points; a batch InfluxDB refuses is halved until the readings it
        refuses are alone, and only those are dead-lettered: one bad reading never takes the
        good ones of other devices with it."""
        try:
            lines, points, derived_points = store_lines(readings, settings.aqi_standard)
            await writer.write(lines, points + derived_points)
        except (PermanentWriteError, ValueError, OverflowError) as exc:
            if len(readings) > 1:
                half = len(readings) // 2
                await store_readings(readings[:half])
                await store_readings(readings[half:])
                return
            log.error("InfluxDB refused a reading of %s: %s", readings[0].device, exc)
            await dead_letters.send(
                readings[0].to_json(),
                RejectReason.STORE_REJECTED,
                str(exc),
                origin=topics.READINGS,
            )
            return
        counts["stored_readings"] += len(readings)
        counts["stored_points"] += points
        counts["derived_points"] += derived_points

    enforcement = Enforcement(
        app,
        catalogue,
        clock,
        writer,
        settings.tick_seconds,
        aqi_standard=settings.aqi_standard,
        dead_letters=dead_letters,
        store=store_readings,
        read_back=lambda m: read_range(worker_kafka, m.topic, m.partition, m.start, m.stop),
    )
    tokens, proofs = load_tokens(settings.officer_tokens), ProofStore(settings.proof_folder)
    install_api(app, enforcement, catalogue, tokens, clock, proofs)

    def letter_counts() -> dict[str, object]:
        """The worker's dead letters in its /health (``dead_lettered``: in Kafka)."""
        letters = dead_letters.counts.as_dict()
        del letters["suppressed_by_reason"]  # the worker holds no device to a budget
        return letters

    @app.timer(interval=30.0)
    async def report() -> None:
        if counts or dead_letters.counts.total or dead_letters.counts.lost:
            log.info(
                "store: %s; dead letters: %s; enforce: %s",
                dict(counts),
                letter_counts(),
                dict(enforcement.counts),
            )

    # A batch taken and never done for ECOWATCH_STALL_SECONDS is a stall (InfluxDB away, or a
    # worker stuck): said once and in /health; as long again, unless InfluxDB is away, and the
    # worker exits (75) for its keeper to start it again. Its offsets were not committed: the
    # batch is read again.
    # Real seconds, whatever the worker's clock: a stall is the process standing still, and a
    # scaled clock (the soak's) would make 30 s a few milliseconds.
    stall = StallWatch("worker", settings.stall_seconds)

    def why_stalled() -> str:
        if writer.outage.active:
            return f"InfluxDB at {writer.outage.address} is unavailable; the batch is retried"
        return "a batch of readings has not finished"

    # Ready and holding no partition of the readings: nothing is taken, so no count shows it.
    unassigned = PartitionWatch("worker", topics.READINGS, settings.stall_seconds)

    def ready() -> bool:
        # Ready: the tables are recovered from their changelogs and partitions assigned.
        return app.tables.recovery.completed.is_set() and not app.rebalancing

    def readings_partitions() -> int:
        return sum(1 for tp in app.consumer.assignment() if tp.topic == topics.READINGS)

    @app.timer(interval=1.0)
    async def watch_stall() -> None:
        held = readings_partitions()
        said = unassigned.observe(ready(), held)
        if said:
            (log.info if held else log.warning)(said)
        c = enforcement.counts
        line = stall.observe(c["batches_taken"], c["batches_done"], why_stalled)
        if line:
            (log.error if stall.stalled else log.warning)(line)
        # Waiting for InfluxDB is no fault of the worker's: a restart would only recover its
        # tables again to wait some more. Any other stall is one it cannot leave by itself.
        if stall.gave_up() and not writer.outage.active:
            log.error(
                "worker: stood still for %.0f s (%s); exiting for its keeper to start it again",
                2 * stall.after,
                stall.why,
            )
            logging.shutdown()
            os._exit(STALLED_EXIT_CODE)

    @app.page("/health")
    async def health(web, request):
        return web.json(
            {
                "status": "ok",
                "ready": ready(),
                "readings_partitions": readings_partitions(),
                **counts,
                **letter_counts(),
                **enforcement.counts,
                **enforcement.delay_figures(),
                **stall.as_dict(),
                # What the worker holds: each table's keys, bytes and largest value, and its
                # resident memory. Nothing of it should grow past one retention's worth.
                "tables": enforcement.table_sizes(),
                "rss_bytes": rss_bytes(),
            }
        )

    @app.on_before_shutdown.connect
    async def close_writer(app: faust.App, **kwargs: object) -> None:
        await writer.close()

    return app
