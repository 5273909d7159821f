"""Every way a Parsec message or command can be refused, one type each.

A caller that catches :class:`ParsecError` gets a message a user can act on;
the type says *why* (the node records ``type(exc).__name__`` as the reason).
"""

from __future__ import annotations


class ParsecError(ValueError):
    """Base of every refusal. ``reason`` is a short stable code for logs and topics."""

    @property
    def reason(self) -> str:
        return type(self).__name__


# --- money ---------------------------------------------------------------
class CurrencyNotAllowed(ParsecError):
    pass


class InvalidAmount(ParsecError):
    pass


class TooManyDecimals(InvalidAmount):
    pass


class AmountOutOfRange(InvalidAmount):
    pass


# --- identity and cryptography -------------------------------------------
class InvalidAddress(ParsecError):
    pass


class InvalidPublicKey(ParsecError):
    pass


class AddressMismatch(ParsecError):
    """An address does not belong to the key it is paired with."""


class InvalidSignature(ParsecError):
    pass


class HighSSignature(InvalidSignature):
    pass


class WrongSigner(InvalidSignature):
    pass


class WrongDomain(ParsecError):
    """Signed for another chain id or another contract."""


class MalformedMessage(ParsecError):
    pass


# --- channel rules -------------------------------------------------------
class ChannelError(ParsecError):
    pass


class UnknownChannel(ChannelError):
    pass


class ChannelAlreadyExists(ChannelError):
    pass


class NotAParticipant(ChannelError):
    pass


class WrongChannel(ChannelError):
    pass


class BrokenHashPointer(ChannelError):
    pass


class SequenceGap(ChannelError):
    """The payment is ahead of the channel's head: an earlier one is missing."""


class ConflictingPayment(ChannelError):
    """A different payment already holds this sequence number (a fork)."""


class StalePayment(ChannelError):
    """Older than what the channel still remembers; cannot tell a repeat from a fork."""


class CumulativeTotalMismatch(ChannelError):
    pass


class Overspend(ChannelError):
    pass


class ChannelClosed(ChannelError):
    pass


class ChannelNotOpen(ChannelError):
    pass


class InvalidChannelParameters(ChannelError):
    pass


class CurrencyMismatch(ChannelError):
    pass


class OutOfWindow(ChannelError):
    """A transaction too far ahead of its channel's head to be held for reordering."""


class WindowExpired(ChannelError):
    """A held transaction whose predecessors never arrived in time."""
