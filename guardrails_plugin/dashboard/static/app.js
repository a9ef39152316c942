// The operator console. Everything agents wrote (arguments, reasons, messages) is untrusted:
// it reaches the page only as text (textContent / text nodes), never as markup or a URL.
"use strict";

(() => {
  const MAX_ROWS = 500;
  const OUTCOMES = ["allow", "deny", "ask", "modify", "respond"];
  const KNOWN_OUTCOMES = new Set(OUTCOMES);
  const FEEDS = { audit: "the audit log", guard: "the guard (in process)", none: "nowhere" };

  const view = {
    info: null,
    state: null,
    decisions: [],
    maxSeq: 0,
    filter: "",
    hidden: new Set(),
    cards: new Map(), // pending approval key -> card element (kept so open editors survive)
    watched: new Map(), // job id started from this page -> key of the card it answers, or ""
    jobs: new Map(), // job id -> the job as the last state showed it
    armed: new Map(), // confirm key -> when the armed button disarms (ms since epoch)
  };

  // -- tiny DOM helpers (text only) -------------------------------------------------------------

  const $ = (id) => document.getElementById(id);
  const SAFE_PROPS = new Set([
    "title", "type", "placeholder", "value", "disabled", "hidden", "rows", "spellcheck", "open",
  ]);

  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null) continue;
      if (key === "class") el.className = value;
      else if (key === "text") el.textContent = String(value);
      else if (key === "data") Object.assign(el.dataset, value);
      else if (key === "on") bind(el, value);
      else if (SAFE_PROPS.has(key)) el[key] = value;
      else throw new Error(`h(): property ${key} is not allowed`);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  // Handlers are looked up on the element at event time, so that morph() can give a kept
  // element the handlers of the element it now stands for.
  function bind(el, on) {
    el._on = on;
    el._bound = el._bound || new Set();
    for (const ev of Object.keys(on || {})) {
      if (el._bound.has(ev)) continue;
      el._bound.add(ev);
      el.addEventListener(ev, (e) => el._on && el._on[ev] && el._on[ev](e));
    }
  }

  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
  }

  // Lists redrawn on every state change (threads, agents, flags, alarms, activity) are
  // morphed, not rebuilt: an element whose content is unchanged stays the same element, so
  // a click in progress, a focused button or an open <details> survives a redraw. Keyed
  // children (data-key) are matched by key, so a row never turns into another one under the
  // pointer.
  function morphChildren(parent, fresh) {
    const byKey = new Map();
    for (const child of parent.children) if (child.dataset.key) byKey.set(child.dataset.key, child);
    const kept = [];
    fresh.forEach((node, i) => {
      const key = node.nodeType === Node.ELEMENT_NODE ? node.dataset.key : undefined;
      let old = key ? byKey.get(key) : parent.childNodes[i];
      if (old && key === undefined && old.nodeType === Node.ELEMENT_NODE && old.dataset.key) old = undefined;
      if (old && kept.includes(old)) old = undefined;
      kept.push(old ? morph(old, node) : node);
    });
    kept.forEach((node, i) => {
      if (parent.childNodes[i] !== node) parent.insertBefore(node, parent.childNodes[i] || null);
    });
    while (parent.childNodes.length > kept.length) parent.lastChild.remove();
  }

  function morph(old, node) {
    if (old.nodeType !== node.nodeType || old.nodeName !== node.nodeName) {
      old.replaceWith(node);
      return node;
    }
    if (node.nodeType !== Node.ELEMENT_NODE) {
      if (old.nodeValue !== node.nodeValue) old.nodeValue = node.nodeValue;
      return old;
    }
    const keepOpen = old.nodeName === "DETAILS"; // the operator opened or closed it
    for (const a of [...old.attributes]) {
      if (!node.hasAttribute(a.name) && !(keepOpen && a.name === "open")) old.removeAttribute(a.name);
    }
    for (const a of node.attributes) {
      if (old.getAttribute(a.name) !== a.value) old.setAttribute(a.name, a.value);
    }
    bind(old, node._on);
    morphChildren(old, [...node.childNodes]);
    return old;
  }

  const str = (v) => (v === null || v === undefined ? "" : typeof v === "string" ? v : JSON.stringify(v));

  function compact(value) {
    if (value === null || value === undefined) return "";
    if (typeof value === "string") return value;
    if (typeof value === "object" && !Array.isArray(value)) {
      return Object.entries(value).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join("  ");
    }
    return JSON.stringify(value);
  }

  function clock(at) {
    if (!at) return "";
    const d = new Date(at * 1000);
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
  }

  function ago(at) {
    if (!at) return "";
    const s = Math.max(0, Date.now() / 1000 - at);
    if (s < 60) return `${Math.floor(s)}s ago`;
    if (s < 3600) return `${Math.floor(s / 60)}m ago`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
    return `${Math.floor(s / 86400)}d ago`;
  }

  const when = (at) => h("span", { class: "when", data: { at: String(at || "") }, title: at ? new Date(at * 1000).toLocaleString() : "", text: ago(at) });

  const badge = (text, kind) => h("span", { class: `badge ${kind || ""}`, text });

  function stateBadge(state) {
    return state ? badge(state, `st-${state}`) : null;
  }

  function empty(text) {
    return h("div", { class: "empty", text });
  }

  function toast(text, kind) {
    const el = h("div", { class: `toast ${kind || ""}`, text });
    $("toasts").append(el);
    setTimeout(() => el.remove(), kind === "error" ? 9000 : 5000);
  }

  // -- talking to the server --------------------------------------------------------------------

  async function post(path, body) {
    let response;
    try {
      response = await fetch(path, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-Guardrails": "1" },
        body: JSON.stringify(body),
      });
    } catch (err) {
      toast(`${path}: ${err}`, "error");
      return null;
    }
    let data = {};
    try {
      data = await response.json();
    } catch (err) {
      data = { error: `${response.status} ${response.statusText}` };
    }
    if (!response.ok) {
      toast(data.error || `${response.status} ${response.statusText}`, "error");
      return null;
    }
    return data;
  }

  // Buttons that do something drastic ask for a second click within 3 s. The armed state is
  // kept by key (data-confirm-key), not on the element, so a redraw does not disarm it.
  const ARMED_MS = 3000;

  function confirmed(button) {
    const label = button.dataset.confirm;
    if (!label) return true;
    const key = button.dataset.confirmKey || button.id || label;
    if ((view.armed.get(key) || 0) > Date.now()) {
      view.armed.delete(key);
      showArmed(key);
      return true;
    }
    view.armed.set(key, Date.now() + ARMED_MS);
    showArmed(key);
    setTimeout(() => showArmed(key), ARMED_MS + 50);
    return false;
  }

  function isArmed(key) {
    const until = view.armed.get(key);
    if (until && until <= Date.now()) view.armed.delete(key);
    return Boolean(until && until > Date.now());
  }

  // Show every button of ``key`` armed (its confirm label) or not (its own label).
  function showArmed(key) {
    const armed = isArmed(key);
    for (const b of document.querySelectorAll("button[data-confirm]")) {
      if ((b.dataset.confirmKey || b.id || b.dataset.confirm) !== key) continue;
      if (!b.dataset.label) b.dataset.label = b.textContent;
      b.textContent = armed ? b.dataset.confirm : b.dataset.label;
      b.classList.toggle("armed", armed);
    }
  }

  // A button asking for confirmation, drawn armed while its key is.
  function confirmButton(props, key) {
    const armed = isArmed(key);
    const b = h("button", { ...props, text: armed ? props.data.confirm : props.text, data: { ...props.data, confirmKey: key, label: props.text } });
    b.classList.toggle("armed", armed);
    return b;
  }

  async function control(verb, target, reason, button) {
    if (button && !confirmed(button)) return;
    const body = { ...target };
    if (reason) body.reason = reason;
    const out = await post(`/api/${verb}`, body);
    if (!out) return;
    const where = target.thread ? `thread ${target.thread}` : target.agent ? `agent ${target.agent}` : "everything";
    if (verb === "resume") {
      const jobs = out.jobs || [];
      toast(`${where}: ${out.lifted ? "lifted" : "nothing to lift"}${jobs.length ? `; resuming ${jobs.length} thread(s)` : ""}`);
      for (const job of jobs) watch(job, "");
    } else {
      toast(`${where}: ${verb === "kill" ? "killed" : verb === "pause" ? "paused" : "quarantined"}`);
    }
  }

  function controlButtons(target, { state, agent }) {
    const buttons = [];
    const who = target.thread ? `thread:${target.thread}` : `agent:${target.agent}`;
    if (state) {
      buttons.push(h("button", { type: "button", text: state === "quarantined" ? "Release" : "Resume", on: { click: (e) => control("resume", target, "", e.currentTarget) } }));
    } else {
      buttons.push(h("button", { type: "button", text: "Pause", on: { click: (e) => control("pause", target, "", e.currentTarget) } }));
      if (agent) buttons.push(h("button", { type: "button", class: "warn", text: "Quarantine", on: { click: (e) => control("quarantine", target, "", e.currentTarget) } }));
    }
    if (state !== "killed") {
      buttons.push(confirmButton({ type: "button", class: "danger", text: "Kill", data: { confirm: "Confirm" }, on: { click: (e) => control("kill", target, "", e.currentTarget) } }, `kill:${who}`));
    }
    return h("span", { class: "row-actions" }, buttons);
  }

  // -- pending approvals ------------------------------------------------------------------------

  function pendingCard(p) {
    const answering = view.info && view.info.answering;
    const card = h("div", { class: "card approval", data: { key: p.key, thread: p.thread_id, call: p.call_id } });
    const status = h("div", { class: "card-status", hidden: true });
    const args = h("pre", { class: "args", text: JSON.stringify(p.args, null, 2) });

    const editor = h("textarea", { class: "editor", rows: 5, spellcheck: false, value: JSON.stringify(p.args, null, 2) });
    const editBox = h("div", { class: "inline-form", hidden: true },
      editor,
      h("div", { class: "buttons" },
        h("button", { type: "button", class: "primary", text: "Send edit", on: { click: () => sendEdit() } }),
        h("button", { type: "button", text: "Cancel", on: { click: () => { editBox.hidden = true; } } })));
    const message = h("input", { type: "text", placeholder: "message for the agent (why not)", spellcheck: false });
    const rejectBox = h("div", { class: "inline-form", hidden: true },
      message,
      h("div", { class: "buttons" },
        h("button", { type: "button", class: "danger", text: "Send reject", on: { click: () => send({ answer: "reject", message: message.value }) } }),
        h("button", { type: "button", text: "Cancel", on: { click: () => { rejectBox.hidden = true; } } })));

    const approve = h("button", { type: "button", class: "primary", text: "Approve", disabled: !answering, on: { click: () => send({ answer: "approve" }) } });
    const edit = h("button", { type: "button", text: "Edit", disabled: !answering, on: { click: () => { editBox.hidden = !editBox.hidden; rejectBox.hidden = true; } } });
    const reject = h("button", { type: "button", class: "danger-outline", text: "Reject", disabled: !answering, on: { click: () => { rejectBox.hidden = !rejectBox.hidden; editBox.hidden = true; } } });
    const actions = h("div", { class: "buttons" }, approve, edit, reject);

    function sendEdit() {
      let parsed;
      try {
        parsed = JSON.parse(editor.value);
      } catch (err) {
        toast(`the arguments are not JSON: ${err.message}`, "error");
        return;
      }
      if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
        toast("the arguments must be a JSON object", "error");
        return;
      }
      send({ answer: "edit", args: parsed });
    }

    function ready(text) {
      status.hidden = !text;
      status.textContent = text || "";
      for (const b of card.querySelectorAll("button")) b.disabled = !answering;
    }

    async function send(answer) {
      for (const b of card.querySelectorAll("button")) b.disabled = true;
      status.hidden = false;
      status.textContent = "resuming the graph…";
      const out = await post("/api/answer", { thread: p.thread_id, call: p.call_id, ...answer });
      if (!out) {
        ready("");
        return;
      }
      watch(out.job, p.key);
      editBox.hidden = true;
      rejectBox.hidden = true;
    }

    // The resume ended and the call still waits (it failed, or stopped before the answer
    // reached the call): the operator may answer again.
    card._ready = ready;

    card.append(
      h("div", { class: "card-head" },
        h("span", { class: "agent", text: p.agent }),
        h("span", { class: "arrow", text: "→" }),
        h("span", { class: "tool", text: p.tool }),
        h("span", { class: "spacer" }),
        when(p.asked_at)),
      h("div", { class: "card-sub" },
        h("span", { class: "muted", text: "thread " }), h("span", { class: "mono", text: p.thread_id }),
        h("span", { class: "muted", text: "  rule " }), h("span", { class: "mono", text: p.rule })),
      h("div", { class: "reason", text: p.reason }),
      args,
      actions,
      editBox,
      rejectBox,
      status,
    );
    return card;
  }

  function renderPending(state) {
    const list = $("pending");
    const pending = state.pending;
    $("count-pending").textContent = String(pending.length);
    $("count-pending").classList.toggle("hot", pending.length > 0);
    const off = $("answering-off");
    off.hidden = !view.info || view.info.answering;
    off.textContent = view.info && !view.info.answering ? `Answering is off: ${view.info.answering_off}` : "";
    const keys = new Set(pending.map((p) => p.key));
    for (const [key, card] of view.cards) {
      if (!keys.has(key)) {
        card.remove();
        view.cards.delete(key);
      }
    }
    const held = state.paused_steps || [];
    const placeholder = list.querySelector(":scope > .empty");
    if (placeholder && (pending.length || held.length)) placeholder.remove();
    for (const p of pending) {
      if (!view.cards.has(p.key)) {
        const card = pendingCard(p);
        view.cards.set(p.key, card);
        list.append(card);
      }
    }
    morphChildren($("held"), held.map((s) => {
      const what = s.tool ? `${s.tool} of ${s.agent || "?"}${s.approved ? ", approved," : ""} waits at a pause` : `step ${s.step} waits at a pause`;
      return h("div", { class: "card held", data: { key: s.key } },
        h("div", { class: "card-head" }, badge("held", "st-paused"), h("span", { class: "mono", text: `thread ${s.thread_id}` }), h("span", { class: "spacer" }),
          h("button", { type: "button", text: "Resume", title: "lift the pause on this thread and go on", on: { click: (e) => control("resume", { thread: s.thread_id }, "", e.currentTarget) } })),
        h("div", { class: "card-sub muted", text: `${what} (${s.pauses})` }));
    }));
    if (!pending.length && !held.length && !list.querySelector(":scope > .empty")) list.append(empty("No approval waiting. Calls a policy marks ask will appear here."));
  }

  // -- decisions --------------------------------------------------------------------------------

  function decisionRow(d) {
    const outcome = String(d.outcome || "");
    const cls = KNOWN_OUTCOMES.has(outcome) ? `o-${outcome}` : "o-other";
    const detail = d.detail && typeof d.detail === "object" ? d.detail : {};
    const message = !d.tool && detail.recipient;
    let tool = str(d.tool);
    if (message) tool = `→ ${str(detail.recipient)}`;
    else if (!d.tool && Array.isArray(detail.tools)) tool = "(model call)";
    let args = message ? str(detail.content) : compact(d.args);
    if (detail.edited_args) args = `${args}  ⇒ edited: ${compact(detail.edited_args)}`;
    const reason = str(d.reason) + (d.approver ? `  (by ${str(d.approver)})` : "");
    const tr = h("tr", { class: `d ${cls}`, data: { outcome, seq: String(d.seq || "") } },
      h("td", { class: "c-time mono", text: clock(d.at), title: d.at ? new Date(d.at * 1000).toLocaleString() : "" }),
      h("td", { class: "c-out" }, badge(outcome || "?", `pill ${cls}`), d.kind && d.kind !== "decision" ? h("span", { class: "kind", text: String(d.kind).replace("_", " ") }) : null,
        detail.shadow ? h("span", { class: "shadow", text: `shadow: would ${str(detail.shadow)}`, title: "shadow mode: the policy decided this, the call ran anyway" }) : null,
        detail.would ? h("span", { class: "shadow would", text: `shadow rule: would ${str(detail.would)}`, title: `shadow rule ${str(detail.would_rule)} would have decided this; not enforced` }) : null),
      h("td", { class: "c-agent", title: `${str(d.agent)} on ${str(d.thread_id)}` },
        h("div", { class: "line", text: str(d.agent) }),
        h("div", { class: "line sub mono", text: str(d.thread_id) })),
      h("td", { class: "c-call" },
        h("div", { class: "line", title: `${tool} ${args}` }, h("span", { class: "tool-name mono", text: tool }), h("span", { class: "args-text mono", text: args })),
        h("div", { class: "line sub", title: reason }, h("span", { class: "rule-name mono", text: str(d.rule) }), reason ? h("span", { class: "reason-text", text: reason }) : null)));
    tr.addEventListener("click", () => {
      const next = tr.nextElementSibling;
      if (next && next.classList.contains("d-more")) {
        next.remove();
        return;
      }
      const full = h("tr", { class: "d-more" }, h("td", {}), h("td", {}, h("pre", { class: "args", text: JSON.stringify(d, null, 2) })));
      full.lastChild.colSpan = 3;
      tr.after(full);
    });
    tr.hidden = !matches(d);
    tr._decision = d;
    return tr;
  }

  function matches(d) {
    if (view.hidden.has(KNOWN_OUTCOMES.has(d.outcome) ? d.outcome : "other")) return false;
    if (!view.filter) return true;
    const det = d.detail && typeof d.detail === "object" ? d.detail : {};
    const shadow = [det.shadow ? `shadow ${det.shadow}` : "", det.would ? `shadow would ${det.would} ${str(det.would_rule)}` : ""].join(" ");
    const hay = [d.agent, d.tool, d.rule, d.reason, d.thread_id, d.kind, compact(d.args), d.approver, shadow].map(str).join(" ").toLowerCase();
    return view.filter.split(/\s+/).every((w) => hay.includes(w));
  }

  function addDecisions(items, reset) {
    const body = $("decisions");
    if (reset) {
      clear(body);
      view.decisions = [];
      view.maxSeq = 0;
    }
    const fresh = items.filter((d) => reset || !d.seq || d.seq > view.maxSeq);
    for (const d of fresh) {
      view.decisions.push(d);
      if (d.seq) view.maxSeq = Math.max(view.maxSeq, d.seq);
      const row = decisionRow(d);
      if (!reset) row.classList.add("new");
      body.prepend(row);
    }
    while (body.rows.length > MAX_ROWS) body.deleteRow(body.rows.length - 1);
    view.decisions = view.decisions.slice(-MAX_ROWS);
    $("count-decisions").textContent = String(view.decisions.length);
    updateDecisionsEmpty();
  }

  function updateDecisionsEmpty() {
    const el = $("decisions-empty");
    const feed = view.info ? view.info.feed : "";
    if (view.decisions.length) {
      el.hidden = true;
      return;
    }
    el.hidden = false;
    el.textContent = feed === "none"
      ? "No decision stream: start the dashboard with an audit log (--audit audit.db) or from the process that runs the guard (Dashboard(guard))."
      : "No decision yet. They appear here, newest first, as the guard makes them.";
  }

  function refilter() {
    for (const row of $("decisions").rows) {
      if (row._decision) row.hidden = !matches(row._decision);
      else if (row.classList.contains("d-more")) row.hidden = row.previousElementSibling ? row.previousElementSibling.hidden : false;
    }
  }

  function setupFilters() {
    const toggles = $("outcome-toggles");
    for (const o of [...OUTCOMES, "other"]) {
      const b = h("button", { type: "button", class: `toggle pill o-${o} on`, text: o, title: `show or hide ${o} decisions` });
      b.addEventListener("click", () => {
        if (view.hidden.has(o)) view.hidden.delete(o);
        else view.hidden.add(o);
        b.classList.toggle("on", !view.hidden.has(o));
        refilter();
      });
      toggles.append(b);
    }
    $("filter").addEventListener("input", (e) => {
      view.filter = e.target.value.trim().toLowerCase();
      refilter();
    });
  }

  // -- alarms, flags, threads, agents, activity -------------------------------------------------

  function renderTrips(state) {
    const trips = state.trips;
    $("count-trips").textContent = String(trips.length);
    $("count-trips").classList.toggle("hot", trips.length > 0);
    morphChildren($("trips"), trips.length ? trips.map((t) => {
      const evidence = (t.evidence || []).map((e) =>
        h("li", {}, h("span", { class: "mono muted", text: `#${str(e.index)} ` }), h("span", { class: "agent", text: str(e.sender) }), " → ", h("span", { class: "agent", text: str(e.recipient) }), ": ", h("span", { class: "quote", text: str(e.content) })));
      return h("div", { class: "card trip", data: { key: t.key } },
        h("div", { class: "card-head" }, badge(t.signal, "sig"), badge(t.response, `resp-${t.response}`), h("span", { class: "mono", text: t.thread_id || t.scope }), h("span", { class: "spacer" }), when(t.at)),
        h("div", { class: "reason", text: t.reason }),
        h("div", { class: "card-sub" }, h("span", { class: "muted", text: "culprit " }), h("span", { class: "agent", text: t.culprit || "?" }),
          h("span", { class: "muted", text: `  at message ${t.at_message}  agents ` }), h("span", { text: (t.agents || []).join(", ") })),
        evidence.length ? h("details", {}, h("summary", { text: `evidence (${evidence.length} messages)` }), h("ul", { class: "evidence" }, evidence)) : null);
    }) : [empty("No cascade alarm. Loops, storms, replication and escalation trip the breaker here.")]);
  }

  function where(f) {
    return f.level === "global" ? "everything" : `${f.level} ${f.target}`;
  }

  function renderFlags(state) {
    const flags = state.flags;
    $("count-flags").textContent = String(flags.length);
    $("count-flags").classList.toggle("hot", flags.length > 0);
    morphChildren($("flags"), flags.length ? flags.map((f) => {
      if (f.error) return h("div", { class: "card flag", data: { key: f.key }, text: f.error });
      const target = f.level === "thread" ? { thread: f.target } : f.level === "agent" ? { agent: f.target } : {};
      return h("div", { class: `card flag st-${f.state}-card`, data: { key: f.key } },
        h("div", { class: "card-head" }, stateBadge(f.state), h("span", { class: "mono strong", text: where(f) }), h("span", { class: "spacer" }), when(f.at)),
        h("div", { class: "card-sub" },
          f.reason ? h("span", { text: f.reason }) : h("span", { class: "muted", text: "no reason given" }),
          h("span", { class: "muted", text: f.by ? `  by ${f.by}` : "" }),
          f.grants_held ? h("span", { class: "muted", text: `  (${f.grants_held} grant(s) held)` }) : null),
        h("div", { class: "buttons" }, h("button", { type: "button", text: f.state === "quarantined" ? "Release" : "Lift", on: { click: (e) => control("resume", target, "", e.currentTarget) } })));
    }) : [empty("No pause, kill or quarantine in force: everything runs.")]);
    const global = flags.find((f) => f.level === "global");
    const gs = $("global-state");
    gs.textContent = global ? `everything ${global.state}${global.by ? ` by ${global.by}` : ""}` : "";
    gs.className = `global-state ${global ? `st-${global.state}` : ""}`;
  }

  function renderThreads(state) {
    const threads = state.threads;
    $("count-threads").textContent = String(threads.length);
    const weight = (t) => (t.state ? 4 : 0) + (t.pending ? 2 : 0) + (t.paused_steps ? 1 : 0);
    const ordered = [...threads].sort((x, y) => weight(y) - weight(x) || x.id.localeCompare(y.id));
    morphChildren($("threads"), ordered.length ? ordered.map((t) =>
      h("div", { class: "row", data: { thread: t.id, key: `thread:${t.id}` } },
        h("span", { class: "mono strong name", text: t.id }),
        stateBadge(t.state),
        t.pending ? badge(`${t.pending} waiting`, "st-ask") : null,
        t.paused_steps ? badge(`${t.paused_steps} held`, "st-paused") : null,
        h("span", { class: "muted small", text: t.decisions ? `${t.decisions} decisions` : "" }),
        h("span", { class: "spacer" }),
        controlButtons({ thread: t.id }, { state: t.state }))) : [empty("No thread seen yet.")]);
  }

  // A scope spec {kind: settings} as "kind(key=value, ...)", skipping empty settings.
  function scopeText(spec) {
    if (!spec || typeof spec !== "object") return str(spec);
    return Object.entries(spec).map(([kind, settings]) => {
      if (!settings || typeof settings !== "object") return `${kind}(${str(settings)})`;
      const parts = Object.entries(settings)
        .filter(([, v]) => v !== null && v !== undefined && v !== false && !(Array.isArray(v) && !v.length))
        .map(([k, v]) => `${k}=${Array.isArray(v) ? v.map(str).join("|") : str(v)}`);
      return `${kind}(${parts.join(", ")})`;
    }).join(" ");
  }

  function grantLine(g) {
    if (g.error) return h("div", { class: "grant broken", text: `grant ${g.id}: ${g.error}` });
    const scope = Object.entries(g.args || {}).map(([name, spec]) => `${name}: ${scopeText(spec)}`).join("; ");
    const notes = [];
    if (g.expires_at) notes.push(g.expired ? "expired" : `expires ${new Date(g.expires_at * 1000).toLocaleTimeString()}`);
    if (g.parent) notes.push(`delegated from ${g.parent}`);
    if (g.orphaned) notes.push("parent revoked");
    if (g.granted_by) notes.push(`by ${g.granted_by}`);
    return h("div", { class: `grant ${g.expired || g.orphaned ? "inactive" : ""}`, data: { key: `grant:${g.id}` } },
      h("div", { class: "grant-head" },
        h("span", { class: "mono strong", text: (g.tools || []).join(", ") }),
        g.effect === "ask" ? badge("ask", "st-ask") : badge("allow", "pill o-allow"),
        h("span", { class: "spacer" }),
        confirmButton({ type: "button", class: "small danger-outline", text: "Revoke", title: `revoke grant ${g.id}`, data: { confirm: "Confirm" }, on: { click: async (e) => {
          if (!confirmed(e.currentTarget)) return;
          const out = await post("/api/revoke", { grant: g.id });
          if (out) toast(out.revoked ? `grant ${g.id} revoked` : `grant ${g.id} was already gone`);
        } } }, `revoke:${g.id}`)),
      scope || notes.length ? h("div", { class: "grant-sub" },
        scope ? h("span", { class: "mono scope", text: scope, title: scope }) : null,
        notes.length ? h("span", { class: "muted small", text: notes.join(" · ") }) : null) : null);
  }

  function renderAgents(state) {
    const agents = state.agents;
    $("count-agents").textContent = String(agents.length);
    const byAgent = new Map();
    const loose = [];
    for (const g of state.grants) {
      if (g.agent) {
        if (!byAgent.has(g.agent)) byAgent.set(g.agent, []);
        byAgent.get(g.agent).push(g);
      } else loose.push(g);
    }
    const weight = (a) => (a.state ? 4 : 0) + (a.pending ? 2 : 0) + ((byAgent.get(a.name) || []).length ? 1 : 0);
    const ordered = [...agents].sort((x, y) => weight(y) - weight(x) || x.name.localeCompare(y.name));
    const items = ordered.map((a) => {
      const grants = byAgent.get(a.name) || [];
      return h("div", { class: "agent-block", data: { agent: a.name, key: `agent:${a.name}` } },
        h("div", { class: "row" },
          h("span", { class: "agent strong name", text: a.name }),
          stateBadge(a.state),
          a.pending ? badge(`${a.pending} waiting`, "st-ask") : null,
          a.grants ? h("span", { class: "muted small", text: `${a.grants} grant${a.grants === 1 ? "" : "s"}` }) : null,
          h("span", { class: "spacer" }),
          controlButtons({ agent: a.name }, { state: a.state, agent: true })),
        grants.length ? h("div", { class: "grants" }, grants.map(grantLine)) : null);
    });
    for (const g of loose) items.push(grantLine(g));
    morphChildren($("agents"), items.length ? items : [empty("No agent seen yet: agents appear once they have grants, flags, approvals or decisions.")]);
    const targets = $("cf-targets");
    const level = $("cf-level").value;
    const names = level === "agent" ? agents.map((a) => a.name) : state.threads.map((t) => t.id);
    morphChildren(targets, names.map((n) => h("option", { value: n })));
  }

  // A resume started from this page: say how it ended (the state may show that before the
  // answer to the POST arrives).
  function watch(job, cardKey) {
    view.watched.set(job.id, cardKey);
    const known = view.jobs.get(job.id);
    if (known && known.status !== "running") ended(known);
  }

  function ended(j) {
    const cardKey = view.watched.get(j.id);
    view.watched.delete(j.id);
    toast(`${j.action} on thread ${j.thread_id}: ${j.detail || j.status}`, j.status === "error" ? "error" : j.status === "finished" ? "ok" : "");
    const card = cardKey ? view.cards.get(cardKey) : null;
    if (card && card._ready) card._ready(`${j.status}: ${j.detail}`);
  }

  function renderActivity(state) {
    const rows = [];
    for (const j of state.jobs || []) {
      rows.push({ at: j.ended || j.started, el: h("div", { class: `row activity job-${j.status}` },
        h("span", { class: "mono muted", text: clock(j.ended || j.started) }),
        badge(j.status, `job ${j.status}`),
        h("span", { text: `${j.action} on thread ${j.thread_id}${j.call_id ? ` (call ${j.call_id})` : ""} by ${j.by}` }),
        j.detail ? h("span", { class: "muted small", text: `: ${j.detail}` }) : null) });
      view.jobs.set(j.id, j);
      if (view.watched.has(j.id) && j.status !== "running") ended(j);
    }
    for (const a of state.activity || []) {
      rows.push({ at: a.at, el: h("div", { class: "row activity" },
        h("span", { class: "mono muted", text: clock(a.at) }),
        h("span", { class: "strong", text: a.by }),
        h("span", { text: `${a.action} ${a.target}` }),
        a.detail ? h("span", { class: "muted small", text: a.detail }) : null) });
    }
    rows.sort((x, y) => y.at - x.at);
    morphChildren($("activity"), rows.length ? rows.slice(0, 40).map((r) => r.el) : [empty("Nothing done from this dashboard yet.")]);
  }

  // -- live plots: inline SVG drawn here from state.plots (no library, nothing fetched) ---------

  const SVG_NS = "http://www.w3.org/2000/svg";
  const SERIES_LABEL = { allow: "allow", deny: "deny", ask: "ask", would_deny: "would deny" };

  // SVG elements with plain attributes only (no handlers, no links); text as textContent.
  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null) continue;
      if (key === "text") el.textContent = String(value);
      else if (key === "data") for (const [k, v] of Object.entries(value)) el.setAttribute(`data-${k}`, String(v));
      else if (/^[a-zA-Z][a-zA-Z0-9-]*$/.test(key) && !/^on/i.test(key) && !/href$/i.test(key)) {
        el.setAttribute(key, typeof value === "number" ? String(Math.round(value * 10) / 10) : String(value));
      } else throw new Error(`s(): attribute ${key} is not allowed`);
    }
    for (const child of children.flat()) if (child) el.append(child);
    return el;
  }

  const finite = (x) => (typeof x === "number" && Number.isFinite(x) ? x : 0);

  function plotTimeline(data) {
    const points = (data && data.points) || [];
    const series = (data && data.series) || Object.keys(SERIES_LABEL);
    if (!points.length) return empty("No decisions yet.");
    const W = 240, H = 130, L = 20, R = 4, T = 16, B = 14;
    let top = 1;
    for (const p of points) for (const k of series) top = Math.max(top, finite(p[k]));
    const x = (i) => (points.length === 1 ? L + (W - L - R) / 2 : L + (i * (W - L - R)) / (points.length - 1));
    const y = (v) => T + (H - T - B) * (1 - finite(v) / top);
    const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "decisions over time by outcome", data: { points: points.length } },
      s("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }),
      s("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }),
      s("text", { x: L - 3, y: T + 3, "text-anchor": "end", text: String(top) }),
      s("text", { x: L - 3, y: H - B, "text-anchor": "end", text: "0" }),
      s("text", { x: L, y: H - 3, text: clock(points[0].t) }),
      s("text", { x: W - R, y: H - 3, "text-anchor": "end", text: `${clock(points[points.length - 1].t)} · ${data.step}s` }));
    const legend = s("g", { class: "legend" });
    let lx = L;
    for (const k of series) {
      const total = points.reduce((n, p) => n + finite(p[k]), 0);
      const label = `${SERIES_LABEL[k] || k} ${total}`;
      legend.append(s("text", { class: `s-${k}`, x: lx, y: 10, text: label, data: { series: k, total } }));
      lx += 8 + label.length * 4.6;
      const coords = points.map((p, i) => `${Math.round(x(i) * 10) / 10},${Math.round(y(p[k]) * 10) / 10}`).join(" ");
      svg.append(s("polyline", { class: `line s-${k}`, points: coords, data: { series: k } }));
      const dots = s("g", { class: `dots s-${k}`, data: { series: k } });
      points.forEach((p, i) => dots.append(s("circle", { cx: x(i), cy: y(p[k]), r: 1.8 }, s("title", { text: `${clock(p.t)} ${SERIES_LABEL[k] || k}: ${finite(p[k])}` }))));
      svg.append(dots);
    }
    svg.append(legend);
    return svg;
  }

  function plotBudgets(rows) {
    const bars = [];
    for (const r of rows || []) for (const b of r.budgets || []) bars.push({ thread: r.thread, ...b });
    if (!bars.length) return empty("No thread budgets (or no policy given).");
    const W = 175, ROW = 14, LABEL = 58, T = 2;
    const several = new Set(bars.map((b) => b.id)).size > 1;
    const svg = s("svg", { viewBox: `0 0 ${W} ${T + bars.length * ROW + 4}`, role: "img", "aria-label": "budget use per thread", data: { bars: bars.length } });
    bars.forEach((b, i) => {
      const y = T + i * ROW;
      const limit = finite(b.limit);
      const frac = limit > 0 ? Math.min(1, finite(b.used) / limit) : 1;
      const width = W - LABEL - 34;
      const name = several ? `${str(b.thread)} · ${str(b.id)}` : str(b.thread);
      const cls = frac >= 1 ? "bar full" : frac >= 0.8 ? "bar high" : "bar";
      svg.append(
        s("text", { x: 0, y: y + 10, text: name.length > 12 ? `${name.slice(0, 11)}…` : name }, s("title", { text: `${str(b.thread)} · budget ${str(b.id)}` })),
        s("rect", { class: "bar-bg", x: LABEL, y: y + 2, width, height: ROW - 5 }),
        s("rect", { class: cls, x: LABEL, y: y + 2, width: Math.max(0.5, width * frac), height: ROW - 5, data: { thread: str(b.thread), budget: str(b.id), used: finite(b.used), limit } }),
        s("text", { x: LABEL + width + 3, y: y + 10, text: `${finite(b.used)}/${limit}` }));
    });
    return svg;
  }

  function plotMessages(graph) {
    const nodes = (graph && graph.nodes) || [];
    const edges = (graph && graph.edges) || [];
    if (!nodes.length) return empty("No messages between agents yet.");
    const W = 175, H = 130, cx = W / 2, cy = H / 2 - 5, rad = Math.min(W, H) / 2 - 18;
    const at = new Map();
    nodes.forEach((n, i) => {
      const a = nodes.length === 1 ? 0 : (2 * Math.PI * i) / nodes.length - Math.PI / 2;
      at.set(n.id, { x: nodes.length === 1 ? cx : cx + rad * Math.cos(a), y: nodes.length === 1 ? cy : cy + rad * Math.sin(a) });
    });
    const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "agent-to-agent messages with cascade alarms", data: { nodes: nodes.length, edges: edges.length } });
    for (const e of edges) {
      const a = at.get(e.from), b = at.get(e.to);
      if (!a || !b) continue;
      // bend each edge to its left, so that a -> b and b -> a are two curves
      const mx = (a.x + b.x) / 2, my = (a.y + b.y) / 2, dx = b.x - a.x, dy = b.y - a.y;
      const qx = mx - dy * 0.18, qy = my + dx * 0.18;
      const cls = `edge${e.held ? " held" : ""}${e.alarm ? " alarm" : ""}`;
      const width = 1 + Math.log2(1 + finite(e.count));
      svg.append(s("path", { class: cls, d: `M${a.x.toFixed(1)},${a.y.toFixed(1)} Q${qx.toFixed(1)},${qy.toFixed(1)} ${b.x.toFixed(1)},${b.y.toFixed(1)}`, "stroke-width": width, data: { from: str(e.from), to: str(e.to), count: finite(e.count) } },
        s("title", { text: `${str(e.from)} → ${str(e.to)}: ${finite(e.count)} messages${e.held ? `, ${e.held} held` : ""}${e.alarm ? " (cascade alarm)" : ""}` })));
      // the recipient's end: a dot a little before the node
      const len = Math.hypot(b.x - qx, b.y - qy) || 1;
      svg.append(s("circle", { class: cls.replace("edge", "edge-end"), cx: b.x - ((b.x - qx) / len) * 10, cy: b.y - ((b.y - qy) / len) * 10, r: 1.8 }));
    }
    for (const n of nodes) {
      const p = at.get(n.id);
      const cls = `node${n.alarm ? ` ${n.alarm}` : ""}`;
      const signals = (n.signals || []).map(str).join(", ");
      svg.append(
        s("circle", { class: cls, cx: p.x, cy: p.y, r: 6, data: { agent: str(n.id), alarm: n.alarm || "" } },
          s("title", { text: `${str(n.id)}: ${finite(n.messages)} messages${signals ? `; alarm: ${signals}` : ""}` })),
        s("text", { x: p.x, y: p.y + 15, "text-anchor": "middle", text: str(n.id).slice(0, 16) }));
    }
    return svg;
  }

  function renderPlots(state) {
    const plots = state.plots || {};
    const put = (id, data, draw) => {
      const el = $(id);
      const text = JSON.stringify(data === undefined ? null : data);
      if (el._drawn === text) return; // unchanged: leave it (and its tooltips) alone
      el._drawn = text;
      clear(el);
      el.append(draw(data));
    };
    put("plot-timeline-body", plots.timeline, plotTimeline);
    put("plot-budgets-body", plots.budgets, plotBudgets);
    put("plot-messages-body", plots.messages, plotMessages);
    const n = plots.timeline && plots.timeline.points ? plots.timeline.points.reduce((t, p) => t + (plots.timeline.series || []).reduce((u, k) => u + finite(p[k]), 0), 0) : 0;
    $("plots-window").textContent = n ? `last ${n} decisions` : "";
  }

  function render() {
    const state = view.state;
    if (!state) return;
    renderPending(state);
    renderTrips(state);
    renderFlags(state);
    renderThreads(state);
    renderAgents(state);
    renderActivity(state);
    renderPlots(state);
  }

  function renderInfo() {
    const info = view.info;
    const meta = $("meta");
    morphChildren(meta, [
      h("span", { class: "muted", text: "store " }), h("span", { class: "mono", text: info.store }),
      h("span", { class: "muted", text: "  decisions from " }), h("span", { class: "mono", text: FEEDS[info.feed] || info.feed }),
      h("span", { class: "muted", text: "  as " }), h("span", { class: "strong", text: info.by }),
    ]);
    updateDecisionsEmpty();
  }

  // -- the control form and global buttons ------------------------------------------------------

  function setupControls() {
    const level = $("cf-level");
    const target = $("cf-target");
    const sync = () => {
      const l = level.value;
      target.disabled = l === "global";
      target.placeholder = l === "global" ? "everything" : `${l} id`;
      $("cf-quarantine").disabled = l !== "agent";
      if (view.state) renderAgents(view.state);
    };
    level.addEventListener("change", sync);
    sync();
    const chosen = () => {
      const l = level.value;
      const t = target.value.trim();
      if (l === "global") return {};
      if (!t) {
        toast(`name the ${l} first`, "error");
        return null;
      }
      return l === "thread" ? { thread: t } : { agent: t };
    };
    for (const verb of ["pause", "resume", "quarantine", "kill"]) {
      $(`cf-${verb}`).addEventListener("click", (e) => {
        const t = chosen();
        if (t) control(verb, t, $("cf-reason").value.trim(), e.currentTarget);
      });
    }
    $("pause-all").addEventListener("click", (e) => control("pause", {}, "", e.currentTarget));
    $("resume-all").addEventListener("click", (e) => control("resume", {}, "", e.currentTarget));
    $("kill-all").addEventListener("click", (e) => control("kill", {}, "", e.currentTarget));
  }

  // -- the live stream --------------------------------------------------------------------------

  function connection(state, text) {
    const el = $("conn");
    el.dataset.state = state;
    $("conn-text").textContent = text;
    $("live-tag").classList.toggle("off", state !== "live");
  }

  function connect() {
    const source = new EventSource("/api/stream");
    source.addEventListener("open", () => connection("live", "live"));
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        connection("down", "disconnected: reload (a token may be needed)");
      } else {
        connection("retry", "reconnecting…");
      }
    });
    source.addEventListener("hello", (e) => {
      const before = view.info;
      view.info = JSON.parse(e.data);
      renderInfo();
      if (!before || before.answering !== view.info.answering) {
        // The cards' buttons depend on it; otherwise keep them (and an edit being typed).
        for (const card of view.cards.values()) card.remove();
        view.cards.clear();
      }
      render();
    });
    source.addEventListener("problem", (e) => {
      connection("retry", `cannot read the store: ${JSON.parse(e.data).error}`);
    });
    source.addEventListener("decisions", (e) => {
      const data = JSON.parse(e.data);
      addDecisions(data.items || [], Boolean(data.reset));
    });
    source.addEventListener("state", (e) => {
      view.state = JSON.parse(e.data);
      render();
      connection("live", "live");
    });
  }

  setInterval(() => {
    for (const el of document.querySelectorAll(".when[data-at]")) {
      const at = Number(el.dataset.at);
      if (at) el.textContent = ago(at);
    }
  }, 5000);

  document.addEventListener("DOMContentLoaded", () => {
    setupFilters();
    setupControls();
    updateDecisionsEmpty();
    connect();
  });
})();
