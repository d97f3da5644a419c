"""The XFRM backend host tests' namespace (made by conftest.py with tests/support/netns.py): the
real kernel, a fresh namespace each.

The host kernel has NETLINK_XFRM (policies, SPI allocation, acquires, expires) but no esp4/ah4,
so SAs with keys cannot be installed here: that path is tested in the booted guest
(tests/qemu/test_xfrm_backend.py).

Namespace layout:   lo 10.1.0.1/24 ("LAN")   wan0 192.0.2.1/24 <-veth-> wan1 192.0.2.2/24
                    route 10.2.0.0/24 via 192.0.2.2 (the "remote LAN" behind the peer)
The backend's sockets are opened inside the namespace by switching this thread into it
(Namespace.entered(): a netlink socket stays in the namespace it was created in); commands run
with `ip -n`.
"""
from support.netns import Namespace, netns_unavailable  # noqa: F401  (the xfrm tests' names)

LOCAL_GW, REMOTE_GW = "192.0.2.1", "192.0.2.2"
LOCAL_HOST, LOCAL_NET = "10.1.0.1", "10.1.0.0/24"
REMOTE_HOST, REMOTE_NET = "10.2.0.1", "10.2.0.0/24"
