"""The interop lab's names for tests/support/netns.py (kept so tests written against them run):
two namespaces `a` ("ours") and `b` ("charon") joined by veth, wan0 10.99.0.1/24 and 10.99.0.2/24,
LAN addresses on lo (10.1.0.1/24, 10.2.0.1/24 and a second pair 10.1.1.1, 10.2.1.1)."""
from support.netns import *  # noqa: F401,F403
from support.netns import pair


def Lab(tag="ik"):
    """support.netns.pair(tag): lab.a and lab.b joined by wan0, checked with a ping."""
    return pair(tag)
