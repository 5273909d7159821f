// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @title Parsec payment channels: many two-party channels, in native ETH or in the BTC token.
/// @notice The byte-exact protocol is docs/protocol.md. What a buyer signs off-chain (an EIP-712
/// `Payment`, domain "Parsec" v"1") is exactly what this contract verifies.
///
/// Storage: a channel costs two fresh slots at open. Its immutable parameters (participants,
/// token, challenge period) are kept as one hash and passed back in calldata by every call
/// (as Raiden does with participant addresses); deposits, status and the settlement deadline
/// share one slot; each participant's latest proof (total sent + sequence) has one slot. The
/// head is the recorded proof with the highest sequence; its digest is not stored (a fresh
/// 32-byte slot would cost 22,100 gas on the first close): a disputed settlement re-supplies
/// the head payment, which must carry the recorded buyer, sequence and total and be signed by
/// that buyer; its digest is then the hash the first disputed payment must point to.
///
/// Evidence rule: a participant's signed payment counts only when submitted by the participant
/// it pays (or that participant's operator). A buyer never submits its own proofs, so it cannot
/// push a self-signed payment with an inflated sequence to freeze its recorded total. (In a
/// disputed settlement the submitter's own payments are carried by the counterparty's later
/// signature, which hash-links to them.)
///
/// Settlement arithmetic (Raiden's): nothing is checked for solvency when proofs are recorded;
/// `settle` pays balanceA = clamp(dA + sentB - sentA, 0, dA + dB) and balanceB = total -
/// balanceA. This cannot be gamed. Take an honest participant H and a dishonest D. Only H (or
/// H's operator) can record D's proofs, so H records D's latest one and sentD recorded = D's
/// true total; every recorded proof of H is a payment H really signed, and H's totals only go
/// up, so sentH recorded <= H's true total. Hence H's settled balance dH + sentD - sentH
/// recorded >= H's true balance (capped at the total), and D gets at most its true balance.
/// Hiding the honest party's payments only hurts the one who hides them; when both sides'
/// newest proofs are recorded the payout is exactly the newest co-signed state.
///
/// Hashed timelocks (issue 14; spec docs/protocol.md "Hashed timelocks on-chain"). A proof also carries the buyer's
/// pending locks: lockedAmount and locksRoot = keccak256 of the locks packed as
/// (uint64 expiry, uint128 amount, bytes32 secretHash), 56 bytes each, in the order added.
/// Storage: a participant's lock state is one slot, keccak256(lockedAmount, locksRoot) (Raiden's
/// trick: both bound, one slot), in `locksHashOf`, written only when a proof carries locks or
/// clears them; a flag in the participant's proof slot (already written) says whether it is
/// set, so a lock-free channel never reads or writes it. The root alone would not do: a settle
/// that does not decide the locks must know how much to hold back without the locks themselves.
/// The locks supplied at settle/unlock must hash to the recorded root AND sum to the recorded
/// lockedAmount (a receiver accepts only proofs whose lockedAmount is the sum of their locks).
/// A lock is decided by the registry below: secret registered at or before its expiry -> the
/// lock's receiver; otherwise, once expired -> back to its sender. The domain caps a lock's
/// lifetime at the challenge period, so at settle every lock recorded before the close expired.
///
/// Locks in the arithmetic: with base = dA + sentB - sentA, x the amount of A's locks paid to B
/// and y that of B's locks paid to A, A's final balance is clamp(base + y - x, 0, dA + dB).
/// The argument above extends: H records D's latest proof, so D's recorded locks are D's true
/// pending locks (D cannot hide a lock it owes H: its newer proofs are H's to record, and an
/// older proof of D has a total not higher, and its pending locks decide by the same secret).
/// D may hide H's newer proofs, leaving an older proof of H recorded: a lower total or a lock
/// H had already paid (unlocked: moved into sentH) still pending. Either way sentH + (what
/// H's recorded locks pay D) <= H's true total: a still-pending lock pays D only if D
/// registers the secret by its expiry, the same amount the unlock moved into sentH, and a lock
/// expired off-chain can only be pending in an older proof with a lower-or-equal total plus
/// that lock. So H's payout is at least its true balance; hiding only hurts the hider.
/// A settle that does not decide the locks (`settleHoldingLocks`) pays each side the least it
/// can end with (clamp(base - lockedA) to A, dA + dB - clamp(base + lockedB) to B) and keeps
/// the rest until `unlock` decides every lock of both sides at once (clamping couples them).
contract ParsecChannels {
    // ---------------------------------------------------------------- types
    struct ChannelParams {
        address a; // opener
        address b; // counterparty
        address token; // address(0) = native ETH, else the BTC token
        uint32 challengePeriod; // seconds
    }

    /// A signed Payment as the contract receives it. channelId, supplier (the other participant)
    /// and currency (from the channel's token) are implied; invoiceType arrives as its keccak-256,
    /// which is how EIP-712 encodes a string, so the digest is the same.
    struct SignedPayment {
        uint64 sequence;
        bytes16 invoiceId;
        address buyer;
        uint128 price;
        uint128 buyerTotal;
        uint128 lockedAmount;
        bytes32 locksRoot;
        bytes32 invoiceTypeHash;
        bytes32 terms;
        bytes32 previous;
        bytes32 r;
        bytes32 s;
        uint8 v;
    }

    struct Channel {
        bytes32 paramsHash; // slot 0: keccak256(abi.encode(ChannelParams)); SETTLED afterwards
        uint96 depositA; // slot 1
        uint96 depositB;
        uint40 settleAt;
        uint8 status;
        uint128 sentA; // slot 2: A's latest proof
        uint64 seqA;
        bool locksA; // A's latest proof has pending locks: locksHashOf[id][0] is set
        uint128 sentB; // slot 3: B's latest proof
        uint64 seqB;
        bool locksB;
    }

    uint8 internal constant OPEN = 1;
    uint8 internal constant CLOSED_BY_A = 2;
    uint8 internal constant CLOSED_BY_B = 3;
    bytes32 internal constant SETTLED = bytes32(uint256(1));

    uint256 internal constant HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;
    uint256 internal constant PAYOUT_GAS = 50_000;

    bytes32 internal constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 internal constant PAYMENT_TYPEHASH = keccak256(
        "Payment(bytes16 channelId,uint64 sequence,bytes16 invoiceId,address buyer,address supplier,"
        "uint256 price,uint256 buyerTotal,uint256 lockedAmount,bytes32 locksRoot,string currency,"
        "string invoiceType,bytes32 terms,bytes32 previous)"
    );
    bytes32 internal constant COOPERATIVE_CLOSE_TYPEHASH = keccak256(
        "CooperativeClose(bytes16 channelId,uint256 balanceA,uint256 balanceB,uint64 sequence,uint64 expiry)"
    );
    bytes32 internal constant ETH_HASH = keccak256("ETH");
    bytes32 internal constant BTC_HASH = keccak256("BTC");

    // ---------------------------------------------------------------- state
    address public immutable btcToken;
    /// The shortest challenge period `open` accepts (seconds): the time a watchtower has to answer.
    uint32 public immutable minChallengePeriod;
    uint256 internal immutable cachedChainId;
    bytes32 internal immutable cachedDomainSeparator;

    mapping(bytes16 => Channel) internal channels;
    /// A participant's delegate for all its channels (its Parsec node acting as watchtower).
    mapping(address => address) public operatorOf;
    /// Where a participant's payouts go (ETH and token), set by the participant itself; unset
    /// (address(0)) means the participant.
    mapping(address => address) public payeeOf;
    /// ETH payouts that the receiver refused, credited to the participant (pull payments):
    /// anyone may send them on with `withdraw(owner)`.
    mapping(address => uint256) public withdrawable;

    /// Per channel, per participant (0 = A, 1 = B): keccak256(abi.encodePacked(uint128
    /// lockedAmount, bytes32 locksRoot)) of its latest recorded proof; zero = no pending lock.
    mapping(bytes16 => bytes32[2]) public locksHashOf;
    /// A channel settled with its locks held back: keccak256(abi.encode(params, base, total,
    /// locksHashA, locksHashB)) until `unlock` decides them (zero: nothing held).
    mapping(bytes16 => bytes32) public heldLocksOf;
    /// The secret registry: sha256(secret) -> when it was first registered (unix seconds).
    mapping(bytes32 => uint40) public secretRevealedAt;

    uint256 transient locked;

    // ---------------------------------------------------------------- events
    event ChannelOpened(
        bytes16 indexed channelId, address indexed a, address indexed b, address token, uint32 challengePeriod, uint256 deposit
    );
    event Deposited(bytes16 indexed channelId, address indexed participant, uint256 amount, uint256 totalDeposit);
    /// One per proof recorded by checkpoint(): the buyer's latest sequence and total.
    event Checkpointed(bytes16 indexed channelId, address indexed buyer, uint64 sequence, uint128 buyerTotal);
    event ChannelClosed(bytes16 indexed channelId, address indexed closer, uint40 settleAt);
    /// One per proof recorded by close() or update(): the buyer's latest sequence and total.
    event StateUpdated(bytes16 indexed channelId, address indexed buyer, uint64 sequence, uint128 buyerTotal);
    event Disputed(
        bytes16 indexed channelId, uint256 payments, uint64 seqA, uint128 sentA, uint64 seqB, uint128 sentB, bytes32 headHash
    );
    event ChannelSettled(bytes16 indexed channelId, uint256 balanceA, uint256 balanceB);
    /// The first registration of a secret (later ones change nothing and emit nothing).
    event SecretRevealed(bytes32 indexed secretHash, bytes32 secret);
    /// settleHoldingLocks paid what is not locked and keeps `held`; `unlock` needs base and total.
    event LocksHeld(bytes16 indexed channelId, int256 base, uint256 total, uint256 held);
    /// unlock decided every held lock: what went to A and to B.
    event LocksUnlocked(bytes16 indexed channelId, uint256 toA, uint256 toB);
    event CooperativelyClosed(bytes16 indexed channelId, uint256 balanceA, uint256 balanceB, uint64 sequence);
    event OperatorSet(address indexed participant, address indexed operator);
    event PayeeSet(address indexed participant, address indexed payee);
    /// A pushed ETH payout was refused: `owner` (the participant) holds it as a credit.
    event PayoutDeferred(address indexed owner, uint256 amount);
    /// `owner`'s credit was sent to `to` (its payee, or itself).
    event Withdrawn(address indexed owner, address indexed to, uint256 amount);

    // ---------------------------------------------------------------- errors
    error UnsupportedToken(address token);
    error ChannelExists(bytes16 channelId);
    error NoSuchChannel(bytes16 channelId);
    error AlreadySettled(bytes16 channelId);
    error WrongParams(bytes16 channelId);
    error InvalidCounterparty(address b);
    error InvalidPayee(address payee);
    error InvalidChallengePeriod();
    error ChallengePeriodTooShort(uint32 given, uint32 minimum);
    error NotOpen(bytes16 channelId);
    error NotClosed(bytes16 channelId);
    error ChallengePeriodOver(uint40 settleAt);
    error ChallengePeriodNotOver(uint40 settleAt);
    error NotParticipant(address caller);
    error WrongValue();
    error DepositTooLarge();
    error BuyerNotParticipant(address buyer);
    error NotPayee(address caller, address payee);
    error BadSignatureV(uint8 v);
    error HighS();
    error InvalidSignature();
    error WrongSigner(address recovered, address expected);
    error StaleProof(uint64 sequence, uint64 recorded);
    error TotalDecreased(uint128 buyerTotal, uint128 recorded);
    error NothingNew();
    error BalancesDoNotMatchDeposits(uint256 sum, uint256 deposits);
    error CloseExpired(uint64 expiry);
    error StaleClose(uint64 sequence, uint64 head);
    error EmptyDispute();
    error HeadMismatch();
    error BrokenHashLink(uint256 index);
    error BadSequence(uint256 index, uint64 expected, uint64 got);
    error SequenceOverflow();
    error BadBuyerTotal(uint256 index);
    error ZeroPrice(uint256 index);
    error LocksPending(bytes16 channelId);
    error LocksRootMismatch(uint256 participant);
    error LockUndecided(uint256 participant, uint256 index);
    error MalformedLocks(uint256 participant);
    error NothingToUnlock(bytes16 channelId);
    error Reentrancy();
    error TransferFailed();
    error NothingToWithdraw();

    // ---------------------------------------------------------------- setup
    /// @param minChallengePeriod_ the shortest challenge period a channel may have (> 0, seconds)
    constructor(address btcToken_, uint32 minChallengePeriod_) {
        if (minChallengePeriod_ == 0) revert InvalidChallengePeriod();
        btcToken = btcToken_;
        minChallengePeriod = minChallengePeriod_;
        cachedChainId = block.chainid;
        cachedDomainSeparator = _buildDomainSeparator();
    }

    modifier nonReentrant() {
        if (locked != 0) revert Reentrancy();
        locked = 1;
        _;
        locked = 0;
    }

    function domainSeparator() public view returns (bytes32) {
        return block.chainid == cachedChainId ? cachedDomainSeparator : _buildDomainSeparator();
    }

    function _buildDomainSeparator() internal view returns (bytes32) {
        return keccak256(abi.encode(DOMAIN_TYPEHASH, keccak256("Parsec"), keccak256("1"), block.chainid, address(this)));
    }

    /// Name the delegate (a watchtower) that may record proofs and close for msg.sender.
    function setOperator(address operator) external {
        operatorOf[msg.sender] = operator;
        emit OperatorSet(msg.sender, operator);
    }

    /// Name where all of msg.sender's payouts go (ETH and token); address(0) = msg.sender itself.
    /// Only the participant itself, never its operator: a watchtower must not redirect funds.
    function setPayee(address payee) external {
        if (payee == address(this) || payee == btcToken || (payee != address(0) && uint160(payee) <= 0xffff)) {
            revert InvalidPayee(payee);
        }
        payeeOf[msg.sender] = payee;
        emit PayeeSet(msg.sender, payee);
    }

    // ---------------------------------------------------------------- open and deposit
    /// Open channel `id` between msg.sender (A) and `b`, depositing `amount` (ETH: msg.value).
    /// `b` must be an account that can receive and withdraw: not address(0) or a precompile /
    /// system address (<= 0xffff), not the opener, this contract or the BTC token.
    function open(bytes16 id, address b, address token, uint32 challengePeriod, uint256 amount) external payable {
        if (token != address(0) && token != btcToken) revert UnsupportedToken(token);
        if (uint160(b) <= 0xffff || b == msg.sender || b == address(this) || b == btcToken) {
            revert InvalidCounterparty(b);
        }
        if (challengePeriod < minChallengePeriod) revert ChallengePeriodTooShort(challengePeriod, minChallengePeriod);
        Channel storage c = channels[id];
        if (c.paramsHash != bytes32(0)) revert ChannelExists(id);
        if (amount > type(uint96).max) revert DepositTooLarge();
        c.paramsHash = keccak256(abi.encode(ChannelParams(msg.sender, b, token, challengePeriod)));
        c.depositA = uint96(amount);
        c.status = OPEN;
        _collect(token, amount);
        emit ChannelOpened(id, msg.sender, b, token, challengePeriod, amount);
    }

    /// Top up msg.sender's deposit (either participant).
    function deposit(bytes16 id, ChannelParams calldata p, uint256 amount) external payable {
        Channel storage c = _channel(id, p);
        if (c.status != OPEN) revert NotOpen(id);
        uint256 total;
        if (msg.sender == p.a) {
            total = c.depositA + amount;
            if (total > type(uint96).max) revert DepositTooLarge();
            c.depositA = uint96(total);
        } else if (msg.sender == p.b) {
            total = c.depositB + amount;
            if (total > type(uint96).max) revert DepositTooLarge();
            c.depositB = uint96(total);
        } else {
            revert NotParticipant(msg.sender);
        }
        _collect(p.token, amount);
        emit Deposited(id, msg.sender, amount, total);
    }

    // ---------------------------------------------------------------- evidence
    /// Record the latest signed payments while the channel is open.
    function checkpoint(bytes16 id, ChannelParams calldata p, SignedPayment[] calldata proofs) external {
        Channel storage c = _channel(id, p);
        if (c.status != OPEN) revert NotOpen(id);
        _applyProofs(id, c, p, proofs, true);
    }

    /// Unilateral close by a participant (or its operator) with the counterparty's latest proofs.
    function close(bytes16 id, ChannelParams calldata p, SignedPayment[] calldata proofs) external {
        Channel storage c = _channel(id, p);
        if (c.status != OPEN) revert NotOpen(id);
        uint8 status;
        address closer;
        if (msg.sender == p.a) {
            (status, closer) = (CLOSED_BY_A, p.a);
        } else if (msg.sender == p.b) {
            (status, closer) = (CLOSED_BY_B, p.b);
        } else if (msg.sender == operatorOf[p.a]) {
            (status, closer) = (CLOSED_BY_A, p.a);
        } else if (msg.sender == operatorOf[p.b]) {
            (status, closer) = (CLOSED_BY_B, p.b);
        } else {
            revert NotParticipant(msg.sender);
        }
        uint40 settleAt = uint40(block.timestamp) + p.challengePeriod;
        c.status = status;
        c.settleAt = settleAt;
        emit ChannelClosed(id, closer, settleAt);
        if (proofs.length != 0) _applyProofs(id, c, p, proofs, false);
    }

    /// During the challenge period, either participant (or its operator), the closer included,
    /// records newer proofs; each must pay the caller's principal (the evidence rule).
    function update(bytes16 id, ChannelParams calldata p, SignedPayment[] calldata proofs) external {
        Channel storage c = _channel(id, p);
        _checkChallengeWindow(id, c);
        _applyProofs(id, c, p, proofs, false);
    }

    /// The paper's disputed settlement: the signed payments since the recorded head, in order.
    /// `head` is the recorded head payment (ignored while nothing is recorded: genesis).
    /// Allowed while open or during the challenge period. The last payment must pay the caller's
    /// principal, so every payment of the caller's own side in the chain is acknowledged by a
    /// later signature of the counterparty (hash links cover it). The chain may hold any kind
    /// of transaction (payment, lockedTransfer, unlock, lockExpired, plugins): the rule is
    /// kind-agnostic. Each `buyerTotal` must be at least its buyer's previous total (recorded,
    /// or earlier in the chain) - not + price, since a lock kind's price moves lockedAmount -
    /// and each price > 0 (true of every built-in kind). The last payment of each buyer in the
    /// chain also sets that buyer's recorded lock state. No solvency check
    /// (settle clamps). A long chain may be sent as consecutive disputes, each from the head the
    /// previous one recorded (each chunk ending with a payment to the caller's principal).
    function dispute(bytes16 id, ChannelParams calldata p, SignedPayment calldata head, SignedPayment[] calldata txs)
        external
    {
        Channel storage c = _channel(id, p);
        uint8 status = c.status;
        if (status != OPEN) _checkChallengeWindow(id, c);
        uint256 n = txs.length;
        if (n == 0) revert EmptyDispute();
        uint256 sentA = c.sentA;
        uint256 sentB = c.sentB;
        uint64 seqA = c.seqA;
        uint64 seqB = c.seqB;
        uint64 seq = seqA > seqB ? seqA : seqB;
        bytes32 currency = _currencyHash(p.token);
        bytes32 sep = domainSeparator();
        bytes32 link = seq == 0 ? bytes32(0) : _authenticateHead(sep, id, c, currency, p, head, seq, seqA, sentA, sentB);
        uint256 lastA = type(uint256).max;
        uint256 lastB = type(uint256).max;
        for (uint256 i = 0; i < n; ++i) {
            SignedPayment calldata t = txs[i];
            if (t.previous != link) revert BrokenHashLink(i);
            if (seq == type(uint64).max) revert SequenceOverflow();
            unchecked {
                ++seq;
            }
            if (t.sequence != seq) revert BadSequence(i, seq, t.sequence);
            if (t.price == 0) revert ZeroPrice(i);
            address supplier;
            if (t.buyer == p.a) {
                if (uint256(t.buyerTotal) < sentA) revert BadBuyerTotal(i);
                sentA = t.buyerTotal;
                seqA = seq;
                lastA = i;
                supplier = p.b;
            } else if (t.buyer == p.b) {
                if (uint256(t.buyerTotal) < sentB) revert BadBuyerTotal(i);
                sentB = t.buyerTotal;
                seqB = seq;
                lastB = i;
                supplier = p.a;
            } else {
                revert BuyerNotParticipant(t.buyer);
            }
            link = _verify(sep, id, currency, t, supplier);
            if (i == n - 1) _checkPayee(supplier);
        }
        c.sentA = uint128(sentA);
        c.seqA = seqA;
        c.sentB = uint128(sentB);
        c.seqB = seqB;
        if (lastA != type(uint256).max) _recordLocks(id, c, 0, txs[lastA]);
        if (lastB != type(uint256).max) _recordLocks(id, c, 1, txs[lastB]);
        emit Disputed(id, n, seqA, uint128(sentA), seqB, uint128(sentB), link);
    }

    /// The recorded head re-supplied: it must be the recorded proof of its buyer at the head
    /// sequence (same sequence, total and lock state) and carry that buyer's signature.
    /// Returns its digest.
    function _authenticateHead(
        bytes32 sep,
        bytes16 id,
        Channel storage c,
        bytes32 currency,
        ChannelParams calldata p,
        SignedPayment calldata h,
        uint64 seq,
        uint64 seqA,
        uint256 sentA,
        uint256 sentB
    ) internal view returns (bytes32) {
        if (h.sequence != seq) revert HeadMismatch();
        address supplier;
        if (h.buyer == p.a && seqA == seq) {
            if (h.buyerTotal != sentA) revert HeadMismatch();
            if (_locksHash(h) != (c.locksA ? locksHashOf[id][0] : bytes32(0))) revert HeadMismatch();
            supplier = p.b;
        } else if (h.buyer == p.b && seqA != seq) {
            if (h.buyerTotal != sentB) revert HeadMismatch();
            if (_locksHash(h) != (c.locksB ? locksHashOf[id][1] : bytes32(0))) revert HeadMismatch();
            supplier = p.a;
        } else {
            revert HeadMismatch();
        }
        return _verify(sep, id, currency, h, supplier);
    }

    // ---------------------------------------------------------------- payouts
    /// After the challenge period: pay balanceA = clamp(dA + sentB - sentA, 0, dA + dB) and
    /// balanceB = dA + dB - balanceA (see the contract's notice for why this cannot be gamed).
    /// Only while no lock is recorded (else LocksPending: settleWithLocks or settleHoldingLocks).
    function settle(bytes16 id, ChannelParams calldata p) external nonReentrant {
        Channel storage c = _channel(id, p);
        uint8 status = c.status;
        if (status == OPEN) revert NotClosed(id);
        if (block.timestamp < c.settleAt) revert ChallengePeriodNotOver(c.settleAt);
        if (c.locksA || c.locksB) revert LocksPending(id);
        uint256 dA = c.depositA;
        uint256 total = dA + c.depositB;
        uint256 sentA = c.sentA;
        uint256 credit = dA + c.sentB; // < 2**129: no overflow
        uint256 balanceA;
        if (credit > sentA) {
            unchecked {
                balanceA = credit - sentA;
            }
            if (balanceA > total) balanceA = total;
        }
        uint256 balanceB;
        unchecked {
            balanceB = total - balanceA; // balanceA <= total
        }
        _retire(c);
        emit ChannelSettled(id, balanceA, balanceB);
        _pay(p.token, p.a, balanceA);
        _pay(p.token, p.b, balanceB);
    }

    /// After the challenge period, with each participant's pending locks (`locksA`: A's, owed to
    /// B; each the packed 56-byte locks, empty for none), which must match the recorded lock
    /// state: decides every lock (LockUndecided if one is neither registered nor expired) and
    /// pays A clamp(dA + sentB - sentA + y - x, 0, dA + dB), B the rest.
    function settleWithLocks(bytes16 id, ChannelParams calldata p, bytes calldata locksA, bytes calldata locksB)
        external
        nonReentrant
    {
        Channel storage c = _channel(id, p);
        if (c.status == OPEN) revert NotClosed(id);
        if (block.timestamp < c.settleAt) revert ChallengePeriodNotOver(c.settleAt);
        if (_blobHash(locksA, 0) != (c.locksA ? locksHashOf[id][0] : bytes32(0))) revert LocksRootMismatch(0);
        if (_blobHash(locksB, 1) != (c.locksB ? locksHashOf[id][1] : bytes32(0))) revert LocksRootMismatch(1);
        (int256 base, uint256 total) = _base(c);
        uint256 balanceA = _clamp(base + int256(_decide(locksB, 1)) - int256(_decide(locksA, 0)), total);
        uint256 balanceB;
        unchecked {
            balanceB = total - balanceA;
        }
        _clearLocks(id, c);
        _retire(c);
        emit ChannelSettled(id, balanceA, balanceB);
        _pay(p.token, p.a, balanceA);
        _pay(p.token, p.b, balanceB);
    }

    /// After the challenge period, without the locks themselves (only the recorded lock state:
    /// each side's lockedAmount and locksRoot): pays each side the least it can end with and
    /// holds the rest for `unlock` (see the contract's notice).
    function settleHoldingLocks(
        bytes16 id,
        ChannelParams calldata p,
        uint128 lockedA,
        bytes32 rootA,
        uint128 lockedB,
        bytes32 rootB
    ) external nonReentrant {
        Channel storage c = _channel(id, p);
        if (c.status == OPEN) revert NotClosed(id);
        if (block.timestamp < c.settleAt) revert ChallengePeriodNotOver(c.settleAt);
        bytes32 hashA = _stateHash(lockedA, rootA);
        bytes32 hashB = _stateHash(lockedB, rootB);
        if (hashA != (c.locksA ? locksHashOf[id][0] : bytes32(0))) revert LocksRootMismatch(0);
        if (hashB != (c.locksB ? locksHashOf[id][1] : bytes32(0))) revert LocksRootMismatch(1);
        if (hashA == bytes32(0) && hashB == bytes32(0)) revert NothingToUnlock(id);
        (int256 base, uint256 total) = _base(c);
        uint256 lowA = _clamp(base - int256(uint256(lockedA)), total);
        uint256 highA = _clamp(base + int256(uint256(lockedB)), total);
        heldLocksOf[id] = keccak256(abi.encode(p, base, total, hashA, hashB));
        _clearLocks(id, c);
        _retire(c);
        emit LocksHeld(id, base, total, highA - lowA);
        emit ChannelSettled(id, lowA, total - highA);
        _pay(p.token, p.a, lowA);
        _pay(p.token, p.b, total - highA);
    }

    /// Decide every lock held back by settleHoldingLocks (both sides at once: `locksA` A's,
    /// `locksB` B's, as recorded; `base` and `total` from its LocksHeld event) and pay what each
    /// side is owed on top of what it was paid. Once only: the held record is deleted.
    function unlock(
        bytes16 id,
        ChannelParams calldata p,
        int256 base,
        uint256 total,
        bytes calldata locksA,
        bytes calldata locksB
    ) external nonReentrant {
        bytes32 held = heldLocksOf[id];
        if (held == bytes32(0)) revert NothingToUnlock(id);
        if (keccak256(abi.encode(p, base, total, _blobHash(locksA, 0), _blobHash(locksB, 1))) != held) {
            revert LocksRootMismatch(2);
        }
        delete heldLocksOf[id];
        uint256 lowA = _clamp(base - int256(_sum(locksA)), total);
        uint256 highA = _clamp(base + int256(_sum(locksB)), total);
        uint256 finalA = _clamp(base + int256(_decide(locksB, 1)) - int256(_decide(locksA, 0)), total);
        emit LocksUnlocked(id, finalA - lowA, highA - finalA);
        _pay(p.token, p.a, finalA - lowA);
        _pay(p.token, p.b, highA - finalA);
    }

    // ---------------------------------------------------------------- secret registry
    /// Record sha256(secret) as revealed now (the first registration stands). Returns whether
    /// this call registered it.
    function registerSecret(bytes32 secret) public returns (bool) {
        bytes32 h = sha256(abi.encodePacked(secret));
        if (secretRevealedAt[h] != 0) return false;
        secretRevealedAt[h] = uint40(block.timestamp);
        emit SecretRevealed(h, secret);
        return true;
    }

    function registerSecrets(bytes32[] calldata secrets) external returns (bool all) {
        all = true;
        for (uint256 i = 0; i < secrets.length; ++i) {
            if (!registerSecret(secrets[i])) all = false;
        }
    }

    /// Both participants signed the final balances at `sequence` (the head they agreed on):
    /// pay out at once, while the channel is open or within its challenge period, until `expiry`
    /// (a unix time, inclusive), and only if nothing newer than `sequence` is recorded.
    function cooperativeClose(
        bytes16 id,
        ChannelParams calldata p,
        uint256 balanceA,
        uint256 balanceB,
        uint64 sequence,
        uint64 expiry,
        bytes calldata sigA,
        bytes calldata sigB
    ) external nonReentrant {
        if (block.timestamp > expiry) revert CloseExpired(expiry);
        Channel storage c = _channel(id, p);
        if (c.status != OPEN) _checkChallengeWindow(id, c);
        uint64 head = c.seqA > c.seqB ? c.seqA : c.seqB;
        if (sequence < head) revert StaleClose(sequence, head);
        uint256 deposits = uint256(c.depositA) + c.depositB;
        if (balanceA + balanceB != deposits) revert BalancesDoNotMatchDeposits(balanceA + balanceB, deposits);
        bytes32 digest = keccak256(
            abi.encodePacked(
                "\x19\x01",
                domainSeparator(),
                keccak256(abi.encode(COOPERATIVE_CLOSE_TYPEHASH, id, balanceA, balanceB, sequence, expiry))
            )
        );
        _checkSigner(digest, sigA, p.a);
        _checkSigner(digest, sigB, p.b);
        _clearLocks(id, c);
        _retire(c);
        emit CooperativelyClosed(id, balanceA, balanceB, sequence);
        _pay(p.token, p.a, balanceA);
        _pay(p.token, p.b, balanceB);
    }

    /// Send `owner`'s credit (ETH payouts its receiver refused) to its payee (or `owner`),
    /// forwarding all gas. Anyone may call it: the money only goes where `owner` chose, so a
    /// gas-hungry receiver (a multisig) is paid without having to call anything itself.
    function withdraw(address owner) external nonReentrant {
        uint256 amount = withdrawable[owner];
        if (amount == 0) revert NothingToWithdraw();
        withdrawable[owner] = 0;
        address to = _payee(owner);
        emit Withdrawn(owner, to, amount);
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert TransferFailed();
    }

    // ---------------------------------------------------------------- views
    function getChannel(bytes16 id) external view returns (Channel memory) {
        return channels[id];
    }

    function paymentDigest(bytes16 id, address token, SignedPayment calldata t, address supplier)
        external
        view
        returns (bytes32)
    {
        return _digest(domainSeparator(), id, _currencyHash(token), t, supplier);
    }

    // ---------------------------------------------------------------- internals
    function _channel(bytes16 id, ChannelParams calldata p) internal view returns (Channel storage c) {
        c = channels[id];
        bytes32 h = c.paramsHash;
        if (h != keccak256(abi.encode(p))) {
            if (h == bytes32(0)) revert NoSuchChannel(id);
            if (h == SETTLED) revert AlreadySettled(id);
            revert WrongParams(id);
        }
    }

    function _checkChallengeWindow(bytes16 id, Channel storage c) internal view {
        uint8 status = c.status;
        if (status != CLOSED_BY_A && status != CLOSED_BY_B) revert NotClosed(id);
        if (block.timestamp >= c.settleAt) revert ChallengePeriodOver(c.settleAt);
    }

    function _checkPayee(address payee) internal view {
        if (msg.sender != payee && msg.sender != operatorOf[payee]) {
            revert NotPayee(msg.sender, payee);
        }
    }

    /// A buyer's recorded (total, sequence) after proof `t`: a higher sequence, a total not lower.
    function _advanced(SignedPayment calldata t, uint128 sent, uint64 seq) internal pure returns (uint128, uint64) {
        if (t.sequence <= seq) revert StaleProof(t.sequence, seq);
        if (t.buyerTotal < sent) revert TotalDecreased(t.buyerTotal, sent);
        return (t.buyerTotal, t.sequence);
    }

    /// Apply per-participant proofs (each must pay the caller's principal); a proof replaces the
    /// recorded one for its buyer only with a higher sequence and a total not lower. Only the
    /// slots of the buyers concerned are touched. No solvency check: settle clamps.
    function _applyProofs(
        bytes16 id,
        Channel storage c,
        ChannelParams calldata p,
        SignedPayment[] calldata proofs,
        bool isCheckpoint
    ) internal {
        if (proofs.length == 0) revert NothingNew();
        bytes32 currency = _currencyHash(p.token);
        bytes32 sep = domainSeparator();
        for (uint256 i = 0; i < proofs.length; ++i) {
            SignedPayment calldata t = proofs[i];
            address supplier;
            if (t.buyer == p.a) {
                (c.sentA, c.seqA) = _advanced(t, c.sentA, c.seqA);
                _recordLocks(id, c, 0, t);
                supplier = p.b;
            } else if (t.buyer == p.b) {
                (c.sentB, c.seqB) = _advanced(t, c.sentB, c.seqB);
                _recordLocks(id, c, 1, t);
                supplier = p.a;
            } else {
                revert BuyerNotParticipant(t.buyer);
            }
            _checkPayee(supplier);
            _verify(sep, id, currency, t, supplier);
            if (isCheckpoint) emit Checkpointed(id, t.buyer, t.sequence, t.buyerTotal);
            else emit StateUpdated(id, t.buyer, t.sequence, t.buyerTotal);
        }
    }

    function _verify(bytes32 sep, bytes16 id, bytes32 currency, SignedPayment calldata t, address supplier)
        internal
        pure
        returns (bytes32 digest)
    {
        digest = _digest(sep, id, currency, t, supplier);
        if (t.v != 27 && t.v != 28) revert BadSignatureV(t.v);
        if (uint256(t.s) > HALF_N) revert HighS();
        address signer = ecrecover(digest, t.v, t.r, t.s);
        if (signer == address(0)) revert InvalidSignature();
        if (signer != t.buyer) revert WrongSigner(signer, t.buyer);
    }

    function _digest(bytes32 sep, bytes16 id, bytes32 currency, SignedPayment calldata t, address supplier)
        internal
        pure
        returns (bytes32)
    {
        bytes32 structHash = keccak256(
            abi.encode(
                PAYMENT_TYPEHASH,
                id,
                t.sequence,
                t.invoiceId,
                t.buyer,
                supplier,
                t.price,
                t.buyerTotal,
                t.lockedAmount,
                t.locksRoot,
                currency,
                t.invoiceTypeHash,
                t.terms,
                t.previous
            )
        );
        return keccak256(abi.encodePacked("\x19\x01", sep, structHash));
    }

    /// A proof's lock state as stored: zero when it has no pending lock.
    function _locksHash(SignedPayment calldata t) internal pure returns (bytes32) {
        return _stateHash(t.lockedAmount, t.locksRoot);
    }

    function _stateHash(uint128 lockedAmount, bytes32 root) internal pure returns (bytes32) {
        if (lockedAmount == 0 && root == bytes32(0)) return bytes32(0);
        return keccak256(abi.encodePacked(lockedAmount, root));
    }

    /// Set participant `side`'s lock state from its newly recorded proof `t`, touching the
    /// lock slot only when the proof has locks or clears recorded ones.
    function _recordLocks(bytes16 id, Channel storage c, uint256 side, SignedPayment calldata t) internal {
        bytes32 h = _locksHash(t);
        bool had = side == 0 ? c.locksA : c.locksB;
        if (h != bytes32(0)) {
            locksHashOf[id][side] = h;
            if (!had) {
                if (side == 0) c.locksA = true;
                else c.locksB = true;
            }
        } else if (had) {
            locksHashOf[id][side] = bytes32(0);
            if (side == 0) c.locksA = false;
            else c.locksB = false;
        }
    }

    function _clearLocks(bytes16 id, Channel storage c) internal {
        if (c.locksA) locksHashOf[id][0] = bytes32(0);
        if (c.locksB) locksHashOf[id][1] = bytes32(0);
    }

    /// The lock state a packed list of locks stands for: its sum and keccak root (zero: none).
    function _blobHash(bytes calldata locks, uint256 side) internal pure returns (bytes32) {
        if (locks.length == 0) return bytes32(0);
        if (locks.length % 56 != 0) revert MalformedLocks(side);
        uint256 sum = _sum(locks);
        if (sum > type(uint128).max) revert MalformedLocks(side);
        return keccak256(abi.encodePacked(uint128(sum), keccak256(locks)));
    }

    function _sum(bytes calldata locks) internal pure returns (uint256 sum) {
        for (uint256 o = 0; o < locks.length; o += 56) {
            sum += uint128(bytes16(locks[o + 8:o + 24]));
        }
    }

    /// The amount of participant `side`'s locks that pay its counterparty: each lock whose
    /// secret was registered at or before its expiry; an unregistered expired lock returns to
    /// its sender; an unregistered lock not yet expired is undecided.
    function _decide(bytes calldata locks, uint256 side) internal view returns (uint256 paid) {
        uint256 n = locks.length / 56;
        for (uint256 i = 0; i < n; ++i) {
            uint256 o = i * 56;
            uint64 expiry = uint64(bytes8(locks[o:o + 8]));
            uint40 revealed = secretRevealedAt[bytes32(locks[o + 24:o + 56])];
            if (revealed != 0 && revealed <= expiry) {
                paid += uint128(bytes16(locks[o + 8:o + 24]));
            } else if (block.timestamp <= expiry) {
                revert LockUndecided(side, i);
            }
        }
    }

    /// base = dA + sentB - sentA (signed) and the deposits' total.
    function _base(Channel storage c) internal view returns (int256 base, uint256 total) {
        uint256 dA = c.depositA;
        total = dA + c.depositB;
        base = int256(dA) + int256(uint256(c.sentB)) - int256(uint256(c.sentA));
    }

    function _clamp(int256 v, uint256 total) internal pure returns (uint256) {
        if (v <= 0) return 0;
        if (uint256(v) > total) return total;
        return uint256(v);
    }

    function _checkSigner(bytes32 digest, bytes calldata sig, address expected) internal pure {
        if (sig.length != 65) revert InvalidSignature();
        bytes32 r = bytes32(sig[0:32]);
        bytes32 s = bytes32(sig[32:64]);
        uint8 v = uint8(sig[64]);
        if (v != 27 && v != 28) revert BadSignatureV(v);
        if (uint256(s) > HALF_N) revert HighS();
        address signer = ecrecover(digest, v, r, s);
        if (signer == address(0)) revert InvalidSignature();
        if (signer != expected) revert WrongSigner(signer, expected);
    }

    function _currencyHash(address token) internal pure returns (bytes32) {
        return token == address(0) ? ETH_HASH : BTC_HASH;
    }

    /// Burn the channel id (signatures for it must never count again) and free the rest.
    function _retire(Channel storage c) internal {
        c.paramsHash = SETTLED;
        c.depositA = 0;
        c.depositB = 0;
        c.settleAt = 0;
        c.status = 0;
        if (c.seqA != 0) (c.sentA, c.seqA, c.locksA) = (0, 0, false);
        if (c.seqB != 0) (c.sentB, c.seqB, c.locksB) = (0, 0, false);
    }

    function _collect(address token, uint256 amount) internal {
        if (token == address(0)) {
            if (msg.value != amount) revert WrongValue();
        } else {
            if (msg.value != 0) revert WrongValue();
            if (amount != 0) _tokenCall(token, abi.encodeWithSelector(0x23b872dd, msg.sender, address(this), amount));
        }
    }

    function _payee(address participant) internal view returns (address to) {
        to = payeeOf[participant];
        if (to == address(0)) to = participant;
    }

    /// Push `participant`'s payout to its payee. ETH goes with a 50,000 gas stipend; a receiver
    /// that refuses it (or tries to re-enter) leaves it as the participant's credit, which anyone
    /// may then send on with all gas (`withdraw(participant)`), so it cannot block the other
    /// side's payout. A token transfer the token refuses to the payee goes to the participant.
    function _pay(address token, address participant, uint256 amount) internal {
        if (amount == 0) return;
        address to = _payee(participant);
        if (token == address(0)) {
            (bool ok,) = to.call{value: amount, gas: PAYOUT_GAS}("");
            if (!ok) {
                withdrawable[participant] += amount;
                emit PayoutDeferred(participant, amount);
            }
        } else if (!_tryTokenCall(token, abi.encodeWithSelector(0xa9059cbb, to, amount))) {
            if (to == participant) revert TransferFailed();
            _tokenCall(token, abi.encodeWithSelector(0xa9059cbb, participant, amount));
        }
    }

    function _tokenCall(address token, bytes memory data) internal {
        if (!_tryTokenCall(token, data)) revert TransferFailed();
    }

    function _tryTokenCall(address token, bytes memory data) internal returns (bool) {
        (bool ok, bytes memory ret) = token.call(data);
        return ok && (ret.length == 0 || (ret.length >= 32 && abi.decode(ret, (uint256)) == 1));
    }
}
