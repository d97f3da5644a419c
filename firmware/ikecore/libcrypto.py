"""Our own small binding to OpenSSL's public C API (libcrypto 3.x), through ctypes.

Only what the provider's hot path and the one signature `cryptography` cannot make need:
  * CBC ciphers (EVP_CIPHER_fetch + EVP_CipherInit_ex2/Update/Final_ex);
  * modular exponentiation with a per-prime Montgomery context (BN_mod_exp_mont_consttime);
  * RSA PKCS#1 v1.5 signing of raw bytes, without a DigestInfo (EVP_PKEY_sign with
    RSA_PKCS1_PADDING and no digest set), which IKEv1's RSA signatures are.

Every function used is in OpenSSL 3.0's public headers and unchanged since (3.0 to 3.6 are
tested: the host's, Debian 13's and Buildroot's). The library is the one the standard library's
`hashlib` already loaded (`libcrypto.so.3`), so the process holds one copy of OpenSSL, not one
more next to it. ctypes is part of every CPython (Buildroot builds it with libffi always).

Every pointer result is declared c_void_p: ctypes' default int would truncate it on 64 bits.
"""
import ctypes
import ctypes.util

from .protocol.crypto import CryptoError

c_int, c_void_p, c_char_p, c_size_t, c_ulong = (ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p,
                                                 ctypes.c_size_t, ctypes.c_ulong)

# name: (result type, argument types), all from OpenSSL 3.0's public headers.
_FUNCTIONS = {
    "OpenSSL_version_num": (c_ulong, ()),
    "ERR_get_error": (c_ulong, ()),
    "ERR_clear_error": (None, ()),
    "ERR_error_string_n": (None, (c_ulong, c_char_p, c_size_t)),
    # evp.h: ciphers
    "EVP_CIPHER_fetch": (c_void_p, (c_void_p, c_char_p, c_char_p)),
    "EVP_CIPHER_CTX_new": (c_void_p, ()),
    "EVP_CIPHER_CTX_free": (None, (c_void_p,)),
    "EVP_CipherInit_ex2": (c_int, (c_void_p, c_void_p, c_char_p, c_char_p, c_int, c_void_p)),
    "EVP_CIPHER_CTX_set_padding": (c_int, (c_void_p, c_int)),
    "EVP_CipherUpdate": (c_int, (c_void_p, c_void_p, ctypes.POINTER(c_int), c_char_p, c_int)),
    "EVP_CipherFinal_ex": (c_int, (c_void_p, c_void_p, ctypes.POINTER(c_int))),
    # bn.h: big numbers
    "BN_bin2bn": (c_void_p, (c_char_p, c_int, c_void_p)),
    "BN_bn2binpad": (c_int, (c_void_p, c_void_p, c_int)),
    "BN_new": (c_void_p, ()),
    "BN_clear_free": (None, (c_void_p,)),
    "BN_CTX_new": (c_void_p, ()),
    "BN_CTX_free": (None, (c_void_p,)),
    "BN_MONT_CTX_new": (c_void_p, ()),
    "BN_MONT_CTX_set": (c_int, (c_void_p, c_void_p, c_void_p)),
    "BN_MONT_CTX_free": (None, (c_void_p,)),
    "BN_mod_exp_mont_consttime": (c_int, (c_void_p,) * 6),
    # bio.h, pem.h, evp.h, rsa.h: a private key and a raw signature
    "BIO_new_mem_buf": (c_void_p, (c_char_p, c_int)),
    "BIO_free": (c_int, (c_void_p,)),
    "PEM_read_bio_PrivateKey": (c_void_p, (c_void_p, c_void_p, c_void_p, c_char_p)),
    "EVP_PKEY_is_a": (c_int, (c_void_p, c_char_p)),
    "EVP_PKEY_get_size": (c_int, (c_void_p,)),
    "EVP_PKEY_free": (None, (c_void_p,)),
    "EVP_PKEY_CTX_new_from_pkey": (c_void_p, (c_void_p, c_void_p, c_char_p)),
    "EVP_PKEY_CTX_free": (None, (c_void_p,)),
    "EVP_PKEY_sign_init": (c_int, (c_void_p,)),
    "EVP_PKEY_CTX_set_rsa_padding": (c_int, (c_void_p, c_int)),
    "EVP_PKEY_sign": (c_int, (c_void_p, c_void_p, ctypes.POINTER(c_size_t), c_char_p, c_size_t)),
    # x509.h, x509_vfy.h, x509v3.h, safestack.h: certificate path validation
    "d2i_X509": (c_void_p, (c_void_p, ctypes.POINTER(c_void_p), ctypes.c_long)),
    "X509_free": (None, (c_void_p,)),
    "d2i_X509_CRL": (c_void_p, (c_void_p, ctypes.POINTER(c_void_p), ctypes.c_long)),
    "X509_CRL_free": (None, (c_void_p,)),
    "X509_get_key_usage": (ctypes.c_uint32, (c_void_p,)),
    "OPENSSL_sk_new_null": (c_void_p, ()),
    "OPENSSL_sk_push": (c_int, (c_void_p, c_void_p)),
    "OPENSSL_sk_free": (None, (c_void_p,)),
    "X509_STORE_new": (c_void_p, ()),
    "X509_STORE_free": (None, (c_void_p,)),
    "X509_STORE_add_cert": (c_int, (c_void_p, c_void_p)),
    "X509_STORE_add_crl": (c_int, (c_void_p, c_void_p)),
    "X509_STORE_set_flags": (c_int, (c_void_p, c_ulong)),
    "X509_STORE_CTX_new": (c_void_p, ()),
    "X509_STORE_CTX_free": (None, (c_void_p,)),
    "X509_STORE_CTX_init": (c_int, (c_void_p, c_void_p, c_void_p, c_void_p)),
    "X509_STORE_CTX_set_flags": (None, (c_void_p, c_ulong)),
    "X509_STORE_CTX_set_time": (None, (c_void_p, c_ulong, ctypes.c_int64)),
    "X509_verify_cert": (c_int, (c_void_p,)),
    "X509_STORE_CTX_get_error": (c_int, (c_void_p,)),
    "X509_STORE_CTX_get_error_depth": (c_int, (c_void_p,)),
    "X509_STORE_CTX_set_verify_cb": (None, (c_void_p, c_void_p)),
    "X509_verify_cert_error_string": (c_char_p, (ctypes.c_long,)),
    "X509_STORE_CTX_get_current_cert": (c_void_p, (c_void_p,)),
    "i2d_X509": (c_int, (c_void_p, ctypes.POINTER(c_void_p))),
}
RSA_PKCS1_PADDING = 1                                   # rsa.h
# x509_vfy.h: verification flags and the error codes the provider words itself
X509_V_FLAG_CRL_CHECK = 0x4
X509_V_FLAG_CRL_CHECK_ALL = 0x8
X509_V_ERR_UNABLE_TO_GET_CRL = 3
X509_V_FLAG_NO_CHECK_TIME = 0x200000
V_ERR = {2: "unknown_issuer", 18: "unknown_issuer", 19: "unknown_issuer", 20: "unknown_issuer",
         21: "unknown_issuer", 9: "not_yet_valid", 10: "expired", 23: "revoked",
         79: "not_ca", 32: "ca_key_usage", 3: "no_crl", 11: "crl_not_yet_valid",
         12: "crl_expired"}
# x509v3.h: key usage bits X509_get_key_usage returns (all bits set when there is no extension)
KU_DIGITAL_SIGNATURE = 0x0080
KU_NON_REPUDIATION = 0x0040

_lib = None


def lib():
    """The loaded library with every function above declared; CryptoError if there is none."""
    global _lib
    if _lib is None:
        _lib = _load()
    return _lib


def _load():
    import _hashlib  # noqa: F401  (loads the process's libcrypto, so CDLL finds that copy)
    names = ["libcrypto.so.3", ctypes.util.find_library("crypto")]
    errors = []
    for name in names:
        if not name:
            continue
        try:
            library = ctypes.CDLL(name)
        except OSError as exc:
            errors.append(str(exc))
            continue
        try:
            version = _declare(library)
        except AttributeError as exc:
            raise CryptoError("%s is not OpenSSL 3's libcrypto: %s" % (name, exc))
        if version < 0x30000000:
            raise CryptoError("%s is OpenSSL %x, 3.0 or later is needed" % (name, version))
        return library
    raise CryptoError("OpenSSL's libcrypto 3 not found (%s)" % "; ".join(errors or ["no candidate"]))


def _declare(library):
    for name, (restype, argtypes) in _FUNCTIONS.items():
        function = getattr(library, name)
        function.restype = restype
        function.argtypes = argtypes
    return library.OpenSSL_version_num()


def version_text():
    """OpenSSL's version as "3.0.17" (from OpenSSL_version_num: 0xMNN00PP0)."""
    n = lib().OpenSSL_version_num()
    return "%d.%d.%d" % (n >> 28, (n >> 20) & 0xFF, (n >> 4) & 0xFF)


def error(what):
    """A CryptoError for a failed call, with OpenSSL's first queued reason; clears the queue."""
    library = lib()
    code = library.ERR_get_error()
    library.ERR_clear_error()
    if not code:
        return CryptoError("%s failed in OpenSSL" % what)
    text = ctypes.create_string_buffer(256)
    library.ERR_error_string_n(code, text, len(text))
    return CryptoError("%s failed in OpenSSL: %s" % (what, text.value.decode("ascii", "replace")))


# -- CBC ---------------------------------------------------------------------------------------
_ciphers = {}        # OpenSSL name -> EVP_CIPHER* (fetched once: a fetch per call costs a lookup)


def cbc(name, key, iv, data, encrypt):
    """One CBC pass without padding (len(data) a multiple of the block size, checked by the
    caller). name: OpenSSL's cipher name, e.g. b"aes-128-cbc"."""
    library = lib()
    cipher = _ciphers.get(name)
    if cipher is None:
        cipher = library.EVP_CIPHER_fetch(None, name, None)
        if not cipher:
            raise error("fetching the cipher %s" % name.decode())
        _ciphers[name] = cipher
    ctx = library.EVP_CIPHER_CTX_new()
    if not ctx:
        raise CryptoError("out of memory for a %s context" % name.decode())
    try:
        out = ctypes.create_string_buffer(len(data) + 32)
        written, final = c_int(0), c_int(0)
        if not (library.EVP_CipherInit_ex2(ctx, cipher, key, iv, 1 if encrypt else 0, None) == 1
                and library.EVP_CIPHER_CTX_set_padding(ctx, 0) == 1
                and library.EVP_CipherUpdate(ctx, out, ctypes.byref(written), data, len(data)) == 1
                and library.EVP_CipherFinal_ex(ctx, ctypes.addressof(out) + written.value,
                                               ctypes.byref(final)) == 1):
            raise error("%s %s" % (name.decode(), "encryption" if encrypt else "decryption"))
        return out.raw[:written.value + final.value]
    finally:
        library.EVP_CIPHER_CTX_free(ctx)


# -- modular exponentiation ----------------------------------------------------------------------
class Modulus:
    """A fixed odd modulus with its Montgomery context, set up once and then only read."""
    __slots__ = ("length", "bn", "mont")

    def __init__(self, modulus_bytes):
        library = lib()
        self.length = len(modulus_bytes)
        self.bn = self.mont = None
        self.bn = _bignum(modulus_bytes)
        self.mont = library.BN_MONT_CTX_new()
        bn_ctx = library.BN_CTX_new()
        try:
            if not self.mont or not bn_ctx or library.BN_MONT_CTX_set(self.mont, self.bn, bn_ctx) != 1:
                raise error("setting up a Montgomery context")
        finally:
            library.BN_CTX_free(bn_ctx)

    def power(self, base, exponent):
        """base^exponent mod m (big-endian bytes in and out, out left-padded to the modulus'
        length), constant-time in the exponent: it is the private value."""
        library = lib()
        result = library.BN_new()
        bn_ctx = library.BN_CTX_new()
        bn_base = bn_exponent = None
        try:
            bn_base, bn_exponent = _bignum(base), _bignum(exponent)
            out = ctypes.create_string_buffer(self.length)
            if not (result and bn_ctx and library.BN_mod_exp_mont_consttime(
                    result, bn_base, bn_exponent, self.bn, bn_ctx, self.mont) == 1
                    and library.BN_bn2binpad(result, out, self.length) == self.length):
                raise error("modular exponentiation")
            return out.raw
        finally:
            for bn in (result, bn_base, bn_exponent):
                library.BN_clear_free(bn)          # NULL-safe, and wipes the secret
            library.BN_CTX_free(bn_ctx)

    def __del__(self):
        if _lib is not None:
            if self.mont:
                _lib.BN_MONT_CTX_free(self.mont)
            _lib.BN_clear_free(self.bn)


def _bignum(data):
    bn = lib().BN_bin2bn(data, len(data), None)
    if not bn:
        raise CryptoError("out of memory for a big number")
    return bn


# -- RSA PKCS#1 v1.5 over raw bytes -------------------------------------------------------------
def rsa_sign_raw(key_pem, data):
    """The PKCS#1 v1.5 (type 1) signature of `data` itself, no DigestInfo around it: what IKEv1
    signs (RFC 2409 section 5.1, strongSwan's SIGN_RSA_EMSA_PKCS1_NULL). key_pem: an unencrypted
    PEM private key; an encrypted one is refused, never prompted for."""
    library = lib()
    bio = library.BIO_new_mem_buf(key_pem, len(key_pem))
    if not bio:
        raise CryptoError("out of memory for the private key")
    try:
        # No callback and an empty passphrase: OpenSSL's default callback would read a
        # passphrase from the terminal, a daemon has none.
        pkey = library.PEM_read_bio_PrivateKey(bio, None, None, b"")
    finally:
        library.BIO_free(bio)
    if not pkey:
        raise error("loading the private key")
    ctx = None
    try:
        if library.EVP_PKEY_is_a(pkey, b"RSA") != 1:
            raise CryptoError("private key is not an RSA key")
        ctx = library.EVP_PKEY_CTX_new_from_pkey(None, pkey, None)
        size = c_size_t(library.EVP_PKEY_get_size(pkey))
        signature = ctypes.create_string_buffer(size.value)
        if not (ctx and library.EVP_PKEY_sign_init(ctx) == 1
                and library.EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1
                and library.EVP_PKEY_sign(ctx, signature, ctypes.byref(size), data, len(data)) == 1):
            raise error("RSA signing")
        return signature.raw[:size.value]
    finally:
        library.EVP_PKEY_CTX_free(ctx)
        library.EVP_PKEY_free(pkey)


# -- certificate path validation ---------------------------------------------------------------
def _d2i(function, der, what):
    buf = ctypes.create_string_buffer(der, len(der))
    cursor = c_void_p(ctypes.addressof(buf))
    obj = function(None, ctypes.byref(cursor), len(der))
    if not obj:
        raise error("reading the %s" % what)
    return obj


# int (*X509_STORE_CTX_verify_cb)(int ok, X509_STORE_CTX *ctx), x509_vfy.h
_VERIFY_CB = ctypes.CFUNCTYPE(c_int, c_int, c_void_p)


@_VERIFY_CB
def _crl_optional_above_leaf(ok, ctx):
    """OpenSSL's verify callback: with every certificate checked against the CRLs
    (X509_V_FLAG_CRL_CHECK_ALL), a CA certificate whose issuer has no CRL among them is let
    through (strongSwan's default when no CRL is available), while the end entity's issuer must
    have one, as it must with X509_V_FLAG_CRL_CHECK alone. Every other verdict stays OpenSSL's."""
    if ok:
        return 1
    library = lib()
    if (library.X509_STORE_CTX_get_error(ctx) == X509_V_ERR_UNABLE_TO_GET_CRL
            and library.X509_STORE_CTX_get_error_depth(ctx) > 0):
        return 1
    return 0


def verify_path(leaf_der, untrusted_ders, trusted_ders, crl_ders, at_time, revocation=False):
    """OpenSSL's own path validation (X509_verify_cert): leaf_der up to one of trusted_ders,
    through any of untrusted_ders (intermediates sent or configured), with basicConstraints, the
    CAs' keyCertSign, validity dates at at_time (Unix seconds; None: dates not checked) and,
    when crl_ders is not empty or revocation is True, revocation of the whole chain: the leaf
    needs a CRL of its issuer among crl_ders; an intermediate (or the anchor) is checked when its issuer's CRL is
    among them and passes when there is none. Returns None when the path holds, else
    (error code, OpenSSL's text, DER of the certificate it failed on or None, its depth in the
    chain: 0 the leaf)."""
    library = lib()
    owned_x509, owned_crl = [], []
    store = library.X509_STORE_new()
    untrusted = library.OPENSSL_sk_new_null()
    ctx = library.X509_STORE_CTX_new()
    try:
        if not (store and untrusted and ctx):
            raise CryptoError("out of memory for certificate verification")
        leaf = _d2i(library.d2i_X509, leaf_der, "peer certificate")
        owned_x509.append(leaf)
        for der in trusted_ders:
            owned_x509.append(_d2i(library.d2i_X509, der, "CA certificate"))
            if library.X509_STORE_add_cert(store, owned_x509[-1]) != 1:
                raise error("adding a CA certificate")
        for der in untrusted_ders:
            owned_x509.append(_d2i(library.d2i_X509, der, "intermediate certificate"))
            library.OPENSSL_sk_push(untrusted, owned_x509[-1])
        for der in crl_ders:
            owned_crl.append(_d2i(library.d2i_X509_CRL, der, "CRL"))
            if library.X509_STORE_add_crl(store, owned_crl[-1]) != 1:
                raise error("adding a CRL")
        if crl_ders or revocation:
            library.X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL)
        if library.X509_STORE_CTX_init(ctx, store, leaf, untrusted) != 1:
            raise error("setting up certificate verification")
        library.X509_STORE_CTX_set_verify_cb(ctx, ctypes.cast(_crl_optional_above_leaf, c_void_p))
        if at_time is None:
            library.X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_NO_CHECK_TIME)
        else:
            library.X509_STORE_CTX_set_time(ctx, 0, int(at_time))
        ok = library.X509_verify_cert(ctx)
        library.ERR_clear_error()
        if ok == 1:
            return None
        code = library.X509_STORE_CTX_get_error(ctx)
        text = library.X509_verify_cert_error_string(code) or b"unknown error"
        return (code, text.decode("ascii", "replace"),
                _i2d(library.X509_STORE_CTX_get_current_cert(ctx)),
                library.X509_STORE_CTX_get_error_depth(ctx))
    finally:
        library.X509_STORE_CTX_free(ctx)            # all NULL-safe
        library.OPENSSL_sk_free(untrusted)
        library.X509_STORE_free(store)
        for obj in owned_x509:
            library.X509_free(obj)
        for obj in owned_crl:
            library.X509_CRL_free(obj)


def _i2d(cert):
    if not cert:
        return None
    library = lib()
    size = library.i2d_X509(cert, None)
    if size <= 0:
        return None
    buf = ctypes.create_string_buffer(size)
    cursor = c_void_p(ctypes.addressof(buf))
    library.i2d_X509(cert, ctypes.byref(cursor))
    return buf.raw


def leaf_key_usage(cert_der):
    """The keyUsage bits of a certificate (all set when it has no keyUsage extension)."""
    library = lib()
    cert = _d2i(library.d2i_X509, cert_der, "certificate")
    try:
        return library.X509_get_key_usage(cert)
    finally:
        library.X509_free(cert)
