"""Admission control: how much unauthenticated and self-started work the core takes on at once.

Without bounds a spray of first messages costs an IKE SA each (20,000 main mode message 1s left
7,912 half-open SAs and an error line each), and an aggressive mode message 1 costs a
Diffie-Hellman computation before anything is proven. strongSwan bounds half-open IKE SAs per
peer address (charon.block_threshold, 5) and in total (charon.init_limit_half_open); Libreswan
likewise (its half-open limits drop new negotiations beyond them). Here, four gates:

- half-open responder IKE SAs per remote address and in total: a first message beyond them is
  dropped before any state is made (a real initiator retransmits and gets in later); except
  that a main mode first message at the total bound pushes out the oldest main mode SA that
  heard only message 1 (a spray's, most likely: a real initiator answers our message 2 within
  a round trip). So a sustained spray from many addresses cannot lock a new peer out: it costs
  no DH, and what it pushes out cost none. The per-address bound is never made room for;
- Diffie-Hellman in flight: responder SAs that computed a DH value (aggressive mode message 1,
  main mode message 3) and wait to be authenticated; a message that would start one more is
  dropped before the DH (main mode message 3 is retransmitted by its initiator);
- our own initiations: at most MAX_INITIATING phase 1s we started are negotiating at once; more
  wait in arrival order and start as slots free, so a burst of `up`s (a reboot, an outage's end)
  is paced instead of ending in a storm of retransmissions;
- under pressure (half-open at half the total bound or more) a responder SA that heard only the
  first message, new or older, waits PRESSURE_PATIENCE_S instead of the usual patience and then
  goes quietly (no page entry, no error line): a spoofed source never sends a second message,
  and a real initiator answers our message 2 at once. Without pressure nothing changes: a peer
  that stops after message 1 is diagnosed as before.
Every refusal is counted; the first of an episode is logged with the bound that bit, the end of
the episode (no refusal for EPISODE_QUIET_S) with the counts. Portable: MicroPython subset.
"""

MAX_HALF_OPEN = 1000            # responder IKE SAs not yet established, in total
MAX_HALF_OPEN_PER_ADDRESS = 10  # ... from one address (strongSwan: 5; NATed branches share one)
MAX_DH_IN_FLIGHT = 200          # responder SAs holding a DH result, not yet authenticated
MAX_INITIATING = 32             # our own phase 1s negotiating at once; the rest are queued
PRESSURE_PATIENCE_S = 10        # a first-message-only responder SA under pressure
EPISODE_QUIET_S = 10            # no refusal this long: the episode is over, its counts logged

REFUSAL_WORDS = {
    "address": "half-open negotiations from one address (at most %d)" % MAX_HALF_OPEN_PER_ADDRESS,
    "total": "half-open negotiations in total (at most %d)" % MAX_HALF_OPEN,
    "dh": "Diffie-Hellman computations for unauthenticated peers (at most %d)" % MAX_DH_IN_FLIGHT,
}
REFUSAL_WORDS["room"] = REFUSAL_WORDS["total"]      # a push-out (room_for) is the total bound


class Admission:
    def __init__(self):
        self.half_open = 0
        self.per_address = {}        # remote address -> half-open responder SAs from it
        self._first_only = {}        # id -> responder SA that heard only message 1, not quieted
        self._evictable = {}         # id -> main mode responder SA that heard only message 1
        self.evicted = 0
        self.dh_in_flight = 0
        self.initiating = 0
        self.queue = []              # peer names waiting for an initiation slot, in order
        self._queued = set()
        self.refused = {"address": 0, "total": 0, "dh": 0}
        self.expired_quietly = 0
        self._episode = None         # [first refusal time, last refusal time, {kind: n}, {addr}]
        self.first_line = None       # the open episode's first line until the core logs it

    # -- responder -------------------------------------------------------------------------------
    def room_for(self, address, computes_dh, now):
        """The SA to drop so that a new first message from address gets its place: the oldest
        main mode responder SA that heard only message 1, when the total bound is all that
        stands in the way and neither the new SA nor the one pushed out costs a DH (so sprays
        never buy DH computations this way). None otherwise."""
        if (computes_dh or self.half_open < MAX_HALF_OPEN or not self._evictable
                or self.per_address.get(address, 0) >= MAX_HALF_OPEN_PER_ADDRESS):
            return None
        self.evicted += 1
        self._note("room", address, now)
        return next(iter(self._evictable.values()))      # dicts keep insertion order

    def admit_first_message(self, address, computes_dh, now):
        """None when a new responder SA from address may be made (computes_dh: answering it
        takes a DH value, aggressive mode), else the refusal's kind."""
        if self.per_address.get(address, 0) >= MAX_HALF_OPEN_PER_ADDRESS:
            return self._refuse("address", address, now)
        if self.half_open >= MAX_HALF_OPEN:
            return self._refuse("total", address, now)
        if computes_dh and self.dh_in_flight >= MAX_DH_IN_FLIGHT:
            return self._refuse("dh", address, now)
        return None

    def opened_responder(self, sa, computes_dh):
        sa.admission = "responder"
        self.half_open += 1
        address = sa.remote_at_admission = sa.remote[0]
        self.per_address[address] = self.per_address.get(address, 0) + 1
        self._first_only[sa.id] = sa
        if not computes_dh:
            self._evictable[sa.id] = sa
        if computes_dh:
            sa.dh_counted = True
            self.dh_in_flight += 1

    def admit_dh(self, sa, now):
        """Before a main mode responder's DH (message 3): True, and it counts until the SA is
        authenticated or goes; False when the bound is reached (drop the message)."""
        if sa.dh_counted:
            return True
        if self.dh_in_flight >= MAX_DH_IN_FLIGHT:
            self._refuse("dh", sa.remote[0], now)
            return False
        sa.dh_counted = True
        self.dh_in_flight += 1
        return True

    def under_pressure(self):
        return self.half_open * 2 >= MAX_HALF_OPEN

    def heard_more(self, sa):
        """The responder SA got a second message: a real initiator, never quieted."""
        self._first_only.pop(sa.id, None)
        self._evictable.pop(sa.id, None)

    def to_quiet(self):
        """Under pressure: the first-message-only SAs not yet given the short patience (each
        once; O(their number) once per episode of pressure, none after)."""
        if not self._first_only or not self.under_pressure():
            return []
        found = list(self._first_only.values())
        self._first_only = {}
        return found

    # -- initiator -------------------------------------------------------------------------------
    def may_initiate(self):
        return self.initiating < MAX_INITIATING and not self.queue

    def opened_initiator(self, sa):
        sa.admission = "initiator"
        self.initiating += 1

    def enqueue(self, peer_name):
        if peer_name not in self._queued:
            self._queued.add(peer_name)
            self.queue.append(peer_name)

    def is_queued(self, peer_name):
        return peer_name in self._queued

    def forget_queued(self, peer_name):
        if peer_name in self._queued:
            self._queued.discard(peer_name)
            self.queue.remove(peer_name)

    def next_queued(self):
        """A peer to start now, or None (no slot free or nobody waiting)."""
        if self.initiating >= MAX_INITIATING or not self.queue:
            return None
        name = self.queue.pop(0)
        self._queued.discard(name)
        return name

    # -- both --------------------------------------------------------------------------------------
    def closed_dh(self, sa):
        """The SA holds no DH result waiting for authentication any more (idempotent)."""
        if sa.dh_counted:
            sa.dh_counted = False
            self.dh_in_flight -= 1

    def closed(self, sa):
        """The SA was authenticated, failed or removed: it no longer counts (idempotent)."""
        self._first_only.pop(sa.id, None)
        self._evictable.pop(sa.id, None)
        self.closed_dh(sa)
        if sa.admission == "responder":
            self.half_open -= 1
            address = sa.remote_at_admission
            left = self.per_address.get(address, 1) - 1
            if left > 0:
                self.per_address[address] = left
            else:
                self.per_address.pop(address, None)
        elif sa.admission == "initiator":
            self.initiating -= 1
        sa.admission = None

    # -- refusals and their log ------------------------------------------------------------------
    def _refuse(self, kind, address, now):
        self.refused[kind] += 1
        self._note(kind, address, now)
        return kind

    def _note(self, kind, address, now):
        """A refusal or a push-out in the open episode (opened here if none is)."""
        if self._episode is None:
            self._episode = [now, now, {}, set()]
            self.first_line = "admission: %s: too many %s" % (
                "dropping the oldest half-open negotiations for new ones" if kind == "room"
                else "dropping new negotiations", REFUSAL_WORDS[kind])
        episode = self._episode
        episode[1] = now
        episode[2][kind] = episode[2].get(kind, 0) + 1
        if len(episode[3]) < 10000:          # bounded: a count, not a record of the spray
            episode[3].add(address)

    def take_first_line(self):
        """The episode's opening line, once (None otherwise)."""
        line, self.first_line = self.first_line, None
        return line

    def deadline(self):
        return self._episode[1] + EPISODE_QUIET_S if self._episode is not None else None

    def end_episode(self, now):
        """The closing line with counts once the episode has been quiet long enough, else None."""
        episode = self._episode
        if episode is None or now < episode[1] + EPISODE_QUIET_S:
            return None
        self._episode = None
        counts = episode[2]
        kinds = ", ".join("%d for %s" % (n, REFUSAL_WORDS[k]) for k, n in sorted(counts.items())
                          if k != "room")
        if "room" in counts:
            kinds += "%s%d older half-open negotiations pushed out by new ones" % (
                ", " if kinds else "", counts["room"])
        addresses = len(episode[3])
        return "admission: dropped %d first messages in %d s from %s%d addresses (%s); " \
               "accepting again" % (sum(n for k, n in counts.items() if k != "room"),
                                    int(episode[1] - episode[0]),
                                    "at least " if addresses >= 10000 else "", addresses, kinds)

    def snapshot(self):
        return {"half_open": self.half_open, "half_open_limit": MAX_HALF_OPEN,
                "half_open_per_address_limit": MAX_HALF_OPEN_PER_ADDRESS,
                "dh_in_flight": self.dh_in_flight, "dh_in_flight_limit": MAX_DH_IN_FLIGHT,
                "initiating": self.initiating, "initiating_limit": MAX_INITIATING,
                "queued": len(self.queue), "refused": dict(self.refused),
                "pushed_out": self.evicted,
                "expired_quietly": self.expired_quietly}
