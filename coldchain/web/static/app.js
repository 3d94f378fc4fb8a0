/* coldchain pages: local times, COI check characters as you type, the live board, charts. */
"use strict";
const coldchain = (() => {
  const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*";
  const COI = /^([A-Z][A-Z0-9]{4})([0-9]{2})([0-9]{6})([0-9A-Z*])$/;

  /* ISO 7064 Mod 37-2, as coldchain/domain/identity.py computes it. */
  function checkCharacter(data) {
    let total = 0;
    for (const ch of data) total = ((total + ALPHABET.indexOf(ch)) * 2) % 37;
    return ALPHABET[(38 - total) % 37];
  }
  function normaliseCoi(text) { return text.replace(/\s+/g, "").toUpperCase(); }
  function coiProblem(text) {
    const coi = normaliseCoi(text);
    if (!coi) return "";
    if (coi.length < 14) return `${coi.length} of 14 characters`;
    if (!COI.test(coi)) return "not a COI: a letter, 4 letters or digits, 2-digit year, 6-digit serial, check character";
    if (checkCharacter(coi.slice(0, 13)) !== coi[13]) return "wrong check character: re-read the label";
    return null;
  }
  function watchCoi(input) {
    const out = document.getElementById(input.getAttribute("aria-describedby"));
    const update = () => {
      const problem = coiProblem(input.value);
      out.textContent = problem === null ? "✓ check character correct" : problem;
      out.className = "check " + (problem === null ? "ok" : problem ? "bad" : "");
      input.setAttribute("aria-invalid", problem ? "true" : "false");
    };
    input.addEventListener("input", update);
    update();
  }

  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const local = new Intl.DateTimeFormat(undefined, {dateStyle: "short", timeStyle: "medium"});
  function localiseTimes(root) {
    for (const el of root.querySelectorAll("time[datetime]:not([data-local])")) {
      const when = new Date(el.getAttribute("datetime"));
      if (isNaN(when)) continue;
      el.dataset.local = "1";
      el.title = `${local.format(when)} ${zone}`;
      el.insertAdjacentHTML("beforeend", ` <span class="local">(${local.format(when)} ${zone})</span>`);
    }
  }

  function cell(text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }
  function renderBoard(rows) {
    const body = document.querySelector("#board tbody");
    body.replaceChildren();
    for (const r of rows) {
      const tr = document.createElement("tr");
      tr.dataset.id = r.id;
      if (r.open_excursions) tr.className = "alarm";
      const link = document.createElement("a");
      link.href = `/shipments/${r.id}`;
      link.textContent = r.id;
      const first = document.createElement("td");
      first.append(link);
      const status = document.createElement("span");
      status.className = `status status-${r.status}`;
      status.textContent = r.status.replace("_", " ");
      const state = document.createElement("td");
      state.append(status);
      const temp = cell(r.last_temp_c === null ? "—" : `${r.last_temp_c.toFixed(1)} °C`);
      temp.dataset.col = "temp";
      const age = cell(r.last_reading_age_s === null ? "—" : `${r.last_reading_age_s} s`);
      age.dataset.col = "age";
      const open = cell(String(r.open_excursions));
      open.dataset.col = "open";
      const presence = cell(r.loggers.map(l => `${l.id} ${l.online ? "online" : l.online === false ? "offline" : "unknown"}`).join(", "));
      presence.dataset.col = "presence";
      const battery = cell(r.battery_pct === null ? "—" : `${Math.round(r.battery_pct)} %`);
      battery.dataset.col = "battery";
      tr.append(first, cell(r.coi, "mono"), state, cell(r.holder), cell(`${r.origin_site} → ${r.destination_site}`),
                cell(r.profile), temp, age, open, presence, battery);
      body.append(tr);
    }
    if (!rows.length) body.innerHTML = '<tr><td colspan="11">No active shipment.</td></tr>';
    document.getElementById("board-updated").textContent = local.format(new Date());
  }
  function pollBoard(url) {
    const tick = async () => {
      try {
        const response = await fetch(url, {headers: {Accept: "application/json"}});
        if (response.ok) renderBoard(await response.json());
      } catch (e) { /* keep the last board; try again */ }
    };
    setInterval(tick, 5000);
  }

  async function drawChart(el, url) {
    const data = await (await fetch(url)).json();
    if (!data.t.length) { el.textContent = "No reading yet."; return; }
    const limits = [data.limits.min_c, data.limits.max_c].filter(v => v !== null);
    const shade = u => {
      const ctx = u.ctx;
      ctx.save();
      for (const e of data.excursions) {
        const x0 = u.valToPos(e.from, "x", true), x1 = u.valToPos(e.to, "x", true);
        ctx.fillStyle = e.kind === "SIGNAL_LOSS" ? "rgba(120,120,120,0.25)" : "rgba(220,40,40,0.18)";
        ctx.fillRect(x0, u.bbox.top, Math.max(2, x1 - x0), u.bbox.height);
      }
      ctx.setLineDash([6, 4]);
      ctx.strokeStyle = "#b00";
      for (const v of limits) {
        const y = u.valToPos(v, "y", true);
        ctx.beginPath(); ctx.moveTo(u.bbox.left, y); ctx.lineTo(u.bbox.left + u.bbox.width, y); ctx.stroke();
      }
      ctx.setLineDash([]);
      ctx.strokeStyle = "#246";
      for (const h of data.handoffs) {
        const x = u.valToPos(Date.parse(h.at) / 1000, "x", true);
        ctx.beginPath(); ctx.moveTo(x, u.bbox.top); ctx.lineTo(x, u.bbox.top + u.bbox.height); ctx.stroke();
        ctx.fillStyle = "#246";
        ctx.fillText(`→ ${h.to}`, x + 3, u.bbox.top + 12);
      }
      ctx.restore();
    };
    const lo = Math.min(...data.min, ...limits), hi = Math.max(...data.max, ...limits);
    const pad = Math.max(2, (hi - lo) * 0.08);
    new uPlot({
      width: el.clientWidth || 900, height: el.classList.contains("small") ? 220 : 320,
      scales: {x: {time: true}, y: {range: [lo - pad, hi + pad]}},
      series: [{}, {label: "min °C", stroke: "#1565c0"}, {label: "max °C", stroke: "#c62828"}],
      axes: [{}, {label: "°C"}],
      hooks: {draw: [shade]},
    }, [data.t, data.min, data.max], el);
  }

  function openByCoi(form) {
    const coi = normaliseCoi(form.coi.value);
    const row = document.querySelector(`tr[data-coi="${coi}"]`);
    if (row) window.location = row.querySelector("a").href;
    else document.getElementById("scan-check").textContent = "no shipment of your site has this COI";
    return false;
  }

  document.addEventListener("DOMContentLoaded", () => {
    localiseTimes(document);
    for (const input of document.querySelectorAll("[data-coi-check]")) watchCoi(input);
    for (const el of document.querySelectorAll("[data-local-zone]")) el.textContent = zone;
  });
  return {checkCharacter, coiProblem, pollBoard, drawChart, openByCoi, localiseTimes};
})();
