# Runs INSIDE MicroPython (node run.mjs check_core.py input.json): exercises the portable core
# with the MicroPython crypto provider on the inputs the pytest side chose, and prints one line
# "RESULT <json>" that tests/unit/test_micropython.py compares with CPython's answers.
import json
import time

from ikecore.protocol import codec, fragments, keymat, proposals
from ikecore.protocol.crypto_micropython import MicroPythonProvider

IN = json.loads(open("/input.json").read())
H = bytes.fromhex
crypto = MicroPythonProvider(standin_for=("aes128",))
out = {}

# -- codec: an SA payload built from proposals' attributes survives encode -> decode -> encode --
ike = proposals.parse_ike("aes128-sha256-modp2048")
sa = codec.SaPayload([codec.Proposal(1, proposals.PROTO_ISAKMP, b"", [
    codec.Transform(1, proposals.KEY_IKE, proposals.ike_attributes(ike, "psk", 28800))])])
msg = codec.Message(2, H(IN["cky_i"]), bytes(8), payloads=[sa, codec.NoncePayload(H(IN["ni"]))])
wire = codec.encode_message(msg)
again = codec.encode_message(codec.decode_message(wire))
decoded = codec.decode_message(wire)
transform = decoded.payloads[0].proposals[0].transforms[0]
out["codec_wire"] = wire.hex()
out["codec_round_trip"] = again == wire
out["codec_proposal"] = proposals.decode_ike_transform(transform.attributes).proposal.name

# -- IKE fragmentation: a 2 kB message split for a 576-byte path, reassembled out of order ------
big = codec.encode_message(codec.Message(2, H(IN["cky_i"]), H(IN["cky_r"]), payloads=[
    codec.VendorPayload(H(IN["ni"]) * 64)]))
pieces = fragments.split(big, 576, False)
log = []
reassembler = fragments.Reassembler(lambda remote, kind, level, text: log.append(text),
                                    fragments.new_counters())
whole = [reassembler.receive(codec.decode_header(d), d, ("192.0.2.1", 500), 0.0)
         for d in pieces[::-1] + pieces[:1]]
out["fragments_wire"] = [d.hex() for d in pieces]
out["fragments_reassembled"] = [w == big for w in whole if w is not None]
out["fragments_counters"] = reassembler.counters

# -- keymat with the HMAC-SHA256 PRF built on hashlib.sha256 -----------------------------------
prf = "sha256"
k = keymat.derive_phase1(crypto, prf, "aes128", "psk", H(IN["g_xy"]), H(IN["ni"]), H(IN["nr"]),
                         H(IN["cky_i"]), H(IN["cky_r"]), H(IN["g_xi"]), H(IN["g_xr"]),
                         psk=IN["psk"].encode())
for name in ("skeyid", "skeyid_d", "skeyid_a", "skeyid_e", "enc_key", "iv"):
    out[name] = getattr(k, name).hex()
out["hash_i"] = keymat.hash_i(crypto, prf, k.skeyid, H(IN["g_xi"]), H(IN["g_xr"]), H(IN["cky_i"]),
                              H(IN["cky_r"]), b"SAi_b", b"IDii_b").hex()
out["hash_r"] = keymat.hash_r(crypto, prf, k.skeyid, H(IN["g_xi"]), H(IN["g_xr"]), H(IN["cky_i"]),
                              H(IN["cky_r"]), b"SAi_b", b"IDir_b").hex()
out["phase2_iv"] = keymat.phase2_iv(crypto, prf, "aes128", H(IN["last_block"]), IN["mid"]).hex()
out["qm_hash3"] = keymat.qm_hash3(crypto, prf, k.skeyid_a, IN["mid"], H(IN["ni"]), H(IN["nr"])).hex()
out["keymat_pfs"] = keymat.keymat(crypto, prf, k.skeyid_d, 3, H(IN["spi"]), H(IN["ni"]),
                                  H(IN["nr"]), 48, g_qm_xy=H(IN["g_xy"])).hex()

# -- MODP-2048 Diffie-Hellman against CPython's public value -----------------------------------
private, public = crypto.dh_new("modp2048")
out["dh_public"] = public.hex()
out["dh_shared"] = crypto.dh_shared("modp2048", private, H(IN["dh_peer_public"])).hex()

# -- timing (printed by pytest, never asserted): one 2048-bit modexp, short and full exponent ---
p_int = int.from_bytes(H(IN["modexp_p"]), "big")
for label, exponent in (("modexp_256bit_exp_ms", IN["exp256"]), ("modexp_2048bit_exp_ms", IN["exp2048"])):
    start = time.ticks_ms()
    result = pow(2, int(exponent, 16), p_int)
    out[label] = time.ticks_diff(time.ticks_ms(), start)
    out[label.replace("_ms", "_result")] = "%x" % result

print("RESULT " + json.dumps(out))
