# Runs INSIDE MicroPython: import every module of the portable core that run.mjs installed; print
# "RESULT <json>" mapping module -> null (imported) or the error text.
import json

result = {}
for name in json.loads(open("/installed.json").read()):
    try:
        __import__("ikecore.protocol." + name)
        result[name] = None
    except Exception as exc:           # report every failure, not just the first
        result[name] = "%s: %s" % (type(exc).__name__, exc)
print("RESULT " + json.dumps(result))
