// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @title A hostile channel participant for tests: when paid ETH it tries to re-enter the
/// channel contract (mode 1) or refuses the payment (mode 2).
contract Reentrant {
    address public immutable target;
    bytes public reentry;
    // one slot, so the payout's gas is enough for the attempt and its record
    uint8 public mode;
    uint64 public attempts;
    bool public reentered;
    bytes4 public lastErrorSelector;

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
    }
}
