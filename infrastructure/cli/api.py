"""``parsec api``: the REST API (docs/api.md)."""

from __future__ import annotations

import argparse
import json
import logging

from infrastructure import bootstrap
from infrastructure.cli.exits import UsageError
from infrastructure.cli.options import add_command, add_settings_flags
from infrastructure.settings import Settings, variable

log = logging.getLogger("parsec.api")

EPILOG = """\
Every write endpoint needs Authorization: Bearer <token>, one of PARSEC_API_TOKENS (comma-separated)
or of the lines of PARSEC_API_TOKEN_FILE; without any, the API refuses to start unless given
--insecure-no-token (development only: anyone who reaches the port may then produce payments and
control requests). Reads, /healthz, /readyz and /metrics need no token.

  PARSEC_API_TOKENS=$(openssl rand -hex 32) parsec --event-store kafka api --port 8080
  parsec api --openapi > docs/openapi.json     # the OpenAPI document, regenerated
"""

SERVER_FIELDS = ("api_host", "api_port")


def cmd_api(args: argparse.Namespace, settings: Settings) -> int:
    """Serve the REST API: payments and control requests in, read models and the log's events out.

    POST /v1/payments (a signed invoice, verified, produced to the inbound topic), POST
    /v1/channels/{id}/checkpoint|settlement|dispute (signed control requests, to the control topic),
    GET /v1/channels, /v1/channels/{id}, .../history, .../settlements, /v1/participants/{address}/balances
    (the read models, paginated), GET /v1/events (server-sent events of accepted payments, refusals,
    checkpoints and settlements, resumable with Last-Event-ID), /healthz, /readyz, /metrics. Refusals
    are application/problem+json with the refusing check's name as `reason`. SIGTERM or Ctrl-C stops it.
    """
    if args.openapi:
        from infrastructure.api.app import openapi_document

        print(json.dumps(openapi_document(settings), indent=2))
        return 0
    import uvicorn

    if logging.getLogger("parsec").getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("kafka").setLevel(logging.WARNING)  # kafka-python logs every connection at INFO
    if not (settings.api_tokens or settings.api_token_file or args.insecure_no_token):
        raise UsageError("the write endpoints need a token: set PARSEC_API_TOKENS or --api-token-file "
                         "(or --insecure-no-token, for development only)")
    app = bootstrap.api_app(settings, insecure_no_token=args.insecure_no_token, events_db=args.events_db,
                            follow=args.follow)
    if args.insecure_no_token and not (settings.api_tokens or settings.api_token_file):
        log.warning("write endpoints are open to anyone who reaches %s:%d (--insecure-no-token)",
                    settings.api_host, settings.api_port)
    uvicorn.run(app, host=settings.api_host, port=settings.api_port, log_level=settings.log_level.lower(),
                access_log=settings.log_level == "DEBUG", server_header=False)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, cmd_api, epilog=EPILOG)
    p.add_argument("--host", dest="api_host", default=argparse.SUPPRESS,
                   help=f"{Settings.model_fields['api_host'].description} (env {variable('api_host')}, "
                        "default 127.0.0.1)")
    p.add_argument("--port", dest="api_port", type=int, default=argparse.SUPPRESS,
                   help=f"{Settings.model_fields['api_port'].description} (env {variable('api_port')}, default 8080)")
    p.set_defaults(settings_flags=SERVER_FIELDS)
    add_settings_flags(p, "api_token_file", "api_max_body_bytes", "api_rate", "api_burst", "api_ready_timeout",
                       "inbound_topic", "control_topic", "rejected_topic", "events_topic", "settlement_topic",
                       "partitions")
    p.add_argument("--insecure-no-token", action="store_true",
                   help="serve the write endpoints with no token configured (development only)")
    p.add_argument("--follow", action="store_true",
                   help="also keep the read models current from the log in this process (what `parsec "
                        "projections run` does; safe beside one)")
    p.add_argument("--openapi", action="store_true", help="print the OpenAPI document and exit")
    p.add_argument("--events-db", help="SQLite event store file (default <data dir>/events.sqlite)")
