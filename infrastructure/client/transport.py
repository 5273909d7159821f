"""How a wallet hands a signed payment to the network: Kafka directly, or the REST API.

A transport answers one of three ways, and the wallet records each differently:

* a :class:`Delivery` (partition, offset): the payment is on the inbound topic; the node decides;
* :class:`PaymentRefused`: refused before it reached the inbound topic, with the reason (the API
  validated it as the node would): it will never be applied, so its sequence is free again;
* :class:`DeliveryUnknown` (a ``ConnectionError``): no answer, or an answer that says nothing
  about the payment (401, 429, 5xx, a timeout): it may or may not be on the inbound topic, so the
  wallet keeps it ``recorded`` and re-sends the same bytes later (a repeat is a no-op at the node).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

from domain.errors import ParsecError


@dataclass(frozen=True)
class Delivery:
    partition: int
    offset: int


class PaymentRefused(ParsecError):
    """The API refused the payment, with the node's reason code (``reason``) and its ``detail``."""

    def __init__(self, reason: str, detail: str, status: int | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.refusal, self.detail, self.status = reason, detail, status

    @property
    def reason(self) -> str:  # type: ignore[override]  # the refusal's own reason, as the node names it
        return self.refusal


class DeliveryUnknown(ConnectionError):
    """The payment may or may not have reached the inbound topic: re-send the same bytes later."""


class Transport(Protocol):
    name: str

    def send(self, raw: bytes, channel: UUID) -> Delivery:
        """Hand over one signed payment (its exact bytes); :class:`PaymentRefused` or
        :class:`DeliveryUnknown` otherwise."""
        ...

    def close(self) -> None: ...


class KafkaTransport:
    """Produce to the inbound topic with the node's own ``Sender`` (idempotent, ``acks=all``, keyed
    and partitioned by channel id like the channel's events)."""

    name = "kafka"

    def __init__(self, sender: Any, timeout: float = 15.0) -> None:
        self.sender, self.timeout = sender, timeout

    def send(self, raw: bytes, channel: UUID) -> Delivery:
        try:
            sent = self.sender.sent(self.sender.payment(raw, channel), timeout=self.timeout)
        except Exception as err:  # kafka-python's KafkaError family and timeouts: the outcome is unknown
            raise DeliveryUnknown(f"Kafka did not acknowledge the payment: {type(err).__name__}: {err}") from err
        return Delivery(sent.partition, sent.offset)

    def close(self) -> None:
        self.sender.close()


# HTTP statuses that say nothing about the payment itself: the same bytes may be sent again
_RETRYABLE = {401, 403, 408, 425, 429}


class HttpTransport:
    """``POST {url}/v1/payments`` with the signed invoice JSON as the body and a bearer token.

    202 ``{"partition", "offset", "channel", "sequence"}``: delivered. A 4xx
    ``application/problem+json`` (``type``, ``title``, ``status``, ``detail``, ``reason``) is a
    refusal of the payment, except 401/403/408/425/429, which refuse the *request* (token, rate):
    those, 5xx and network errors leave the outcome unknown."""

    name = "api"

    def __init__(self, url: str, token: str | None, timeout: float = 15.0, max_rate_wait: float = 30.0) -> None:
        self.url = url.rstrip("/") + "/v1/payments"
        self.token, self.timeout, self.max_rate_wait = token, timeout, max_rate_wait

    def send(self, raw: bytes, channel: UUID) -> Delivery:
        # 429: the API's rate limit, not the payment's fate: wait what Retry-After says and send the same
        # bytes again, up to max_rate_wait seconds in all (then the outcome is left unknown)
        waited = 0.0
        while True:
            try:
                return self._send_once(raw)
            except _RateLimited as limited:
                if waited + limited.retry_after > self.max_rate_wait:
                    raise DeliveryUnknown(str(limited)) from None
                time.sleep(limited.retry_after)
                waited += limited.retry_after

    def _send_once(self, raw: bytes) -> Delivery:
        headers = {"Content-Type": "application/json", "Accept": "application/json, application/problem+json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url, data=raw, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status, body = response.status, response.read()
        except urllib.error.HTTPError as err:
            status, body = err.code, err.read()
            if status == 429:
                try:
                    retry_after = max(0.05, min(float(err.headers.get("Retry-After") or 1), 10.0))
                except ValueError:
                    retry_after = 1.0
                raise _RateLimited(f"the API answered 429: {_problem(body).get('detail', 'rate limited')}",
                                   retry_after) from None
        except (urllib.error.URLError, OSError, TimeoutError) as err:
            raise DeliveryUnknown(f"the API at {self.url} did not answer: {err}") from err
        if status in (200, 201, 202):
            try:
                doc = json.loads(body)
                return Delivery(int(doc["partition"]), int(doc["offset"]))
            except (ValueError, KeyError, TypeError) as err:
                raise DeliveryUnknown(f"the API answered {status} without a partition and offset: {body[:200]!r}") \
                    from err
        problem = _problem(body)
        detail = problem.get("detail") or problem.get("title") or body[:200].decode("utf-8", "replace")
        if status in _RETRYABLE or status >= 500 or not 400 <= status < 500:
            raise DeliveryUnknown(f"the API answered {status}: {detail}")
        raise PaymentRefused(str(problem.get("reason") or problem.get("title") or f"HTTP{status}"), str(detail), status)

    def close(self) -> None:
        pass


class _RateLimited(Exception):
    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _problem(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}
