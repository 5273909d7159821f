// Compile contracts/*.sol (and contracts/test/*.sol) with the pinned solcjs, deterministically.
// Usage: node contracts/compile.cjs <outdir>
"use strict";
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const ROOT = __dirname;
const SOURCES = ["ParsecChannels.sol", "TestToken.sol", "test/Reentrant.sol"];
const SETTINGS = {
  evmVersion: "prague",
  optimizer: { enabled: true, runs: 10000 },
  viaIR: true,
  metadata: { bytecodeHash: "none", appendCBOR: false },
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
};

function sortKeys(value) {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, sortKeys(value[k])]));
  }
  return value;
}

const outDir = process.argv[2];
if (!outDir) {
  console.error("usage: node compile.cjs <outdir>");
  process.exit(2);
}
const input = {
  language: "Solidity",
  sources: Object.fromEntries(SOURCES.map((f) => [f, { content: fs.readFileSync(path.join(ROOT, f), "utf8") }])),
  settings: SETTINGS,
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors || []).filter((e) => e.severity === "error");
for (const e of output.errors || []) console.error(e.formattedMessage);
if (errors.length) process.exit(1);

fs.mkdirSync(outDir, { recursive: true });
const { outputSelection, ...recorded } = SETTINGS;
for (const file of SOURCES) {
  for (const [name, contract] of Object.entries(output.contracts[file])) {
    const artifact = {
      contractName: name,
      sourceName: file,
      compiler: { name: "solc", version: solc.version() },
      settings: recorded,
      abi: contract.abi,
      bytecode: "0x" + contract.evm.bytecode.object,
      deployedBytecode: "0x" + contract.evm.deployedBytecode.object,
    };
    fs.writeFileSync(path.join(outDir, name + ".json"), JSON.stringify(sortKeys(artifact), null, 2) + "\n");
  }
}
