/// The web console's files, served by `jelly serve` at `/console` from inside the binary: no
/// build step, no files to install. Plain HTML, CSS and JavaScript over the HTTP API with the
/// operator's API key (kept in the tab's sessionStorage only). Read-only unless the key is admin.
enum ConsoleAssets {
    static let files: [String: (contentType: String, body: String)] = [
        "index.html": ("text/html; charset=utf-8", indexHTML),
        "app.js": ("text/javascript; charset=utf-8", appJS),
        "style.css": ("text/css; charset=utf-8", styleCSS),
    ]

    static let indexHTML = #"""
    <!doctype html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>Jelly console</title>
    <link rel="stylesheet" href="/console/style.css">
    </head>
    <body>
    <header><h1>Jelly</h1><span id="whoami"></span><span id="health" class="badge">…</span></header>
    <section id="login" hidden>
      <h2>Sign in</h2>
      <p>This server needs an API key (an admin key can break locks; a server key is read-only here).</p>
      <form id="login-form"><input id="key" type="password" placeholder="API key" autocomplete="off" size="48"> <button id="login-button" type="submit">Open</button></form>
      <p id="login-error" class="error"></p>
    </section>
    <main id="main" hidden>
      <section id="server">
        <h2>Server</h2>
        <div class="charts">
          <figure><figcaption>saves/s <b id="saves-rate">–</b></figcaption><canvas id="chart-saves" width="260" height="60"></canvas></figure>
          <figure><figcaption>save p99 <b id="save-p99">–</b></figcaption><canvas id="chart-p99" width="260" height="60"></canvas></figure>
        </div>
        <p id="store-figures"></p>
      </section>
      <section id="partitions-panel">
        <h2>Partitions</h2>
        <form id="search-form"><input id="prefix" placeholder="name starts with…"> <button type="submit">Search</button></form>
        <table id="partitions"><thead><tr><th>partition</th><th>objects</th><th>lock</th></tr></thead><tbody></tbody></table>
        <button id="more-partitions" hidden>More</button>
      </section>
      <section id="partition-panel" hidden>
        <h2 id="partition-name"></h2>
        <div id="lock"></div>
        <button id="break-lock" hidden>Break the lock</button>
        <p id="partition-error" class="error"></p>
        <h3>Objects</h3>
        <table id="objects"><thead><tr><th>key</th><th>version</th><th>size</th><th>type</th><th>access</th><th>value</th></tr></thead><tbody></tbody></table>
        <h3>Changes, live</h3>
        <ol id="feed"></ol>
      </section>
    </main>
    <script src="/console/app.js"></script>
    </body>
    </html>
    """#

    static let styleCSS = #"""
    body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1d2330; background: #f6f7fb; }
    header { display: flex; gap: 1em; align-items: center; padding: .6em 1.2em; background: #2b2f77; color: white; }
    header h1 { font-size: 1.3em; margin: 0; }
    .badge { padding: .1em .6em; border-radius: 1em; background: #4caf50; font-size: .85em; }
    .badge.bad { background: #e53935; }
    main { display: grid; grid-template-columns: 1fr 2fr; gap: 1em; padding: 1em; }
    #server { grid-column: 1 / span 2; }
    section { background: white; border-radius: 8px; padding: .8em 1.2em; box-shadow: 0 1px 3px #0002; }
    h2 { margin: .2em 0 .6em; font-size: 1.1em; }
    table { border-collapse: collapse; width: 100%; }
    th, td { text-align: left; padding: .3em .5em; border-bottom: 1px solid #e3e6ef; vertical-align: top; }
    tbody tr[data-partition] { cursor: pointer; }
    tbody tr[data-partition]:hover { background: #eef0fb; }
    pre.preview { margin: 0; max-height: 12em; overflow: auto; font-size: 12px; background: #f3f4f8; padding: .3em; }
    .charts { display: flex; gap: 2em; }
    figure { margin: 0; }
    canvas { background: #f3f4f8; border-radius: 4px; }
    .error { color: #c62828; }
    #lock { margin: .4em 0; }
    #feed { max-height: 14em; overflow: auto; font-family: monospace; font-size: 12px; }
    """#

    static let appJS = #"""
    "use strict";
    const state = { key: sessionStorage.getItem("jellyKey") || "", role: null, partition: null, after: null, feedRun: 0, samples: [] };
    const $ = (id) => document.getElementById(id);
    const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
    const enc = encodeURIComponent;

    async function api(path, options = {}) {
      const headers = Object.assign({}, options.headers || {});
      if (state.key) headers["Authorization"] = "Bearer " + state.key;
      const res = await fetch(path, Object.assign({}, options, { headers }));
      if (res.status === 401) { showLogin("This key was refused; enter another."); throw new Error("unauthorized"); }
      return res;
    }

    function showLogin(message) {
      $("login").hidden = false; $("main").hidden = true;
      $("login-error").textContent = message || "";
    }

    async function start() {
      let res;
      try { res = await api("/v1/me"); } catch (e) { return; }
      if (!res.ok) { showLogin("The server answered " + res.status); return; }
      const me = await res.json();
      state.role = me.role;
      $("whoami").textContent = me.name ? me.name + " (" + me.role + ")" : me.role;
      $("login").hidden = true; $("main").hidden = false;
      loadPartitions(true);
      pollServer();
    }

    $("login-form").addEventListener("submit", (e) => {
      e.preventDefault();
      state.key = $("key").value.trim();
      sessionStorage.setItem("jellyKey", state.key);
      start();
    });

    $("search-form").addEventListener("submit", (e) => { e.preventDefault(); loadPartitions(true); });
    $("more-partitions").addEventListener("click", () => loadPartitions(false));

    async function loadPartitions(fresh) {
      if (fresh) { state.after = null; $("partitions").tBodies[0].innerHTML = ""; }
      let path = "/v1/partitions?limit=100";
      const prefix = $("prefix").value.trim();
      if (prefix) path += "&prefix=" + enc(prefix);
      if (state.after) path += "&after=" + enc(state.after);
      const res = await api(path);
      const page = await res.json();
      const body = $("partitions").tBodies[0];
      for (const p of page.partitions) {
        const tr = document.createElement("tr");
        tr.dataset.partition = p.partition;
        tr.innerHTML = "<td>" + esc(p.partition) + "</td><td>" + p.objects + "</td><td>" + (p.lock ? esc(p.lock.owner) : "") + "</td>";
        tr.addEventListener("click", () => openPartition(p.partition));
        body.appendChild(tr);
      }
      state.after = page.next || null;
      $("more-partitions").hidden = !page.next;
    }

    async function openPartition(name) {
      state.partition = name;
      state.feedRun += 1;
      $("partition-panel").hidden = false;
      $("partition-name").textContent = name;
      $("partition-error").textContent = "";
      $("feed").innerHTML = "";
      await Promise.all([loadLock(), loadObjects()]);
      followFeed(name, state.feedRun);
    }

    async function loadLock() {
      const name = state.partition;
      const res = await api("/v1/partitions/" + enc(name) + "/lock");
      if (res.status === 404) {
        $("lock").innerHTML = "<span id=\"lock-state\">unlocked</span>";
        $("break-lock").hidden = true;
        return;
      }
      const lock = await res.json();
      $("lock").innerHTML = "<span id=\"lock-state\">locked by <b>" + esc(lock.owner) + "</b></span>, token " + lock.token +
        ", expires in <span id=\"lock-expiry\" data-expires=\"" + lock.expires_at_ms + "\"></span>";
      $("break-lock").hidden = state.role !== "admin";
      tickExpiry();
    }

    function tickExpiry() {
      const el = $("lock-expiry");
      if (!el) return;
      const left = Math.max(0, Number(el.dataset.expires) - Date.now());
      el.textContent = (left / 1000).toFixed(1) + " s";
    }
    setInterval(tickExpiry, 250);

    $("break-lock").addEventListener("click", async () => {
      const res = await api("/v1/partitions/" + enc(state.partition) + "/lock/break", { method: "POST" });
      if (!res.ok) { $("partition-error").textContent = "Break refused: " + res.status + " " + (await res.text()); return; }
      await loadLock();
      loadPartitions(true);
    });

    async function loadObjects() {
      const name = state.partition;
      const res = await api("/v1/partitions/" + enc(name) + "/objects?limit=100");
      const page = await res.json();
      const body = $("objects").tBodies[0];
      body.innerHTML = "";
      for (const o of page.objects) {
        const tr = document.createElement("tr");
        tr.dataset.key = o.key;
        tr.innerHTML = "<td>" + esc(o.key) + "</td><td>" + o.version + "</td><td>" + o.size + "</td><td>" + esc(o.content_type) +
          "</td><td>read " + esc(o.read || "server") + ", write " + esc(o.write || "server") + "</td><td><pre class=\"preview\">…</pre></td>";
        body.appendChild(tr);
        api("/v1/partitions/" + enc(name) + "/objects/" + enc(o.key) + "/preview").then((r) => r.json()).then((p) => {
          tr.querySelector("pre").textContent = "(" + p.decoded_as + ") " + p.text;
        });
      }
    }

    async function followFeed(name, run) {
      let since = 0;
      while (state.feedRun === run) {
        let res;
        try { res = await api("/v1/partitions/" + enc(name) + "/changes?since=" + since + "&wait_ms=" + (since === 0 ? 0 : 15000)); } catch (e) { return; }
        if (!res.ok || state.feedRun !== run) return;
        const batch = await res.json();
        for (const c of batch.changes) {
          const li = document.createElement("li");
          li.textContent = "v" + c.version + " " + c.key + (c.deleted ? " deleted" : "");
          $("feed").prepend(li);
        }
        if (since !== 0 && batch.changes.length) loadObjects();
        since = batch.next;
      }
    }

    function parseMetrics(text) {
      const out = [];
      for (const line of text.split("\n")) {
        if (!line || line[0] === "#") continue;
        const m = line.match(/^([a-zA-Z_:]+)(\{([^}]*)\})?\s+(\S+)/);
        if (!m) continue;
        const labels = {};
        if (m[3]) for (const kv of m[3].matchAll(/(\w+)="([^"]*)"/g)) labels[kv[1]] = kv[2];
        out.push({ name: m[1], labels, value: Number(m[4]) });
      }
      return out;
    }

    const SAVE_ROUTES = ["put_object", "batch", "sync"];
    function sample(metrics) {
      let saves = 0; const buckets = {};
      let store = {};
      for (const m of metrics) {
        if (m.name === "jelly_http_requests_total" && SAVE_ROUTES.includes(m.labels.route) && m.labels.status.startsWith("2")) saves += m.value;
        if (m.name === "jelly_http_request_duration_seconds_bucket" && SAVE_ROUTES.includes(m.labels.route)) buckets[m.labels.le] = (buckets[m.labels.le] || 0) + m.value;
        if (m.name.startsWith("jelly_store_")) store[m.name] = m.value;
      }
      return { t: Date.now(), saves, buckets, store };
    }

    function p99(prev, cur) {
      const les = Object.keys(cur.buckets).filter((le) => le !== "+Inf").map(Number).sort((a, b) => a - b);
      const total = (cur.buckets["+Inf"] || 0) - ((prev.buckets["+Inf"]) || 0);
      if (total <= 0) return null;
      for (const le of les) {
        const n = (cur.buckets[String(le)] || 0) - (prev.buckets[String(le)] || 0);
        if (n >= total * 0.99) return le * 1000;
      }
      return null;
    }

    function draw(canvas, values) {
      const ctx = canvas.getContext("2d");
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      const max = Math.max(1, ...values.filter((v) => v != null));
      ctx.strokeStyle = "#2b2f77"; ctx.lineWidth = 2; ctx.beginPath();
      values.forEach((v, i) => {
        const x = (i / Math.max(1, values.length - 1)) * (canvas.width - 4) + 2;
        const y = canvas.height - 4 - ((v || 0) / max) * (canvas.height - 8);
        if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
      });
      ctx.stroke();
    }

    const fmtBytes = (b) => b > 1 << 30 ? (b / (1 << 30)).toFixed(1) + " GiB" : b > 1 << 20 ? (b / (1 << 20)).toFixed(1) + " MiB" : b >= 1024 ? Math.round(b / 1024) + " KiB" : b + " B";

    async function pollServer() {
      try {
        const h = await fetch("/v1/health");
        const body = await h.json();
        $("health").textContent = body.status + (body.detail ? ": " + body.detail : "");
        $("health").className = "badge" + (h.ok ? "" : " bad");
        const res = await api("/metrics");
        if (res.ok) {
          const cur = sample(parseMetrics(await res.text()));
          const prev = state.samples[state.samples.length - 1];
          if (prev) {
            const rate = (cur.saves - prev.saves) / ((cur.t - prev.t) / 1000);
            cur.rate = rate; cur.p99 = p99(prev, cur);
            $("saves-rate").textContent = rate.toFixed(0);
            $("save-p99").textContent = cur.p99 == null ? "–" : "≤ " + cur.p99.toFixed(1) + " ms";
          }
          state.samples.push(cur);
          if (state.samples.length > 60) state.samples.shift();
          draw($("chart-saves"), state.samples.map((s) => s.rate));
          draw($("chart-p99"), state.samples.map((s) => s.p99));
          const s = cur.store;
          $("store-figures").textContent = "objects " + (s.jelly_store_objects ?? "–") + " · locks held " + (s.jelly_store_locks_held ?? "–") +
            " · live data " + fmtBytes(s.jelly_store_live_bytes || 0) + " · on disk " + fmtBytes(s.jelly_store_segment_bytes || 0) +
            " · value cache " + fmtBytes(s.jelly_store_value_cache_bytes || 0) + " (" + (s.jelly_store_value_cache_hits ?? 0) + " hits)";
        }
      } catch (e) { /* the next poll tries again */ }
      setTimeout(pollServer, 2000);
    }

    start();
    """#
}
