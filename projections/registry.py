"""The read models the runner and the CLI know: built-ins plus plugins.

A plugin is any importable module with a ``READ_MODELS`` list (or that calls
``register``): name it with ``--plugin MODULE`` or in the ``projection_plugins``
setting (``PARSEC_PROJECTION_PLUGINS``, comma-separated), which the CLI passes in.
"""

from __future__ import annotations

import importlib

from projections.balances import Balances
from projections.channel_graph import ChannelGraph
from projections.history import PaymentHistory
from projections.model import ReadModel
from projections.settlements import Settlements

_MODELS: dict[str, ReadModel] = {}


class UnknownReadModel(ValueError):
    """No read model by that name is registered."""


def register(model: ReadModel) -> ReadModel:
    existing = _MODELS.get(model.name)
    if existing is not None and type(existing) is not type(model):
        raise ValueError(f"a read model named {model.name!r} is already registered ({type(existing).__name__})")
    _MODELS[model.name] = model
    return model


for _model in (Balances(), Settlements(), PaymentHistory(), ChannelGraph()):
    register(_model)

BUILT_IN = ("balances", "settlements", "history", "graph")


def load_plugins(modules: list[str] | None = None) -> None:
    for name in modules or []:
        module = importlib.import_module(name)
        for model in getattr(module, "READ_MODELS", ()):
            register(model)


def read_models() -> dict[str, ReadModel]:
    return dict(_MODELS)


def get(name: str) -> ReadModel:
    try:
        return _MODELS[name]
    except KeyError:
        raise UnknownReadModel(f"no read model {name!r}; known: {', '.join(sorted(_MODELS))}") from None
