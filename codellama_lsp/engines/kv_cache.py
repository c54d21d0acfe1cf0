"""A KV cache that appends into reserved room instead of copying itself at every step.

transformers' ``DynamicLayer`` grows with ``torch.cat``: every decode step copies the whole
cache of every layer. On the CPU that copy is a large share of a decode step after a long
prompt (the figures: docs/benchmarks.md, "KV cache growth"); on a GPU it is extra memory
traffic on top of the weights, most for a draft model, whose weights are small next to its
cache.
:class:`ReservedLayer` keeps keys and values in a buffer with room for
:data:`RESERVE_TOKENS` more and hands out views of its filled part: it copies only when the
room runs out (once per ``RESERVE_TOKENS`` decode steps), and ``crop`` only shortens the view,
so KV prefix reuse and speculative rollback work as before. The room costs at most
``RESERVE_TOKENS`` tokens of keys and values per layer.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import DynamicCache, PretrainedConfig
from transformers.cache_utils import DynamicLayer

RESERVE_TOKENS = 128


class ReservedLayer(DynamicLayer):
    """A ``DynamicLayer`` whose ``keys``/``values`` are views of a buffer with spare room."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        super().lazy_initialization(key_states, value_states)
        self._key_room = empty_room(key_states)
        self._value_room = empty_room(value_states)

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        length = self.get_seq_length()
        end = length + key_states.shape[-2]
        if end > self._key_room.shape[-2]:
            self._key_room = grown(self._key_room, length, end + RESERVE_TOKENS)
            self._value_room = grown(self._value_room, length, end + RESERVE_TOKENS)
        self._key_room[..., length:end, :] = key_states
        self._value_room[..., length:end, :] = value_states
        self.keys = self._key_room[..., :end, :]
        self.values = self._value_room[..., :end, :]
        return self.keys, self.values


def empty_room(states: torch.Tensor) -> torch.Tensor:
    """A buffer shaped like ``states`` with no positions yet."""
    return states.new_empty((*states.shape[:-2], 0, states.shape[-1]))


def grown(room: torch.Tensor, filled: int, size: int) -> torch.Tensor:
    """A bigger buffer holding the first ``filled`` positions of ``room``."""
    bigger = room.new_empty((*room.shape[:-2], size, room.shape[-1]))
    bigger[..., :filled, :] = room[..., :filled, :]
    return bigger


def new_kv_cache(config: PretrainedConfig) -> DynamicCache:
    """A ``DynamicCache`` for ``config`` whose full-attention layers are :class:`ReservedLayer`."""
    cache = DynamicCache(config=config)
    cache.layers = [
        ReservedLayer() if type(layer) is DynamicLayer else layer for layer in cache.layers
    ]
    return cache
