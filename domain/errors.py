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


class ChannelIsClosed(ChannelError):
    """Nothing more is accepted: the channel is closed (``Channel.ChannelClosed`` is the event)."""

    @property
    def reason(self) -> str:
        return "ChannelClosed"  # consumers of the rejected topic match this code


class ChannelNotOpen(ChannelError):
    pass


class InvalidChannelParameters(ChannelError):
    pass


class ChallengePeriodTooShort(InvalidChannelParameters):
    """Below this service's minimum: a watchtower that may be offline for a while needs time to answer."""


class CurrencyMismatch(ChannelError):
    pass


# --- kinds of transaction and hashed timelocks -----------------------------
class UnknownTransactionKind(MalformedMessage):
    """The transaction names a kind no catalogue entry (built-in or plugin) describes."""


class LockedAmountMismatch(ChannelError):
    """lockedAmount is not the sum of the buyer's pending locks after this transaction."""


class LocksRootMismatch(ChannelError):
    """locksRoot is not the root over the buyer's pending locks after this transaction."""


class TooManyLocks(ChannelError):
    """The buyer already has the most pending locks a channel direction may hold."""


class LockLifetimeTooLong(ChannelError):
    """A lock's expiry is past now + the channel's challenge period (or not in the future)."""


class LockAlreadyPending(ChannelError):
    """A pending lock of this buyer already has this secret hash."""


class LockNotFound(ChannelError):
    """No pending lock of this buyer has this secret hash."""


class WrongSecret(ChannelError):
    """The secret does not hash (sha256) to the lock's secret hash."""


class LockNotExpired(ChannelError):
    """A lock is removed as expired only after its expiry plus the safety margin."""


class LockAmountMismatch(ChannelError):
    """The transaction's price or terms disagree with the lock's amount."""


class SecretOfNoPendingLock(ChannelError):
    """A secret asked to be registered on-chain whose sha256 is the hash of no pending lock of the channel."""


class OutOfWindow(ChannelError):
    """A transaction too far ahead of its channel's head to be held for reordering."""


class WindowExpired(ChannelError):
    """A held transaction whose predecessors never arrived in time."""


# --- control requests and notices (docs/protocol.md, "Control requests and notices") --
class UnsignedRequest(ParsecError):
    """A control request or notice that carries no signature."""


class BadRequestSignature(InvalidSignature):
    """A control signature that is not 65 bytes r‖s‖v, has a high s, or recovers no key."""


class UnauthorizedRequest(ParsecError):
    """Signed, but by someone who may not ask this: not a participant, its operator, or a trusted settler."""


class RequestExpired(ParsecError):
    """A signed request whose expiry is before the node's clock."""


class ReplayedRequest(ParsecError):
    """A signed request whose nonce is not above the last one the channel accepted from its signer."""
