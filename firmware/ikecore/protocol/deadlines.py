"""The earliest deadline among many timer owners (portable: MicroPython subset).

The core has one timer for the driver (get_timer) and many owners of deadlines: IKE SAs (their
retransmissions, DPD, rekey, expiry), child SA groups, the admission bounds. Each has a
deadline() method: the next time it needs the core's handle_timer, or None.
"""

import heapq                     # MicroPython has it too (checked in the wasm build)


class DeadlineIndex:
    """The earliest deadline among many owners (IKE SAs, child SA groups) without visiting them
    all after every datagram: a heap of (deadline, seq, owner) with lazy invalidation. Whatever
    an input or a timer touches is marked dirty and recomputed once, at the next earliest();
    only the entry carrying an owner's current seq counts, older ones are dropped as they surface.
    O(log n) per touched owner instead of O(n) per datagram (at 1,000 tunnels the scan made
    peers give up)."""

    def __init__(self):
        self._heap = []
        self._current = {}                # owner -> seq of its live heap entry
        self._dirty = set()
        self._seq = 0

    @staticmethod
    def by_scan(owners):
        """The earliest deadline found by visiting every owner (O(n)): what earliest() must
        equal. For tests, never on the datagram path."""
        deadlines = [d for d in (owner.deadline() for owner in owners) if d is not None]
        return min(deadlines) if deadlines else None

    def mark(self, owner):
        self._dirty.add(owner)

    def _refresh(self):
        if not self._dirty:
            return
        dirty = self._dirty
        self._dirty = set()
        for owner in dirty:
            deadline = owner.deadline()
            if deadline is None:
                self._current.pop(owner, None)
                continue
            self._seq += 1
            self._current[owner] = self._seq
            heapq.heappush(self._heap, (deadline, self._seq, owner))
        if len(self._heap) > 2 * len(self._current) + 64:
            # Stale entries pile up when deadlines move later (DPD after each datagram).
            self._heap = [e for e in self._heap if self._current.get(e[2]) == e[1]]
            heapq.heapify(self._heap)

    def earliest(self):
        self._refresh()
        heap = self._heap
        while heap and self._current.get(heap[0][2]) != heap[0][1]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pop_due(self, now):
        """Owners whose deadline has come; they are dirty again (their timers will move)."""
        self._refresh()
        heap = self._heap
        due = []
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            owner = entry[2]
            if self._current.get(owner) == entry[1]:
                del self._current[owner]
                due.append(owner)
                self._dirty.add(owner)
        return due
