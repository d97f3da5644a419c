"""The negotiation state machines as tables: one row per state (portable).

Each machine is one table of rows, in the manner of Libreswan's `state_v1_microcode` table
(programs/pluto/ikev1_states.c). A row says everything about one state:

  state      its name, e.g. "MI_1_SENT"
  number     the seed's number (phase 1 only; ipsec-status.txt, "Negotiation states") and the
  story      one-line meaning the status page and `describe()` show
  on, next   the one input that moves it on, and the state that input leads to (none: final)
  handler    the name of the function that takes the peer's message awaited in this state
             (rows that wait for no message have none); the exchange module binds the names
             to its functions at import (Table.bind), so a name without a function fails there
  message    that message as the diagnoses name it ("message 3", "quick mode message 2")
  required   payload types (consts.PT_*) the message must carry; the dispatcher checks them
             before the handler runs (Row.lacking) and answers a message without them itself
  first      the payload type that must come first (quick mode: HASH), or None
  optional   what else the handler reads; anything outside required + optional is ignored
  arrives    CLEAR, ENCRYPTED or EITHER: how the awaited message must come (phase 1)

Every table is checked when it is built, so a bad row fails at import naming the row: states
unique, every next state a row, inputs known, a handler exactly on the rows that wait for a
message (their input is VALID), payloads known top-level payload types. The phase 1 tables are
also checked against the seed: its numbers per mode and role, never backwards, every state
reachable. The quick mode table lives in quickmode.py, built with the same Table.

Inputs of the phase 1 machines (what happened, not what to do):
  START        we decided to initiate (initiator only)
  RECEIVED     the first message of a new exchange arrived (responder only)
  VALID        the expected next message arrived and checked out
  SENT         we sent our next message
  ESTABLISHED  the exchange completed: the IKE SA is usable

A failure does not move the state: the state number then tells where the negotiation stopped,
which is exactly what the seed's table is for. An input that has no row for the current state
raises IllegalTransition and leaves the state unchanged (h11 style).

Adding a state: add its row (for phase 1 with the seed's number), point the row before it at it,
write the handler in the exchange module under the row's handler name; the checks at import
say what is still missing.
"""

from . import codec
from . import consts as C

MAIN = "main"
AGGRESSIVE = "aggressive"
INITIATOR = "initiator"
RESPONDER = "responder"

START = "start"
RECEIVED = "received"
VALID = "valid"
SENT = "sent"
ESTABLISHED = "established"
INPUTS = (START, RECEIVED, VALID, SENT, ESTABLISHED)

# How the message a row awaits must come.
CLEAR = "clear"
ENCRYPTED = "encrypted"
EITHER = "either"

IDLE_NUMBER = 0
ACTIVATED_NUMBER = 9


class IllegalTransition(Exception):
    """An input arrived that the current state has no transition for (state left unchanged)."""


class Row:
    """One state of a machine: see the module's docstring for the fields."""
    __slots__ = ("state", "number", "story", "on", "next", "handler", "message", "required",
                 "first", "optional", "arrives")

    def __init__(self, state, number, story, on=None, next=None, handler=None, message=None,
                 required=(), first=None, optional=(), arrives=CLEAR):
        self.state = state
        self.number = number
        self.story = story
        self.on = on
        self.next = next
        self.handler = handler
        self.message = message
        self.required = tuple(required)
        self.first = first
        self.optional = tuple(optional)
        self.arrives = arrives

    def lacking(self, received):
        """None when the received message (ikesa.Received) has what this row requires, else the
        reason, for a MalformedMessage: "message 3 lacks KE, NONCE (has VID)"."""
        missing = [C.name(C.PAYLOAD_NAMES, t) for t in self.required
                   if received.one(codec.PAYLOAD_CLASSES[t]) is None]
        if missing:
            return "%s lacks %s (has %s)" % (self.message, ", ".join(missing),
                                             received.types() or "nothing")
        if self.first is not None and received.index_of(codec.PAYLOAD_CLASSES[self.first]) != 0:
            return "%s must start with %s (has %s)" % (
                self.message, C.name(C.PAYLOAD_NAMES, self.first), received.types() or "nothing")
        return None

    def describe(self):
        """The row as one line of text (`describe()`, docs)."""
        text = "%-13s %s" % (self.state, self.story)
        if self.on is not None:
            text += "  [%s -> %s]" % (self.on, self.next)
        if self.handler is not None:
            names = lambda types: ", ".join(C.name(C.PAYLOAD_NAMES, t) for t in types)
            text += "  %s: %s (%s) requires %s" % (self.handler, self.message, self.arrives,
                                                    names(self.required) or "nothing")
            if self.first is not None:
                text += " (%s first)" % names((self.first,))
            if self.optional:
                text += ", may carry " + names(self.optional)
        return text


class Table:
    """The rows of one machine, checked when built; the first row is the initial state."""

    def __init__(self, name, rows):
        self.name = name
        self.order = tuple(rows)
        self.rows = {}
        for row in self.order:
            if row.state in self.rows:
                self._bad(row, "declared twice")
            self.rows[row.state] = row
        if not self.order:
            raise ValueError("%s table: no rows" % name)
        self.initial = self.order[0].state
        for row in self.order:
            self._check(row)

    def _bad(self, row, problem):
        raise ValueError("%s table, state %s: %s" % (self.name, row.state, problem))

    def _check(self, row):
        if row.on is not None and row.on not in INPUTS:
            self._bad(row, "unknown input %r" % (row.on,))
        if (row.on is None) != (row.next is None):
            self._bad(row, "an input needs a next state and a next state an input")
        if row.next is not None and row.next not in self.rows:
            self._bad(row, "goes to undeclared %s" % row.next)
        waits = row.on == VALID
        if waits and not isinstance(row.handler, str):
            self._bad(row, "waits for the peer's message (%s) but names no handler" % VALID)
        if not waits and row.handler is not None:
            self._bad(row, "names handler %s but waits for no message" % row.handler)
        if not waits and (row.required or row.optional or row.first is not None):
            self._bad(row, "lists payloads but waits for no message")
        if waits and not isinstance(row.message, str):
            self._bad(row, "names no message for its diagnoses")
        if row.arrives not in (CLEAR, ENCRYPTED, EITHER):
            self._bad(row, "arrives %r: must be clear, encrypted or either" % (row.arrives,))
        for kind, types in (("required", row.required), ("optional", row.optional),
                            ("first", () if row.first is None else (row.first,))):
            for t in types:
                if t not in codec.PAYLOAD_CLASSES:
                    self._bad(row, "%s payload %r is not a top-level payload type" % (kind, t))
        if row.first is not None and row.first not in row.required:
            self._bad(row, "its first payload must be required too")

    def bind(self, lookup, where):
        """{state: handler function} for the rows that have a handler; lookup(name) -> the
        function or None. A name without a function fails here, naming the row."""
        handlers = {}
        for row in self.order:
            if row.handler is None:
                continue
            function = lookup(row.handler)
            if function is None or not callable(function):
                self._bad(row, "handler %s is not defined in %s" % (row.handler, where))
            handlers[row.state] = function
        return handlers

    def describe(self):
        lines = []
        for row in self.order:
            number = "" if row.number is None else "%d " % row.number
            lines.append("  " + number + row.describe())
        return lines


# Payload types, short, for the rows below.
SA, KE, NONCE, ID, HASH, SIG = C.PT_SA, C.PT_KE, C.PT_NONCE, C.PT_ID, C.PT_HASH, C.PT_SIG
CERT, CR, N, VID, NAT_D = C.PT_CERT, C.PT_CR, C.PT_NOTIFY, C.PT_VENDOR, C.PT_NAT_D
# The proof (HASH for pre-shared keys, SIG with CERT for certificates) is read by auth.verify:
# which one is due depends on the peer's auth, and its absence is that check's diagnosis (an
# authentication failure, or a method mismatch when a HASH comes instead of a SIG), so it is
# listed as optional.
_PROOF = (HASH, SIG, CERT)


def _p1(state, number, story, on, next, handler=None, message=None, required=(), optional=(),
        arrives=CLEAR):
    return Row(state, number, story, on, next, handler, message, required, None, optional,
               arrives)


# (mode, role) -> the machine. Numbers are the seed's, not invented. The handlers are phase1.py's
# (named pluto style: main_inR1_outI2 takes the responder's first message and sends our second).
PHASE1 = {
    (MAIN, INITIATOR): Table("main mode initiator", (
        _p1("MI_IDLE", 0, "nothing negotiated yet", START, "MI_START"),
        _p1("MI_START", 1, "start: we decided to initiate main mode", SENT, "MI_1_SENT"),
        _p1("MI_1_SENT", 3, "1st msg sent: HDR, SA (our proposals)", VALID, "MI_1_VALID",
            "main_inR1_outI2", "message 2", (SA,), (VID, N)),
        _p1("MI_1_VALID", 4, "1st valid msg received: HDR, SA (the responder's choice)",
            SENT, "MI_2_SENT"),
        _p1("MI_2_SENT", 5, "2nd msg sent: HDR, KE, Ni", VALID, "MI_2_VALID",
            "main_inR2_outI3", "message 4", (KE, NONCE), (CR, NAT_D, VID)),
        _p1("MI_2_VALID", 6, "2nd valid msg received: HDR, KE, Nr (keys derived)",
            SENT, "MI_3_SENT"),
        _p1("MI_3_SENT", 7, "3rd msg sent: HDR*, IDii, HASH_I", VALID, "MI_3_VALID",
            "main_inR3", "message 6", (ID,), _PROOF + (N, VID), ENCRYPTED),
        _p1("MI_3_VALID", 8, "3rd valid msg received: HDR*, IDir, HASH_R verified",
            ESTABLISHED, "MI_ACTIVATED"),
        _p1("MI_ACTIVATED", 9, "IKE SA established", None, None),
    )),
    (MAIN, RESPONDER): Table("main mode responder", (
        _p1("MR_IDLE", 0, "nothing negotiated yet", RECEIVED, "MR_START"),
        _p1("MR_START", 1, "start: 1st msg received (HDR, SA)", VALID, "MR_1_VALID",
            "main_inI1_outR1", "message 1", (SA,), (VID,)),
        _p1("MR_1_VALID", 2, "1st valid msg received: a proposal of ours matched",
            SENT, "MR_1_SENT"),
        _p1("MR_1_SENT", 3, "1st msg sent: HDR, SA (our choice)", VALID, "MR_2_VALID",
            "main_inI2_outR2", "message 3", (KE, NONCE), (CR, NAT_D, VID)),
        _p1("MR_2_VALID", 4, "2nd valid msg received: HDR, KE, Ni (keys derived)",
            SENT, "MR_2_SENT"),
        _p1("MR_2_SENT", 5, "2nd msg sent: HDR, KE, Nr", VALID, "MR_3_VALID",
            "main_inI3_outR3", "message 5", (ID,), _PROOF + (N, VID), ENCRYPTED),
        _p1("MR_3_VALID", 6, "3rd valid msg received: HDR*, IDii, HASH_I verified",
            SENT, "MR_3_SENT"),
        _p1("MR_3_SENT", 7, "3rd msg sent: HDR*, IDir, HASH_R", ESTABLISHED, "MR_ACTIVATED"),
        _p1("MR_ACTIVATED", 9, "IKE SA established", None, None),
    )),
    (AGGRESSIVE, INITIATOR): Table("aggressive mode initiator", (
        _p1("AI_IDLE", 0, "nothing negotiated yet", START, "AI_START"),
        _p1("AI_START", 1, "start: we decided to initiate aggressive mode", SENT, "AI_1_SENT"),
        _p1("AI_1_SENT", 3, "1st msg sent: HDR, SA, KE, Ni, IDii", VALID, "AI_1_VALID",
            "aggr_inR1_outI2", "aggressive mode message 2", (SA, KE, NONCE, ID),
            _PROOF + (CR, N, NAT_D, VID)),
        _p1("AI_1_VALID", 4, "1st valid msg received: HDR, SA, KE, Nr, IDir, HASH_R verified",
            ESTABLISHED, "AI_ACTIVATED"),
        _p1("AI_ACTIVATED", 9, "IKE SA established (HDR*, HASH_I sent)", None, None),
    )),
    (AGGRESSIVE, RESPONDER): Table("aggressive mode responder", (
        _p1("AR_IDLE", 0, "nothing negotiated yet", RECEIVED, "AR_START"),
        _p1("AR_START", 1, "start: 1st msg received (HDR, SA, KE, Ni, IDii)", VALID,
            "AR_1_VALID", "aggr_inI1_outR1", "aggressive mode message 1", (SA, KE, NONCE, ID),
            (CR, VID)),
        _p1("AR_1_VALID", 2, "1st valid msg received: proposal and ID accepted",
            SENT, "AR_1_SENT"),
        # RFC 2409 shows message 3 in clear; Libreswan and strongSwan encrypt it: both come.
        _p1("AR_1_SENT", 3, "1st msg sent: HDR, SA, KE, Nr, IDir, HASH_R", VALID, "AR_2_VALID",
            "aggr_inI2", "message 3", (), _PROOF + (N, NAT_D, VID), EITHER),
        _p1("AR_2_VALID", 4, "2nd valid msg received: HDR*, HASH_I verified",
            ESTABLISHED, "AR_ACTIVATED"),
        _p1("AR_ACTIVATED", 9, "IKE SA established", None, None),
    )),
}

# The seed's table, column by column: which numbers exist for each mode and role.
SEED_NUMBERS = {
    (MAIN, INITIATOR): (0, 1, 3, 4, 5, 6, 7, 8, 9),
    (MAIN, RESPONDER): (0, 1, 2, 3, 4, 5, 6, 7, 9),
    (AGGRESSIVE, INITIATOR): (0, 1, 3, 4, 9),
    (AGGRESSIVE, RESPONDER): (0, 1, 2, 3, 4, 9),
}


def check_seed(key, table):
    """A phase 1 table against the seed: its numbers in order, never backwards, all reachable."""
    numbers = tuple(row.number for row in table.order)
    if numbers != SEED_NUMBERS.get(key):
        raise ValueError("%s table: numbers %s differ from the seed's %s"
                         % (table.name, numbers, SEED_NUMBERS.get(key)))
    reached = set([table.initial])
    for row in table.order:
        if row.next is not None:
            if table.rows[row.next].number < row.number:
                table._bad(row, "goes backwards to %s" % row.next)
            reached.add(row.next)
    unreachable = [row.state for row in table.order if row.state not in reached]
    if unreachable:
        raise ValueError("%s table: unreachable %s" % (table.name, unreachable))


def _validate():
    for key in SEED_NUMBERS:
        if key not in PHASE1:
            raise ValueError("no phase 1 table for %s %s" % key)
    for key, table in PHASE1.items():
        check_seed(key, table)


_validate()


def status_text(number):
    """The page's Status column: Idle / Negotiating / Activated (the number goes alongside)."""
    if number == IDLE_NUMBER:
        return "Idle"
    if number == ACTIVATED_NUMBER:
        return "Activated"
    return "Negotiating"


class Machine:
    """The negotiation state of one IKE SA: a mode, a role and the current state's row (kept
    itself, not its name: the status and the summary read `number` for every IKE SA)."""
    __slots__ = ("mode", "role", "row", "table")

    def __init__(self, mode, role):
        table = PHASE1.get((mode, role))
        if table is None:
            raise ValueError("no negotiation states for mode %r role %r" % (mode, role))
        self.mode = mode
        self.role = role
        self.table = table
        self.row = table.rows[table.initial]

    @property
    def state(self):
        return self.row.state

    def feed(self, inp):
        """Apply an input; IllegalTransition (state unchanged) when the row has no such move."""
        row = self.row
        if row.on != inp:
            raise IllegalTransition("%s %s in %s (%d): no transition on %r"
                                    % (self.mode, self.role, row.state, row.number, inp))
        self.row = self.table.rows[row.next]
        return row.next

    def can(self, inp):
        return self.row.on == inp

    @property
    def number(self):
        return self.row.number

    @property
    def story(self):
        return self.row.story

    @property
    def established(self):
        return self.row.number == ACTIVATED_NUMBER

    def __repr__(self):
        return "<%s %s %s(%d)>" % (self.mode, self.role, self.state, self.number)


def describe():
    """The tables as text (documentation and `ikectl` help): one line per state."""
    lines = []
    for key in ((MAIN, INITIATOR), (MAIN, RESPONDER), (AGGRESSIVE, INITIATOR),
                (AGGRESSIVE, RESPONDER)):
        lines.append("%s mode, %s:" % key)
        lines += PHASE1[key].describe()
    return "\n".join(lines)
