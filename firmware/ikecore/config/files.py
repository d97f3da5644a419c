"""The files a peer names -- psk_file, cert, key, ca, intermediates, crls -- read and checked
here, so the protocol core gets bytes and never opens a file.

`credentials` is the rule schema.PEER runs after `auth`: which of these keys an auth method
allows (Key.only_with), which it needs, and the loaded material for settings.Peer.
"""
import os
import stat

from ikecore.config import schema
from ikecore.config.errors import ConfigError


def credentials(checker, path, entry, values):
    """values["credentials"]: settings.Peer's keyword arguments for the key material."""
    auth = values["auth"]
    for key in schema.PEER:
        if key.only_with and key.name in entry and values[key.only_with[0]] != key.only_with[1]:
            checker.error(path + (key.name,), "is only used with %s = \"%s\"" % key.only_with)
    if auth == "psk":
        values["credentials"] = {"psk": preshared_key(checker, path, entry)}
    else:
        values["credentials"] = certificates(checker, path, entry)


def preshared_key(checker, path, entry):
    if "psk" in entry and "psk_file" in entry:
        checker.error(path + ("psk_file",), "use either psk or psk_file, not both")
    if "psk" not in entry and "psk_file" not in entry:
        checker.error(path, "auth = \"psk\" needs a psk or a psk_file")
    if "psk" in entry:
        return checker.string(path + ("psk",), entry["psk"]).encode("utf-8")
    kpath = path + ("psk_file",)
    full, data = checker.file(kpath, entry["psk_file"], "pre-shared key")
    if os.stat(full).st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        checker.warn(kpath, "%s is readable by others; chmod 600 it" % full)
    data = data.rstrip(b"\r\n")
    if not data.strip():
        checker.error(kpath, "pre-shared key file %s is empty" % full)
    return data


def certificates(checker, path, entry):
    for key in ("cert", "key", "ca"):
        if key not in entry:
            # on the missing key itself, so the settings page marks that field
            checker.error(path + (key,), "auth = \"rsa\" needs cert, key and ca files (%s "
                          "missing)" % key)
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    cert = certificate(checker, path + ("cert",), entry["cert"], "certificate")
    # ca: one file (the original key) or a list of them; intermediates and crls: lists.
    cas = entry["ca"] if isinstance(entry["ca"], list) else [entry["ca"]]
    cas = path_list(checker, path + ("ca",), cas)
    if not cas:
        checker.error(path + ("ca",), "must name at least one CA certificate file")
    intermediates = path_list(checker, path + ("intermediates",),
                              entry.get("intermediates", schema.PEER["intermediates"].default))
    crls = path_list(checker, path + ("crls",), entry.get("crls", schema.PEER["crls"].default))
    full, data = checker.file(path + ("key",), entry["key"], "private key")
    try:
        private_key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        checker.error(path + ("key",), "%s is not an unencrypted PEM private key" % full)
    if not isinstance(private_key, rsa.RSAPrivateKey):
        checker.error(path + ("key",), "%s is not an RSA key (auth = \"rsa\")" % full)
    if os.stat(full).st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        checker.warn(path + ("key",), "%s is readable by others; chmod 600 it" % full)
    der = serialization.Encoding.DER
    public_format = serialization.PublicFormat.SubjectPublicKeyInfo
    if (cert.public_key().public_bytes(der, public_format)
            != private_key.public_key().public_bytes(der, public_format)):
        checker.error(path + ("key",), "%s does not belong to certificate %s"
                      % (full, entry["cert"]))
    key_pem = private_key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
    ca_paths = [path + (("ca", i) if isinstance(entry["ca"], list) else ("ca",))
                for i in range(len(cas))]
    return {"cert": entry["cert"], "key": entry["key"], "ca": cas,
            "intermediates": intermediates, "crls": crls,
            "cert_der": cert.public_bytes(der), "key_pem": key_pem,
            "ca_ders": [certificate(checker, p, name, "CA certificate").public_bytes(der)
                        for p, name in zip(ca_paths, cas)],
            "chain_ders": [certificate(checker, path + ("intermediates", i), name,
                                       "intermediate certificate").public_bytes(der)
                           for i, name in enumerate(intermediates)],
            "crl_ders": [crl(checker, path + ("crls", i), name) for i, name in enumerate(crls)]}


def path_list(checker, path, value):
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        checker.error(path, "must be a list of file names")
    return value


def certificate(checker, path, value, what):
    from cryptography import x509
    full, data = checker.file(path, value, what)
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError:
        checker.error(path, "%s is not a PEM or DER X.509 certificate" % full)


def crl(checker, path, value):
    full, data = checker.file(path, value, "CRL")
    try:
        return crl_der(data)
    except ValueError:
        checker.error(path, "%s is not a PEM or DER X.509 CRL" % full)


def crl_der(data):
    """A CRL file's content (PEM or DER) as DER; ValueError when it is neither."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_crl(data).public_bytes(serialization.Encoding.DER)
    return x509.load_der_x509_crl(data).public_bytes(serialization.Encoding.DER)


def resolve(config_path, path):
    """A file named in the configuration, relative paths taken from the file's directory."""
    if os.path.isabs(path) or not config_path:
        return path
    return os.path.join(os.path.dirname(os.path.abspath(config_path)), path)


def load_crl(config_path, path):
    """A CRL file named in the configuration as DER, for the daemon's reload when it changes."""
    full = resolve(config_path, path)
    try:
        with open(full, "rb") as handle:
            return crl_der(handle.read())
    except OSError as exc:
        raise ConfigError("cannot read CRL file %s: %s" % (full, exc.strerror)) from None
    except ValueError:
        raise ConfigError("%s is not a PEM or DER X.509 CRL" % full) from None
