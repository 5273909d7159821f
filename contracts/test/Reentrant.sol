// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @title A hostile or demanding channel participant for tests: when paid ETH it tries to re-enter
/// the channel contract (mode 1), refuses the payment (mode 2), or, like a multisig wallet, needs
/// more gas than the payout stipend to accept it (mode 3).
contract Reentrant {
    address public immutable target;
    bytes public reentry;
    // one slot, so the payout's gas is enough for the attempt and its record
    uint8 public mode;
    uint64 public attempts;
    bool public reentered;
    bytes4 public lastErrorSelector;
    /// ETH accepted in mode 3
    uint256 public received;

    uint256 internal constant HUNGRY = 100_000;

    constructor(address target_) {
        target = target_;
    }

    /// Call the channel contract as this participant (open, close, settle, withdraw...).
    function execute(bytes calldata data) external payable returns (bytes memory) {
        (bool ok, bytes memory ret) = target.call{value: msg.value}(data);
        if (!ok) {
            assembly {
                revert(add(ret, 32), mload(ret))
            }
        }
        return ret;
    }

    function arm(uint8 mode_, bytes calldata reentry_) external {
        mode = mode_;
        reentry = reentry_;
    }

    receive() external payable {
        if (mode == 2) revert("Reentrant: refusing payment");
        if (mode == 1 && attempts == 0) {
            (bool ok, bytes memory ret) = target.call(reentry);
            (attempts, reentered, lastErrorSelector) = (1, ok, bytes4(ret));
        }
        if (mode == 3) {
            if (gasleft() < HUNGRY) revert("Reentrant: needs more gas");
            received += msg.value;
        }
    }
}
