"""The seed's phase 1 negotiation states and their transitions, as tables (portable).

The status page shows "Negotiating(x)" where x is how far the exchange got; the numbers are fixed
by the product's documentation (ipsec-status.txt, "Negotiation states") per exchange mode and role.
Each state is declared once below with its number and a one-line story; TRANSITIONS says, per
(mode, role), which input moves which state to which next state. The tables are checked when this
module is imported, so a typo fails at start-up and not in the middle of a negotiation.

Inputs the exchanges feed (what happened, not what to do):
  START        we decided to initiate (initiator only)
  RECEIVED     the first message of a new exchange arrived (responder only)
  VALID        the expected next message arrived and checked out
  SENT         we sent our next message
  ESTABLISHED  the exchange completed: the IKE SA is usable

A failure does not move the state: the state number then tells where the negotiation stopped,
which is exactly what the seed's table is for. An input that has no row for the current state
raises IllegalTransition and leaves the state unchanged (h11 style).
"""

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

IDLE_NUMBER = 0
ACTIVATED_NUMBER = 9


class IllegalTransition(Exception):
    """An input arrived that the current state has no transition for (state left unchanged)."""


# (mode, role) -> list of (state name, number, story). Numbers are the seed's, not invented.
STATES = {
    (MAIN, INITIATOR): [
        ("MI_IDLE", 0, "nothing negotiated yet"),
        ("MI_START", 1, "start: we decided to initiate main mode"),
        ("MI_1_SENT", 3, "1st msg sent: HDR, SA (our proposals)"),
        ("MI_1_VALID", 4, "1st valid msg received: HDR, SA (the responder's choice)"),
        ("MI_2_SENT", 5, "2nd msg sent: HDR, KE, Ni"),
        ("MI_2_VALID", 6, "2nd valid msg received: HDR, KE, Nr (keys derived)"),
        ("MI_3_SENT", 7, "3rd msg sent: HDR*, IDii, HASH_I"),
        ("MI_3_VALID", 8, "3rd valid msg received: HDR*, IDir, HASH_R verified"),
        ("MI_ACTIVATED", 9, "IKE SA established"),
    ],
    (MAIN, RESPONDER): [
        ("MR_IDLE", 0, "nothing negotiated yet"),
        ("MR_START", 1, "start: 1st msg received (HDR, SA)"),
        ("MR_1_VALID", 2, "1st valid msg received: a proposal of ours matched"),
        ("MR_1_SENT", 3, "1st msg sent: HDR, SA (our choice)"),
        ("MR_2_VALID", 4, "2nd valid msg received: HDR, KE, Ni (keys derived)"),
        ("MR_2_SENT", 5, "2nd msg sent: HDR, KE, Nr"),
        ("MR_3_VALID", 6, "3rd valid msg received: HDR*, IDii, HASH_I verified"),
        ("MR_3_SENT", 7, "3rd msg sent: HDR*, IDir, HASH_R"),
        ("MR_ACTIVATED", 9, "IKE SA established"),
    ],
    (AGGRESSIVE, INITIATOR): [
        ("AI_IDLE", 0, "nothing negotiated yet"),
        ("AI_START", 1, "start: we decided to initiate aggressive mode"),
        ("AI_1_SENT", 3, "1st msg sent: HDR, SA, KE, Ni, IDii"),
        ("AI_1_VALID", 4, "1st valid msg received: HDR, SA, KE, Nr, IDir, HASH_R verified"),
        ("AI_ACTIVATED", 9, "IKE SA established (HDR*, HASH_I sent)"),
    ],
    (AGGRESSIVE, RESPONDER): [
        ("AR_IDLE", 0, "nothing negotiated yet"),
        ("AR_START", 1, "start: 1st msg received (HDR, SA, KE, Ni, IDii)"),
        ("AR_1_VALID", 2, "1st valid msg received: proposal and ID accepted"),
        ("AR_1_SENT", 3, "1st msg sent: HDR, SA, KE, Nr, IDir, HASH_R"),
        ("AR_2_VALID", 4, "2nd valid msg received: HDR*, HASH_I verified"),
        ("AR_ACTIVATED", 9, "IKE SA established"),
    ],
}

# (mode, role) -> {state name: {input: next state name}}
TRANSITIONS = {
    (MAIN, INITIATOR): {
        "MI_IDLE": {START: "MI_START"},
        "MI_START": {SENT: "MI_1_SENT"},
        "MI_1_SENT": {VALID: "MI_1_VALID"},
        "MI_1_VALID": {SENT: "MI_2_SENT"},
        "MI_2_SENT": {VALID: "MI_2_VALID"},
        "MI_2_VALID": {SENT: "MI_3_SENT"},
        "MI_3_SENT": {VALID: "MI_3_VALID"},
        "MI_3_VALID": {ESTABLISHED: "MI_ACTIVATED"},
        "MI_ACTIVATED": {},
    },
    (MAIN, RESPONDER): {
        "MR_IDLE": {RECEIVED: "MR_START"},
        "MR_START": {VALID: "MR_1_VALID"},
        "MR_1_VALID": {SENT: "MR_1_SENT"},
        "MR_1_SENT": {VALID: "MR_2_VALID"},
        "MR_2_VALID": {SENT: "MR_2_SENT"},
        "MR_2_SENT": {VALID: "MR_3_VALID"},
        "MR_3_VALID": {SENT: "MR_3_SENT"},
        "MR_3_SENT": {ESTABLISHED: "MR_ACTIVATED"},
        "MR_ACTIVATED": {},
    },
    (AGGRESSIVE, INITIATOR): {
        "AI_IDLE": {START: "AI_START"},
        "AI_START": {SENT: "AI_1_SENT"},
        "AI_1_SENT": {VALID: "AI_1_VALID"},
        "AI_1_VALID": {ESTABLISHED: "AI_ACTIVATED"},
        "AI_ACTIVATED": {},
    },
    (AGGRESSIVE, RESPONDER): {
        "AR_IDLE": {RECEIVED: "AR_START"},
        "AR_START": {VALID: "AR_1_VALID"},
        "AR_1_VALID": {SENT: "AR_1_SENT"},
        "AR_1_SENT": {VALID: "AR_2_VALID"},
        "AR_2_VALID": {ESTABLISHED: "AR_ACTIVATED"},
        "AR_ACTIVATED": {},
    },
}

# The seed's table, column by column: which numbers exist for each mode and role.
SEED_NUMBERS = {
    (MAIN, INITIATOR): (0, 1, 3, 4, 5, 6, 7, 8, 9),
    (MAIN, RESPONDER): (0, 1, 2, 3, 4, 5, 6, 7, 9),
    (AGGRESSIVE, INITIATOR): (0, 1, 3, 4, 9),
    (AGGRESSIVE, RESPONDER): (0, 1, 2, 3, 4, 9),
}

_NUMBER = {}    # (mode, role, name) -> number
_STORY = {}     # (mode, role, name) -> story
_INITIAL = {}   # (mode, role) -> idle state name


def _validate():
    """Check the tables against each other and against the seed; fill the lookup dicts."""
    for key, rows in STATES.items():
        names = [r[0] for r in rows]
        if len(set(names)) != len(names):
            raise ValueError("states %s: a state is declared twice" % (key,))
        numbers = tuple(r[1] for r in rows)
        if numbers != SEED_NUMBERS[key]:
            raise ValueError("states %s: numbers %s differ from the seed's %s"
                             % (key, numbers, SEED_NUMBERS[key]))
        for name, number, story in rows:
            _NUMBER[key + (name,)] = number
            _STORY[key + (name,)] = story
        _INITIAL[key] = rows[0][0]
        table = TRANSITIONS.get(key)
        if table is None or set(table) != set(names):
            raise ValueError("transitions %s: rows must name exactly the declared states" % (key,))
        reached = set([rows[0][0]])
        for state, moves in table.items():
            for inp, target in moves.items():
                if inp not in INPUTS:
                    raise ValueError("transitions %s: unknown input %r" % (key, inp))
                if target not in table:
                    raise ValueError("transitions %s: %s goes to undeclared %s" % (key, state, target))
                if _NUMBER[key + (target,)] < _NUMBER[key + (state,)]:
                    raise ValueError("transitions %s: %s -> %s goes backwards" % (key, state, target))
                reached.add(target)
        if reached != set(names):
            raise ValueError("transitions %s: unreachable %s" % (key, sorted(set(names) - reached)))


_validate()


def status_text(number):
    """The page's Status column: Idle / Negotiating / Activated (the number goes alongside)."""
    if number == IDLE_NUMBER:
        return "Idle"
    if number == ACTIVATED_NUMBER:
        return "Activated"
    return "Negotiating"


class Machine:
    """The negotiation state of one IKE SA: a mode, a role and the current state name."""
    __slots__ = ("mode", "role", "state")

    def __init__(self, mode, role):
        if (mode, role) not in STATES:
            raise ValueError("no negotiation states for mode %r role %r" % (mode, role))
        self.mode = mode
        self.role = role
        self.state = _INITIAL[(mode, role)]

    def feed(self, inp):
        """Apply an input; IllegalTransition (state unchanged) when the table has no such row."""
        target = TRANSITIONS[(self.mode, self.role)][self.state].get(inp)
        if target is None:
            raise IllegalTransition("%s %s in %s (%d): no transition on %r"
                                    % (self.mode, self.role, self.state, self.number, inp))
        self.state = target
        return target

    def can(self, inp):
        return inp in TRANSITIONS[(self.mode, self.role)][self.state]

    @property
    def number(self):
        return _NUMBER[(self.mode, self.role, self.state)]

    @property
    def story(self):
        return _STORY[(self.mode, self.role, self.state)]

    @property
    def established(self):
        return self.number == ACTIVATED_NUMBER

    def __repr__(self):
        return "<%s %s %s(%d)>" % (self.mode, self.role, self.state, self.number)


def describe():
    """The tables as text (documentation and `ikectl` help): one line per state and transition."""
    lines = []
    for key in ((MAIN, INITIATOR), (MAIN, RESPONDER), (AGGRESSIVE, INITIATOR),
                (AGGRESSIVE, RESPONDER)):
        lines.append("%s mode, %s:" % key)
        for name, number, story in STATES[key]:
            moves = ", ".join("%s -> %s" % (i, t) for i, t in TRANSITIONS[key][name].items())
            lines.append("  %d %-13s %s%s" % (number, name, story, ("  [" + moves + "]") if moves else ""))
    return "\n".join(lines)
