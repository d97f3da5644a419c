"""ikecore: an IKEv1 (RFC 2407/2408/2409) daemon for routers, on the kernel's XFRM data plane."""
