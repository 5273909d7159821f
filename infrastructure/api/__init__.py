"""The REST API (``parsec api``): FastAPI over the node's topics, the read models and the log.

Writes (a signed payment, a signed control request) are verified here as far as a node could
verify them without the channel's state, then produced to the inbound or control topic: the node
stays the one that decides. Reads come from the read models (``projections/``) and, for the
server-sent events of ``/v1/events``, from the log itself. ``app.create_app`` builds the app from
an ``ApiServices`` that the composition root (``infrastructure.bootstrap.api_services``) wires;
this package never imports the root. docs/api.md is the reference; docs/openapi.json is the
OpenAPI document (a unit test keeps it equal to the app's).
"""
