"""/metrics: the status data in the Prometheus text exposition format (version 0.0.4).

The counts come from the daemon's `summary` (O(peers), no SA rows). The per-IKE-SA and per-SA
series (state, elapsed, bytes, ...) need every SA: they are there only while the router has at
most PER_SA_ROWS_MAX IKE SAs + SAs (a small router's scrape is what it always was), and
`ikecore_per_sa_series` says whether this scrape has them. A router with 10,000 tunnels would
otherwise pull ~4 MB of status and expose ~100,000 series per scrape.
"""
import re

from ikecore.protocol.states import status_text
from ikecore.protocol.status import PEER_STATUSES

PER_SA_ROWS_MAX = 1000


def per_sa_series_fit(summary):
    """Whether a scrape with this summary may carry the per-SA series."""
    return summary.get("ike_sas", 0) + summary.get("sas", 0) <= PER_SA_ROWS_MAX


def _label_value(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs):
    return "{%s}" % ",".join('%s="%s"' % (k, _label_value(v if v is not None else ""))
                             for k, v in pairs)


def render(summary, status=None, up=True, certificates=(), crls=()):
    """Text for one scrape: summary from the daemon's `summary` request ({} when up=False: the
    daemon could not be asked), status its full status or None (no per-SA series);
    certificates: webui.certstore.inventory() entries (their expiry is exported); crls:
    crl_inventory() entries and fetched_crl_entries() (kind "fetched", name and path its URL;
    their next update: past it, peers using one refuse certificates)."""
    out = []

    def family(name, kind, help_text, samples):
        out.append("# HELP %s %s" % (name, help_text))
        out.append("# TYPE %s %s" % (name, kind))
        for labels, value in samples:
            out.append("%s%s %s" % (name, _labels(labels) if labels else "", value))

    family("ikecore_up", "gauge", "1 when the ikecore daemon answered the web UI.",
           [((), 1 if up else 0)])
    counts = {s: 0 for s in sorted(PEER_STATUSES)}
    for state, n in (summary.get("ike_sas_by_state") or {}).items():
        key = status_text(int(state)) if str(state).isdigit() else str(state)
        counts[key] = counts.get(key, 0) + int(n)
    family("ikecore_ike_sas", "gauge", "IKE SAs (key tunnels) by status.",
           [((("status", s),), n) for s, n in counts.items()])
    family("ikecore_sas", "gauge", "IPsec SAs (traffic tunnels).",
           [((), int(summary.get("sas") or 0))])
    by_status = summary.get("peers_by_status") or {}
    family("ikecore_peers", "gauge", "Configured peers by status (Activated: an IKE SA is up).",
           [((("status", s),), int(by_status.get(s) or 0)) for s in sorted(PEER_STATUSES)])
    family("ikecore_per_sa_series", "gauge",
           "1 when this scrape has the per-IKE-SA and per-SA series (at most %d IKE SAs + SAs)."
           % PER_SA_ROWS_MAX, [((), 1 if status is not None else 0)])
    if status is not None:
        _per_sa(family, status)
    _admission(family, summary.get("admission") or {})
    # The daemon's own counters (datagrams received, malformed, ...), when it reports them.
    for key, value in sorted((summary.get("daemon") or {}).items()):
        if type(value) is int and re.match(r"^[a-z][a-z0-9_]*$", key):
            family("ikecore_daemon_%s_total" % key, "counter",
                   "The daemon's %s counter." % key.replace("_", " "), [((), value)])
    cert_labels = [(c, (("name", c["name"]), ("kind", c["kind"]), ("path", c["path"]),
                        ("subject", c["info"]["subject"]))) for c in certificates if c["info"]]
    family("ikecore_certificate_not_after_timestamp_seconds", "gauge",
           "End of validity of each stored or configured certificate (Unix time).",
           [(labels, int(c["info"]["not_after"].timestamp())) for c, labels in cert_labels])
    family("ikecore_certificate_expiring", "gauge",
           "1 when a certificate is expired, not yet valid or expires within the warning "
           "threshold (webui.certstore.EXPIRY_WARNING_DAYS).",
           [(labels, 1 if c["info"]["warn"] else 0) for c, labels in cert_labels])
    crl_labels = [(c, (("name", c["name"]), ("kind", c["kind"]), ("path", c["path"]),
                       ("issuer", c["info"]["issuer"]))) for c in crls if c["info"]]
    family("ikecore_crl_next_update_timestamp_seconds", "gauge",
           "When each stored, configured or fetched CRL's issuer publishes the next one "
           "(Unix time).",
           [(labels, int(c["info"]["next_update"].timestamp())) for c, labels in crl_labels
            if c["info"]["next_update"]])
    family("ikecore_crl_stale", "gauge",
           "1 when a CRL's next update has passed (certificates checked against it are "
           "refused once the clock is synchronized).",
           [(labels, 1 if c["info"]["warn"] else 0) for c, labels in crl_labels])
    return "\n".join(out) + "\n"


# (summary key, limit key, metric name, help): the admission control bounds (ikecore.protocol.admission)
ADMISSION_GAUGES = (
    ("half_open", "half_open_limit", "ikecore_admission_half_open",
     "Responder IKE SAs not yet authenticated (half-open)."),
    ("dh_in_flight", "dh_in_flight_limit", "ikecore_admission_dh_in_flight",
     "Diffie-Hellman computations for unauthenticated peers in progress."),
    ("initiating", "initiating_limit", "ikecore_admission_initiating",
     "Our own phase 1 initiations in progress."),
)


def _admission(family, admission):
    """Admission control: how close the bounds are, and what they refused (a flood shows here
    before it shows anywhere else)."""
    if not admission:
        return
    for key, limit_key, name, help_text in ADMISSION_GAUGES:
        family(name, "gauge", help_text, [((), int(admission.get(key) or 0))])
        family(name + "_limit", "gauge", "The bound of %s." % name, [((), int(admission.get(
            limit_key) or 0))])
    family("ikecore_admission_queued", "gauge", "Initiations waiting for a free slot.",
           [((), int(admission.get("queued") or 0))])
    family("ikecore_admission_refused_total", "counter",
           "First messages dropped by admission control, by the bound that refused them.",
           [((("bound", kind),), int(n)) for kind, n in
            sorted((admission.get("refused") or {}).items())])
    family("ikecore_admission_expired_quietly_total", "counter",
           "Half-open SAs dropped silently under pressure (heard only their first message).",
           [((), int(admission.get("expired_quietly") or 0))])
    family("ikecore_admission_pushed_out_total", "counter",
           "First-message-only main mode SAs pushed out by a newer one while the half-open "
           "table was full.", [((), int(admission.get("pushed_out") or 0))])


def _per_sa(family, status):
    ike_sas = status.get("ike_sas", [])
    sas = status.get("sas", [])
    ike_labels = [(ike, (("id", ike.get("id")), ("peer", ike.get("peer")),
                         ("remote_gateway", ike.get("remote_gateway")))) for ike in ike_sas]
    family("ikecore_ike_sa_state", "gauge",
           "Negotiation state number of each IKE SA (0 Idle, 1-8 Negotiating, 9 Activated).",
           [(labels, int(ike.get("state") or 0)) for ike, labels in ike_labels])
    family("ikecore_ike_sa_elapsed_seconds", "gauge", "Seconds since each IKE SA was established.",
           [(labels, int(ike.get("elapsed_s") or 0)) for ike, labels in ike_labels])
    family("ikecore_ike_sa_phase2_negotiations_total", "counter",
           "Traffic tunnels successfully negotiated by each IKE SA.",
           [(labels, int(ike.get("phase2_negotiations") or 0)) for ike, labels in ike_labels])

    sa_labels = [(sa, (("id", sa.get("id")), ("ike_sa", sa.get("ike_sa")), ("spi", sa.get("spi")),
                       ("direction", sa.get("direction")), ("protocol", sa.get("protocol")),
                       ("destination", sa.get("destination")))) for sa in sas]
    for key, name, help_text in (
            ("bytes", "ikecore_sa_bytes_total", "Bytes processed by each SA."),
            ("packets", "ikecore_sa_packets_total", "Packets processed by each SA."),
            ("errored_packets", "ikecore_sa_errored_packets_total",
             "Packets dropped by each SA because of errors.")):
        family(name, "counter", help_text,
               [(labels, int(sa.get(key) or 0)) for sa, labels in sa_labels])
    family("ikecore_sa_elapsed_seconds", "gauge", "Seconds since each SA was established.",
           [(labels, int(sa.get("elapsed_s") or 0)) for sa, labels in sa_labels])
