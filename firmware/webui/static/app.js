// ikecore web UI: confirmation of destructive buttons, and the live status tables.
// Data from the daemon is only ever put in the page with textContent (never innerHTML).
"use strict";

(function () {
  var POLL_MS = 2000;

  // Buttons of forms with class "confirm-form" ask first; without this script the server shows a
  // confirmation page instead (the form then carries confirmed=0).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.classList || !form.classList.contains("confirm-form")) return;
    var confirmed = form.querySelector("input[name=confirmed]");
    if (confirmed && confirmed.value === "1") return;
    event.preventDefault();
    var button = event.submitter;
    var question = (button && button.getAttribute("data-confirm")) ||
      form.getAttribute("data-confirm") || "Are you sure?";
    if (!window.confirm(question)) return;
    // form.submit() sends no button: carry the pressed button's name=value (the SA id of the
    // shared delete form) in a hidden field instead.
    var carried = form.querySelector("input[data-from-button]");
    if (carried) carried.remove();
    if (button && button.name) {
      carried = document.createElement("input");
      carried.type = "hidden";
      carried.name = button.name;
      carried.value = button.value;
      carried.setAttribute("data-from-button", "");
      form.appendChild(carried);
    }
    if (confirmed) confirmed.value = "1";
    form.submit();
    if (confirmed) confirmed.value = "0";     // the form data is taken; ask again next time
  });

  var NAT_T = {"none": "none", "far end": "Far end", "near end": "Near end"};
  var DIRECTION = {"incoming": "Incoming", "outgoing": "Outgoing", "in": "Incoming", "out": "Outgoing"};

  function text(value) {
    return value === null || value === undefined || value === "" ? "\u2014" : String(value);
  }

  function statusText(ike) {
    var status = ike.status || "Idle";
    return status === "Negotiating" ? "Negotiating(" + ike.state + ")" : status;
  }

  function spiAnchor(spi) {
    var value = parseInt(String(spi), 16);
    return isNaN(value) ? null : "sa-" + value.toString(16);
  }

  function cell(row, label, value, className) {
    var td = document.createElement("td");
    if (className) td.className = className;
    if (value !== undefined) td.textContent = value === null ? "" : String(value);
    row.appendChild(td);
    return td;
  }

  function deleteButton(row, id, question) {
    var button = document.createElement("button");
    button.type = "submit";
    button.setAttribute("form", "delete-form");
    button.name = "id";
    button.value = id;
    button.className = "danger small";
    button.setAttribute("data-confirm", question);
    button.textContent = "Delete";
    cell(row, "Delete").appendChild(button);
  }

  // The lifetime in force differs from ours: say whose it is (the daemon's lifetime_note).
  function lifetimeNote(td, note) {
    if (!note) return;
    var div = document.createElement("div");
    div.className = "lifetime-note";
    div.textContent = note;
    td.appendChild(div);
  }

  // presentation.gateway_text: the address now (with a NAT's port), and what is configured
  // when that is not the address itself ("%any", a DNS name).
  function gatewayText(ike) {
    var address = ike.remote_gateway || "";
    var current = ike.remote_address || address;
    var port = current.split(":").pop();
    var text = (port === "500" || port === "4500") ? address : current;
    if (ike.configured_gateway && ike.configured_gateway !== address) {
      text += " (" + ike.configured_gateway + ")";
    }
    return text;
  }

  function ikeRow(ike) {
    var row = document.createElement("tr");
    row.id = "ike-" + ike.id;
    row.className = "status-" + String(ike.status || "Idle").toLowerCase();
    var gw = cell(row, "Remote Gateway", gatewayText(ike));
    if (ike.peer) {
      var peer = document.createElement("span");
      peer.className = "peer";
      peer.textContent = ike.peer;
      gw.appendChild(document.createTextNode(" "));
      gw.appendChild(peer);
    }
    var status = cell(row, "Status");
    var label = document.createElement("span");
    label.className = "status";
    label.textContent = statusText(ike);
    status.appendChild(label);
    if (ike.last_error) {
      var diag = document.createElement("div");
      diag.className = "diagnosis";
      diag.textContent = ike.last_error;
      status.appendChild(diag);
    }
    cell(row, "Algorithm", text(ike.algorithm));
    cell(row, "Elapsed time", ike.elapsed_s, "num");
    lifetimeNote(cell(row, "Life time", ike.lifetime_s, "num"), ike.lifetime_note);
    cell(row, "NAT-T", NAT_T[String(ike.nat_t || "none").toLowerCase()] || String(ike.nat_t));
    cell(row, "Phase 2 negotiations", ike.phase2_negotiations, "num");
    deleteButton(row, ike.id, "Delete the IKE SA with " + ike.remote_gateway + "?");
    return row;
  }

  function saRow(sa) {
    var row = document.createElement("tr");
    row.id = spiAnchor(sa.spi) || "sa-id-" + sa.id;
    var destination = cell(row, "Destination", sa.destination);
    if (sa.local_net) {
      // which pair of networks this SA carries (a connection may have several)
      var nets = document.createElement("div");
      nets.className = "nets";
      nets.textContent = sa.local_net + " \u21cc " + sa.remote_net;
      destination.appendChild(nets);
    }
    cell(row, "Direction", DIRECTION[String(sa.direction).toLowerCase()] || String(sa.direction));
    cell(row, "SPI", sa.spi, "mono");
    cell(row, "Protocol", sa.protocol);
    cell(row, "Algorithm", text(sa.algorithm));
    cell(row, "Elapsed time", sa.elapsed_s, "num");
    lifetimeNote(cell(row, "Life time", sa.lifetime_s, "num"), sa.lifetime_note);
    cell(row, "Bytes processed", sa.bytes, "num");
    cell(row, "Errored packets", sa.errored_packets, "num");
    deleteButton(row, sa.id, "Delete the " + sa.protocol + " SA " + sa.spi + "?");
    return row;
  }

  function fill(tableId, items, makeRow) {
    var table = document.getElementById(tableId);
    var body = document.createElement("tbody");
    items.forEach(function (item) { body.appendChild(makeRow(item)); });
    table.replaceChild(body, table.tBodies[0]);
    document.getElementById(tableId + "-empty").hidden = items.length > 0;
  }

  function showError(message) {
    var box = document.getElementById("status-error");
    box.textContent = message || "";
    box.hidden = !message;
  }

  // The paged page's words (presentation.py's summary_text and page_text).
  function summaryText(s) {
    var by = s.peers_by_status || {};
    return (s.peers || 0) + " peers: " + (by.Activated || 0) + " up, " + (by.Negotiating || 0) +
      " negotiating, " + (by.Idle || 0) + " idle \u00b7 " + (s.ike_sas || 0) + " IKE SAs \u00b7 " +
      (s.sas || 0) + " SAs";
  }

  function pageText(page) {
    var offset = page.offset || 0, limit = page.limit || 0;
    var matching = page.matching || 0, peers = page.peers || 0;
    if (!matching) return "No peers match.";
    var of = matching === peers ? String(matching) : matching + " matching (" + peers + " peers)";
    if (offset >= matching) return "No peers on this page: " + of;
    var last = Math.min(offset + limit, matching);
    if (last === offset + 1) return "Peer " + last + " of " + of;
    return "Peers " + (offset + 1) + "\u2013" + last + " of " + of;
  }

  function showPage(page) {
    if (!page || !document.getElementById("pager")) return;
    document.getElementById("pager-text").textContent = pageText(page);
    document.getElementById("pager-previous").hidden = !(page.offset > 0);
    document.getElementById("pager-next").hidden = page.offset + page.limit >= page.matching;
  }

  function getJson(url) {
    return fetch(url, {credentials: "same-origin", cache: "no-store"})
      .then(function (response) {
        if (response.status === 401) {
          window.location.href = "/login?next=" +
            encodeURIComponent(window.location.pathname + window.location.search);
          return null;
        }
        return response.json().then(function (data) {
          if (!response.ok) throw new Error(data.error || ("HTTP " + response.status));
          return data;
        });
      });
  }

  function poll() {
    var started = Date.now();
    // The page's own selection (one page of peers when there are many), else everything.
    var api = document.getElementById("ike-sas").getAttribute("data-api") || "/api/status";
    var summaryBox = document.getElementById("summary");
    getJson(api)
      .then(function (data) {
        if (!data) return null;
        fill("ike-sas", data.ike_sas || [], ikeRow);
        fill("sas", data.sas || [], saRow);
        showPage(data.page);
        return summaryBox ? getJson("/api/summary") : data;
      })
      .then(function (data) {
        if (!data) return;
        if (summaryBox) summaryBox.textContent = summaryText(data);
        showError(null);
        document.getElementById("updated").textContent =
          "Last update " + new Date().toLocaleTimeString() + ".";
      })
      .catch(function (error) { showError("Live update failed: " + error.message); })
      .then(function () {
        // A router with thousands of SAs is not asked more than ~20% of the time.
        window.setTimeout(poll, Math.max(POLL_MS, 5 * (Date.now() - started)));
      });
  }

  if (document.getElementById("ike-sas")) window.setTimeout(poll, POLL_MS);
})();
