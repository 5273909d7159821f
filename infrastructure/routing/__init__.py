"""Routing of multi-hop payments: the pathfinder over the channel-graph read model."""
