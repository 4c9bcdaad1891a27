/* Green Passbook kiosk page: render the kiosk's view, send touches as POSTs.
 *
 * The view (edge/kiosk/view.py) is the page's only input: the first one is in
 * the page itself (#gp-first-view), every later one arrives over
 * EventSource("/events"). The page keeps only what the view cannot know
 * (digits typed so far, a cart being filled, a form's text) in `GP.state.local`,
 * which is reset whenever the screen, staff task or villager changes. A touch
 * never changes the screen by itself: it asks the kiosk (POST /api/...) and the
 * kiosk's next view shows the outcome. So "done" appears only when the ledger
 * has committed.
 *
 * The stream reconnects by itself; while it is down a small "reconnecting" mark
 * shows over the last screen (never a blank page).
 *
 * Screens are functions `GP.screens[name](view, local)` returning
 * {title, html, slots, say}: `html` replaces #main only when it changed (so
 * focus and animations survive), `slots` are small parts updated on their own
 * (the live weight), `say` is the prompt read aloud when `view.spoken`.
 * Villager screens are here; staff screens are in staff.js.
 */
"use strict";
window.GP = window.GP || {};

(function () {
  const S = (GP.state = {
    view: null,
    local: {},
    localKey: null,
    connected: true,
    es: null,
    retryTimer: null,
    downSince: 0,
    spokenKey: "",
    busy: {},
    notice: null, // {text, kind, until}
    noticeTimer: null,
    staffNoticeKey: "",
  });
  GP.screens = GP.screens || {};
  GP.enter = GP.enter || {};
  GP.actions = GP.actions || {};

  const ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  GP.esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ESC[c]);
  const esc = GP.esc;
  const byId = (id) => document.getElementById(id);
  GP.lang = () => (S.view && S.view.lang === "en" ? "en" : "zh");
  GP.tr = (key, params) => GP.t(GP.lang(), key, params);
  const t = GP.tr;
  const icon = (name, cls) => GP.icon(name, cls);

  // --- talking to the kiosk ---------------------------------------------------------------

  async function request(method, path, body) {
    try {
      const init = { method, headers: { Accept: "application/json" } };
      if (method === "POST") {
        init.headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(body || {});
      }
      const r = await fetch(path, init);
      let data = {};
      try {
        data = await r.json();
      } catch (e) {
        data = {};
      }
      if (!r.ok) return { ...data, ok: false, code: data.code || `http_${r.status}`, message: data.message || "" };
      return { ok: true, ...data };
    } catch (e) {
      return { ok: false, code: "network", message: String(e) };
    }
  }

  /** POST once at a time per path (a double tap must not redeem twice); the answer. */
  GP.post = async function (path, body) {
    if (S.busy[path]) return { ok: false, code: "busy", message: "" };
    S.busy[path] = true;
    render();
    try {
      const answer = await request("POST", path, body);
      if (!S.connected) await refreshView(); // the stream is down: fetch the outcome
      return answer;
    } finally {
      delete S.busy[path];
      render();
    }
  };
  GP.get = (path) => request("GET", path);
  GP.isBusy = (path) => Boolean(S.busy[path]);

  async function refreshView() {
    const r = await request("GET", "/api/view");
    if (r.ok && r.screen) {
      delete r.ok;
      S.view = r;
    }
  }

  // --- the live stream --------------------------------------------------------------------

  function connect() {
    clearTimeout(S.retryTimer);
    if (S.es) S.es.close();
    const es = new EventSource("/events");
    S.es = es;
    es.onopen = () => setConnected(true);
    es.onmessage = (e) => {
      let view;
      try {
        view = JSON.parse(e.data);
      } catch (err) {
        return;
      }
      setConnected(true);
      S.view = view;
      render();
    };
    es.onerror = () => {
      setConnected(false);
      // The browser retries by itself unless the answer was not a stream (CLOSED);
      // if it keeps failing for long, start afresh.
      const stuck = S.downSince && Date.now() - S.downSince > 15000;
      if (es.readyState === EventSource.CLOSED || stuck) {
        es.close();
        S.downSince = Date.now();
        S.retryTimer = setTimeout(connect, 2000);
      }
    };
  }

  function setConnected(ok) {
    if (ok === S.connected) return;
    S.connected = ok;
    S.downSince = ok ? 0 : Date.now();
    const mark = byId("conn");
    if (mark) mark.hidden = ok;
  }

  /** Stop listening (tests and diagnostics render views of their own with GP.render). */
  GP.disconnect = function () {
    clearTimeout(S.retryTimer);
    if (S.es) S.es.close();
    S.es = null;
  };

  // --- rendering --------------------------------------------------------------------------

  function localKeyOf(v) {
    const s = v.staff || {};
    if (v.screen === "staff") {
      return `staff|${s.id}|${s.task}|${(s.villager && s.villager.passbook) || ""}`;
    }
    if (v.screen === "staff_pin") return `pin|${s.pending}`;
    return `${v.screen}|${(v.villager && v.villager.passbook) || ""}|${v.refusal || ""}`;
  }

  function screenName(v) {
    if (v.screen === "staff") return `staff_${(v.staff && v.staff.task) || "menu"}`;
    if ((v.screen === "confirmed" || v.screen === "refused") && S.local.pickAgain && v.villager) {
      return "villager"; // "put another bag": the categories again, from the result screen
    }
    return v.screen;
  }

  function setHtml(node, html) {
    if (!node || node._html === html) return;
    node.innerHTML = html;
    node._html = html;
  }

  /** Replace #main, keeping the focused input (and its caret) when it is still there. */
  function setMain(html) {
    const main = byId("main");
    if (main._html === html) return;
    const active = document.activeElement;
    const focusId = active && active !== document.body && main.contains(active) ? active.id : "";
    let sel = null;
    if (focusId && typeof active.selectionStart === "number") {
      sel = [active.selectionStart, active.selectionEnd];
    }
    main.innerHTML = html;
    main._html = html;
    const again = focusId ? byId(focusId) : null;
    if (again) {
      again.focus();
      if (sel && again.setSelectionRange) {
        try {
          again.setSelectionRange(sel[0], sel[1]);
        } catch (e) {
          /* not a text input */
        }
      }
    } else if (!S.local.focused) {
      const auto = main.querySelector("[data-autofocus]");
      if (auto) {
        auto.focus();
        S.local.focused = true;
      }
    }
  }

  function render() {
    const v = S.view;
    if (!v) return;
    const key = localKeyOf(v);
    if (key !== S.localKey) {
      S.localKey = key;
      S.local = {};
      const name = screenName(v);
      if (GP.enter[name]) GP.enter[name](v, S.local);
    }
    const en = v.lang === "en";
    document.documentElement.lang = en ? "en" : "zh-CN";
    const name = screenName(v);
    document.body.dataset.screen = name;
    const build = GP.screens[name] || GP.screens.unknown;
    const out = build(v, S.local);
    setHtml(byId("title"), out.title || "");
    setMain(out.html);
    for (const [id, html] of Object.entries(out.slots || {})) setHtml(byId(id), html);
    setHtml(byId("status"), statusHtml(v));
    setHtml(byId("lang"), `${icon("globe")}<span>${esc(t("other_lang"))}</span>`);
    byId("lang").lang = en ? "zh-CN" : "en";
    byId("conn-text").textContent = t("reconnecting");
    staffNotice(v);
    setHtml(byId("notice"), noticeHtml());
    speak(v, out.say);
  }
  GP.render = function (view) {
    if (view) S.view = view;
    render();
  };

  // --- a short notice over the screen (staff outcomes seen on villager screens) ----------

  GP.notify = function (text, kind, ms) {
    S.notice = { text, kind: kind || "info", until: Date.now() + (ms || 6000) };
    clearTimeout(S.noticeTimer);
    S.noticeTimer = setTimeout(render, (ms || 6000) + 50);
    render();
  };

  function noticeHtml() {
    const n = S.notice;
    if (!n || Date.now() > n.until) return "";
    const ic = n.kind === "bad" ? "warn" : "lock";
    return `<div class="notice notice-${n.kind}" role="status">${icon(ic)}<span>${esc(n.text)}</span></div>`;
  }

  /** A staff sign-in that ended (locked, unknown card, timeout) is told once, briefly. */
  function staffNotice(v) {
    const s = v.staff;
    const onStaff = v.screen === "staff" || v.screen === "staff_pin";
    const key = s && !onStaff && s.message ? `${s.message}|${s.pending}|${s.id}` : "";
    if (key === S.staffNoticeKey) return;
    S.staffNoticeKey = key;
    if (key) {
      S.notice = { text: GP.message(GP.lang(), s.message), kind: "bad", until: Date.now() + 8000 };
      clearTimeout(S.noticeTimer);
      S.noticeTimer = setTimeout(render, 8050);
    }
  }

  // --- spoken prompts ---------------------------------------------------------------------

  function speak(v, text) {
    if (!v.spoken || !text || !("speechSynthesis" in window)) return;
    const key = `${v.lang}|${v.screen}|${text}`;
    if (key === S.spokenKey) return;
    S.spokenKey = key;
    const u = new SpeechSynthesisUtterance(text);
    u.lang = v.lang === "en" ? "en-US" : "zh-CN";
    const want = v.lang === "en" ? "en" : "zh";
    const voice = speechSynthesis
      .getVoices()
      .find((x) => x.lang.replace("_", "-").toLowerCase().startsWith(want));
    if (voice) u.voice = voice;
    speechSynthesis.cancel();
    speechSynthesis.speak(u);
  }

  // --- the status strip -------------------------------------------------------------------

  function statusItem(name, iconName, text, kind) {
    return `<span class="st st-${kind}" data-status="${name}">${icon(iconName)}<span>${esc(text)}</span></span>`;
  }

  function health(value) {
    const key = `health_${value}`;
    return key in GP.STRINGS.zh ? t(key) : String(value);
  }

  /** The strip says to villagers only what changes what they do: whether the scale and
   * the scanner work (if not, ask staff). The technician's states (the network, the
   * backlog, a sync or log fault, the clock) change nothing for them, so they show on
   * staff screens only (and in the kiosk's status to central). */
  function statusHtml(v) {
    const st = v.status || {};
    const forStaff = v.screen === "staff" || v.screen === "staff_pin";
    const items = forStaff ? technicianItems(st) : [];
    const scaleOk = st.scale === "ok" || st.scale === undefined;
    items.push(statusItem("scale", "scale", `${t("scale")} ${health(st.scale || "ok")}`, scaleOk ? "ok" : "bad"));
    const scannerOk = st.scanner === "ok" || st.scanner === undefined;
    items.push(statusItem("scanner", "qr", `${t("scanner")} ${health(st.scanner || "ok")}`, scannerOk ? "ok" : "bad"));
    if (forStaff && st.clock_ok === false) items.push(statusItem("clock", "clock", t("clock_bad"), "warn"));
    const where = [v.village, v.device].filter(Boolean).join(" · ");
    return `${items.join("")}<span class="st-where">${esc(where)}</span>`;
  }

  function technicianItems(st) {
    const items = [];
    if (st.sync_fault) {
      // In place of online / offline: either way nothing reaches central. Short here;
      // its code and message are on the staff menu (staff.js).
      items.push(statusItem("sync", "warn", t("sync_fault"), "bad"));
    } else if (st.log_fault && st.online !== false) {
      // Central's log failed this kiosk's check (sync.log_check): in place of "online"
      // (sync goes on; offline would still show), its code and message on the staff menu.
      items.push(statusItem("log", "warn", t("log_fault"), "bad"));
    } else if (st.online === true || st.online === false) {
      items.push(
        statusItem("network", st.online ? "cloud" : "cloud_off", t(st.online ? "online" : "offline"), st.online ? "ok" : "warn"),
      );
    }
    if (st.printer && !["ok", "off", "unknown", "paper_low"].includes(st.printer)) {
      items.push(statusItem("printer", "printer", t("printer_fault"), "bad"));
    }
    if (st.online !== null && st.online !== undefined && st.backlog > 0) {
      items.push(statusItem("backlog", "upload", t("backlog", { n: st.backlog }), "info"));
    }
    return items;
  }

  // --- villager screens -------------------------------------------------------------------

  GP.findCategory = (v, key) => (v.categories || []).find((c) => c.key === key) || null;
  GP.categoryName = function (v, key) {
    const c = GP.findCategory(v, key);
    if (!c) return key || "";
    return GP.lang() === "en" ? c.name_en : c.name_zh;
  };
  const rate = (n) => (Number.isInteger(n) ? String(n) : String(Math.round(n * 100) / 100));

  GP.screens.idle = () => ({
    title: "",
    say: t("scan_title"),
    html:
      `<section class="idle">` +
      `<div class="idle-qr">${icon("qr")}</div>` +
      `<div class="idle-text"><h1 id="prompt">${esc(t("scan_title"))}</h1>` +
      `<p class="sub">${esc(t("scan_sub"))}</p></div>` +
      `<div class="idle-arrow">${icon("arrow_down")}</div>` +
      `</section>`,
  });

  function todayHtml(v, today) {
    if (!today.length) return `<p class="today-n">${esc(t("today_none"))}</p>`;
    const rows = today
      .slice(0, 3)
      .map(
        (d) =>
          `<li style="--c:${GP.categoryColour(d.category)}">${GP.categoryIcon(d.category)}` +
          `<span>${esc(GP.mass(GP.lang(), d.grams))}</span><b>+${esc(d.points)}</b></li>`,
      )
      .join("");
    return `<p class="today-n">${esc(t("today_n", { n: today.length }))}</p><ul class="today">${rows}</ul>`;
  }

  GP.screens.villager = (v) => {
    const vi = v.villager || {};
    const cats = v.categories || [];
    const cols = cats.length <= 4 ? 2 : cats.length <= 9 ? 3 : cats.length <= 12 ? 4 : 5;
    const rows = Math.max(1, Math.ceil(cats.length / cols));
    const tiles = cats
      .map((c) => {
        const name = GP.lang() === "en" ? c.name_en : c.name_zh;
        // "塑料瓶 (PET)": the qualifier on a smaller line of its own, so the name fits.
        const m = /^(.*?)\s*([(（].*[)）])$/.exec(name);
        const label = m
          ? `${esc(m[1])}<small>${esc(m[2])}</small>`
          : esc(name);
        return (
          `<button class="cat" data-act="category" data-arg="${esc(c.key)}" data-cat="${esc(c.key)}" ` +
          `style="--c:${GP.categoryColour(c.key)}">${GP.categoryIcon(c.key, "cat-icon")}` +
          `<span class="cat-name">${label}</span>` +
          `<span class="cat-rate">${esc(t("per_kg", { n: rate(c.points_per_kg) }))}</span></button>`
        );
      })
      .join("");
    return {
      title: esc(t("choose_title")),
      say: t("choose_title"),
      html:
        `<section class="villager">` +
        `<aside class="who">` +
        `<div class="who-name">${icon("person")}<span id="villager-name">${esc(vi.name)}</span></div>` +
        `<div class="who-balance"><span class="label">${esc(t("balance"))}</span>` +
        `<span class="num" id="balance">${esc(vi.balance)}</span>` +
        `<span class="unit">${esc(t("points_unit"))}</span></div>` +
        todayHtml(v, vi.today || []) +
        `<button class="btn btn-done" data-act="cancel" id="done">${icon("check_circle")}<span>${esc(t("done"))}</span></button>` +
        `</aside>` +
        `<div class="cats ${rows > 3 ? "cats-dense" : ""}" style="--cols:${cols};--rows:${rows}">${tiles}</div>` +
        `</section>`,
    };
  };

  const HINT_ICONS = {
    place_bag: "place_bag",
    hold_still: "hold_still",
    remove_bag: "remove_bag",
    unsettled: "remove_bag",
    too_light: "too_light",
    over_capacity: "over_capacity",
    scale_disconnected: "scale_disconnected",
    scale_error: "scale_error",
  };
  const HINT_KIND = {
    place_bag: "go",
    hold_still: "go",
    remove_bag: "warn",
    unsettled: "warn",
    too_light: "warn",
    over_capacity: "bad",
    scale_disconnected: "bad",
    scale_error: "bad",
  };

  function hintText(v, hint) {
    const cat = GP.findCategory(v, v.category);
    const min = GP.mass(GP.lang(), cat ? cat.min_grams : 0);
    const key = `hint_${hint}`;
    return key in GP.STRINGS.zh ? t(key, { min }) : t("hint_place_bag");
  }

  function categoryTitle(v) {
    const key = v.category || (v.result && v.result.category) || "";
    return (
      `<span class="title-cat" style="--c:${GP.categoryColour(key)}">${GP.categoryIcon(key)}` +
      `<span>${esc(GP.categoryName(v, key))}</span></span>`
    );
  }

  GP.screens.weighing = (v) => {
    const hint = v.hint || "place_bag";
    const w = v.weight || { grams: 0, stable: false };
    const broken = hint === "scale_disconnected" || hint === "scale_error";
    const digits = broken ? "–.––" : (Math.max(0, w.grams) / 1000).toFixed(2);
    const steady = !broken && w.grams > 0;
    const text = hintText(v, hint);
    return {
      title: categoryTitle(v),
      say: text,
      html:
        `<section class="weighing">` +
        `<div class="weight-box"><div class="weight" id="weight-slot"></div><div class="steady" id="steady-slot"></div></div>` +
        `<div class="hint-box" id="hint-slot"></div>` +
        `<button class="btn btn-back" data-act="cancel" id="back">${icon("back")}<span>${esc(t("back"))}</span></button>` +
        `</section>`,
      slots: {
        "weight-slot": `<span class="digits" id="weight">${digits}</span><span class="unit">${esc(t("kg"))}</span>`,
        "steady-slot": steady ? `<span class="${w.stable ? "is-stable" : "is-moving"}">${esc(t(w.stable ? "stable" : "settling"))}</span>` : "",
        "hint-slot":
          `<div class="hint hint-${HINT_KIND[hint] || "go"}" data-hint="${esc(hint)}">` +
          `${icon(HINT_ICONS[hint] || "scale", hint === "hold_still" ? "pulse" : "")}` +
          `<p id="hint">${esc(text)}</p></div>`,
      },
    };
  };

  GP.screens.committing = (v) => ({
    title: categoryTitle(v),
    say: "",
    html:
      `<section class="committing"><div class="spinner" aria-hidden="true"></div>` +
      `<p id="saving">${esc(t("saving"))}</p>` +
      `<p class="sub">${esc(GP.mass(GP.lang(), (v.weight || {}).grams || 0))}</p></section>`,
  });

  GP.screens.confirmed = (v) => {
    const r = v.result || {};
    const key = r.category || v.category || "";
    return {
      title: categoryTitle(v),
      say: t("thanks", { n: r.points }),
      html:
        `<section class="result result-ok">` +
        `<div class="result-icon">${icon("check_circle")}</div>` +
        `<div class="result-text">` +
        `<p class="earned" id="earned">${esc(t("points_earned", { n: r.points }))}</p>` +
        `<p class="line" style="--c:${GP.categoryColour(key)}">${GP.categoryIcon(key)}` +
        `<span>${esc(GP.categoryName(v, key))} · ${esc(GP.mass(GP.lang(), r.grams))}</span></p>` +
        `<p class="line co2" id="co2">${icon("leaf")}<span>${esc(t("co2_saved", { co2: GP.co2(r.co2e_g) }))}</span></p>` +
        `<p class="line balance" id="new-balance">${icon("star")}<span>${esc(t("new_balance", { n: r.balance }))}</span></p>` +
        receiptLine(v, r) +
        `</div>` +
        `<div class="actions">` +
        `<button class="btn btn-primary" data-act="another" id="another">${icon("place_bag")}<span>${esc(t("another_bag"))}</span></button>` +
        `<button class="btn btn-done" data-act="cancel" id="done">${icon("check_circle")}<span>${esc(t("done"))}</span></button>` +
        `</div></section>`,
    };
  };

  /** The deposit is kept whatever the printer does; only a receipt that failed is said. */
  function receiptLine(v, r) {
    const rc = v.receipt;
    if (!rc || rc.seq !== r.seq || rc.state !== "failed") return "";
    return `<p class="line receipt-failed" id="receipt-failed">${icon("printer")}<span>${esc(t("receipt_failed"))}</span></p>`;
  }

  const REFUSAL_ICONS = {
    daily_cap: "clock",
    cooldown: "hold_still",
    too_light: "too_light",
    too_heavy: "over_capacity",
    storage_error: "warn",
  };
  const DEPOSIT_REFUSALS = ["daily_cap", "cooldown", "too_light", "too_heavy", "storage_error"];

  GP.screens.refused = (v) => {
    const code = v.refusal || "unknown";
    const known = `refusal_${code}` in GP.STRINGS.zh;
    const cat = GP.findCategory(v, v.category);
    const [title, detail] = t(known ? `refusal_${code}` : "refusal_unknown", {
      min: GP.mass(GP.lang(), cat ? cat.min_grams : 0),
    });
    const again =
      v.villager && DEPOSIT_REFUSALS.includes(code) && code !== "storage_error"
        ? `<button class="btn btn-primary" data-act="another" id="another">${icon("back")}<span>${esc(t("try_again"))}</span></button>`
        : "";
    const close = v.villager ? t("done") : t("ok");
    return {
      title: "",
      say: title,
      html:
        `<section class="result result-bad" data-refusal="${esc(code)}">` +
        `<div class="result-icon">${icon(REFUSAL_ICONS[code] || "cross_circle")}</div>` +
        `<div class="result-text"><p class="refusal-title" id="refusal-title">${esc(title)}</p>` +
        `<p class="refusal-detail" id="refusal-detail">${esc(detail)}</p>` +
        (known ? "" : `<p class="refusal-code">${esc(code)}</p>`) +
        `</div>` +
        `<div class="actions">${again}` +
        `<button class="btn btn-done" data-act="cancel" id="done">${icon("check_circle")}<span>${esc(close)}</span></button>` +
        `</div></section>`,
    };
  };

  GP.screens.unknown = (v) => ({
    title: "",
    html: `<section class="committing"><div class="spinner"></div><p>${esc(v.screen)}</p></section>`,
  });

  // --- villager actions -------------------------------------------------------------------

  GP.actions.cancel = () => GP.post("/api/cancel");
  GP.actions.category = (key) => GP.post("/api/category", { category: key });
  GP.actions.another = () => {
    S.local.pickAgain = true;
    render();
  };
  GP.actions.lang = () => GP.post("/api/language", { lang: GP.lang() === "en" ? "zh" : "en" });

  // --- wiring -----------------------------------------------------------------------------

  document.addEventListener("click", (e) => {
    const b = e.target.closest("[data-act]");
    if (!b || b.disabled) return;
    e.preventDefault();
    const fn = GP.actions[b.dataset.act];
    if (fn) fn(b.dataset.arg, b);
  });
  document.addEventListener("input", (e) => {
    const n = e.target.closest("[data-bind]");
    if (!n) return;
    S.local[n.dataset.bind] = n.value;
    render();
  });
  document.addEventListener("submit", (e) => {
    e.preventDefault();
    const fn = GP.actions[e.target.dataset.submit];
    if (fn) fn(null, e.target);
  });
  document.addEventListener("keydown", (e) => {
    if (GP.onKey) GP.onKey(e);
  });

  GP.start = function () {
    const first = byId("gp-first-view");
    try {
      S.view = JSON.parse(first.textContent);
    } catch (e) {
      S.view = null;
    }
    render();
    connect();
  };
})();
