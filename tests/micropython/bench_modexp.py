# Runs INSIDE MicroPython (node run.mjs bench_modexp.py input.json): times 2048-bit modular
# exponentiation with the built-in pow() -- the cost of MODP-2048 Diffie-Hellman there -- and
# prints "RESULT <json>" with the milliseconds of each run.
import json
import time

IN = json.loads(open("/input.json").read())
p = int(IN["p"], 16)
out = {}
for label in ("exp256", "exp2048"):
    exponent = int(IN[label], 16)
    runs = []
    for _ in range(IN["runs"]):
        start = time.ticks_us()
        pow(2, exponent, p)
        runs.append(time.ticks_diff(time.ticks_us(), start) / 1000)
    out[label] = runs
print("RESULT " + json.dumps(out))
