"""A bounded cache of the transparency log's full-subtree hashes, kept by one central
process across its reads (`CentralStore.log_nodes`, used by `tlog_proofs.Nodes`).

Why it may outlive a snapshot: a full subtree node ``(level, index)`` never changes
once the log holds its leaves (greenpass.merkle: the store is append-only), and a
snapshot only sees leaves that are committed. So a hash read or made in one read is
still true in every later one, and the kiosks' state pushes, which prove each kiosk's
newest runs against a checkpoint that moves on every sequencer pass, stop reading
the same leaves and nodes again at every push: in a reconnect storm that was most of
central's queries (docs/scale.md).

Least recently used nodes go first: proofs ask for the log's newest leaves and the
few large subtrees that every proof crosses. One cache per store, because two
databases are two logs.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

Key = tuple[int, int]  # (level, index)

# About 200 bytes a node in CPython (key tuple, 32-byte value, dict slot): ~26 MB.
DEFAULT_LIMIT = 1 << 17


class NodeCache:
    """`(level, index) -> hash`, at most `limit` of them (None: no limit, for one
    read's own cache). Thread-safe: the HTTP threads and the receiver share one."""

    def __init__(self, limit: int | None = DEFAULT_LIMIT) -> None:
        if limit is not None and limit < 1:
            raise ValueError(f"a node cache holds at least one node, not {limit}")
        self.limit = limit
        self._nodes: OrderedDict[Key, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, key: object) -> bool:
        return key in self._nodes

    def get(self, key: Key) -> bytes | None:
        with self._lock:
            found = self._nodes.get(key)
            if found is not None and self.limit is not None:
                self._nodes.move_to_end(key)
            return found

    def __setitem__(self, key: Key, value: bytes) -> None:
        self.update(((key, value),))

    def update(self, items: Iterable[tuple[Key, bytes]]) -> None:
        with self._lock:
            nodes = self._nodes
            for key, value in items:
                nodes[key] = value
                if self.limit is not None:
                    nodes.move_to_end(key)
            if self.limit is not None:
                while len(nodes) > self.limit:
                    nodes.popitem(last=False)
