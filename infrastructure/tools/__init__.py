"""Tools built on Parsec's services: the demo, the simulator, the benchmarks, the gas report and the
one workload generator they (and the tests) share. They get their services from the composition
root (infrastructure/bootstrap.py); adapters never import them."""
