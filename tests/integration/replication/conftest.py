"""The replication tests' fixtures (defined in harness.py): B, MirrorMaker A -> B, the module's topics."""

from tests.integration.replication.harness import cluster_b, mirrormaker, topic_prefix

__all__ = ["cluster_b", "mirrormaker", "topic_prefix"]
