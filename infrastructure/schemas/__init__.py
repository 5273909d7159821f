"""Versioned JSON Schemas of every message Parsec puts on Kafka (the top-level ``schemas/`` directory).

* ``registry``: the list of schemas (name, current version, the pydantic model each is generated from,
  its topic), the ``parsec.schema`` record header, generating and loading the files.
* ``models``: pydantic models of the wire forms that had none (hop messages, the Channel events as
  stored), written to describe those bytes exactly; their schemas are generated like the others.
* ``validation``: a document against a schema, with the JSON path and the reason of each failure
  (``parsec schema check``, and the detail of the node's and the API's refusals).
* ``compat``: whether a new version of a schema can read everything its previous version described.

This package imports no other part of ``infrastructure`` at module level: the node imports it, and the
registry names the node's models by dotted path (imported when a schema is generated), so the two never
form an import cycle.
"""
