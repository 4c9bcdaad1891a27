/* Green Passbook kiosk page: the staff screens (PIN pad, menu and the seven tasks).
 *
 * The view says who is signed in, the task and the scanned villager
 * (`view.staff`); lists come from GET /api/catalogue, /api/staff/entries,
 * /api/staff/passbooks and /api/staff/report when a task is entered. What staff type or pick before
 * confirming (PIN digits, a cart, a reason) lives in `local` until it is sent.
 * Outcomes of a POST are shown from its answer: the view only carries the code.
 */
"use strict";
window.GP = window.GP || {};

(function () {
  const esc = GP.esc;
  const t = (key, params) => GP.tr(key, params);
  const icon = (name, cls) => GP.icon(name, cls);
  const render = () => GP.render();
  const local = () => GP.state.local;
  const view = () => GP.state.view;
  const lang = () => GP.lang();
  const MAX_PIN = 8;

  const TASKS = [
    ["redeem", "gift"],
    ["enrol", "user_plus"],
    ["replace", "card_replace"],
    ["award", "star"],
    ["reverse", "undo"],
    ["restock", "box"],
    ["report", "chart"],
    ["reprint", "printer"],
  ];
  const TASK_ICON = Object.fromEntries(TASKS);
  const TILE_COLOURS = ["#1b6b2f", "#1556b0", "#8a4f1d", "#6a1b9a", "#b84d00", "#00707a", "#b3261e"];
  const PRINTER_FAULTS = ["paper_out", "jammed", "timeout", "offline", "error"];

  const itemName = (it) => (lang() === "en" ? it.name_en : it.name_zh) || it.id;
  function tileColour(id) {
    let h = 0;
    for (const ch of String(id)) h = (h * 31 + ch.codePointAt(0)) >>> 0;
    return TILE_COLOURS[h % TILE_COLOURS.length];
  }
  // The item's picture from central's catalogue, else a coloured tile with its initial.
  const itemTile = (it) =>
    it.picture
      ? `<img class="tile-pic" src="${esc(it.picture)}" alt="" aria-hidden="true" data-testid="item-picture">`
      : `<span class="tile" style="--c:${tileColour(it.id)}" aria-hidden="true">${esc(Array.from(itemName(it))[0] || "?")}</span>`;

  /** The outcome line: an answer of ours (ok / refusal) or the view's code. */
  function outcome(L, fallbackCode) {
    if (L.done) return `<p class="msg msg-ok" id="outcome">${icon("check_circle")}<span>${esc(L.done)}</span></p>`;
    if (L.error) {
      return `<p class="msg msg-bad" id="outcome">${icon("warn")}<span>${esc(GP.message(lang(), L.error.code, L.error.message, L.error))}</span></p>`;
    }
    if (fallbackCode && fallbackCode !== "ok") {
      return `<p class="msg msg-bad" id="outcome">${icon("warn")}<span>${esc(GP.message(lang(), fallbackCode))}</span></p>`;
    }
    return `<p class="msg" id="outcome"></p>`;
  }

  function header(v, task) {
    const back =
      task === "menu"
        ? ""
        : `<button class="btn btn-small btn-secondary" data-act="task" data-arg="menu" id="to-menu">${icon("back")}<span>${esc(t("menu"))}</span></button>`;
    return (
      `<div class="staff-head">${back}` +
      `<h1 class="staff-title">${icon(task === "menu" ? "home" : TASK_ICON[task])}<span>${esc(t(task === "menu" ? "menu" : `task_${task}`))}</span></h1>` +
      `<button class="btn btn-small btn-secondary" data-act="signout" id="signout">${icon("logout")}<span>${esc(t("sign_out"))}</span></button>` +
      `</div>`
    );
  }

  function staffTitle(v) {
    const s = v.staff || {};
    return `<span class="title-staff">${icon("lock")}<span>${esc(t("staff"))} · ${esc(s.name || s.id || "")}</span></span>`;
  }

  function villagerChip(vil) {
    return (
      `<div class="chip" id="desk-villager">${icon("person")}<b>${esc(vil.name)}</b>` +
      `<span>${esc(vil.passbook)}</span><span>${esc(t("balance"))} <b id="desk-balance">${esc(vil.balance)}</b></span></div>`
    );
  }

  function scanVillager(v, task) {
    const code = v.staff.message && v.staff.message !== "ok" ? v.staff.message : "";
    return {
      title: staffTitle(v),
      html:
        `<section class="staff">${header(v, task)}` +
        `<div class="scan-wait">${icon("qr")}<p id="scan-villager">${esc(t("scan_villager"))}</p>` +
        (code ? `<p class="msg msg-bad" id="outcome">${icon("warn")}<span>${esc(GP.message(lang(), code))}</span></p>` : "") +
        `</div></section>`,
    };
  }

  function loading() {
    return `<p class="loading">${esc(t("loading"))}</p>`;
  }

  // --- PIN --------------------------------------------------------------------------------

  GP.screens.staff_pin = (v, L) => {
    const pin = L.pin || "";
    const dots = Array.from(
      { length: Math.max(4, pin.length) },
      (_, i) => `<span class="dot${i < pin.length ? " on" : ""}"></span>`,
    ).join("");
    let msg = "";
    if (L.error) msg = GP.message(lang(), L.error.code, L.error.message, L.error);
    const keys = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "clear", "0", "ok"]
      .map((k) => {
        if (k === "clear") {
          return `<button class="key key-clear" data-act="pin-clear" id="pin-clear">${esc(t("pin_clear"))}</button>`;
        }
        if (k === "ok") {
          const off = pin.length < 4 || GP.isBusy("/api/staff/pin") ? " disabled" : "";
          return `<button class="key key-ok" data-act="pin-ok" id="pin-ok"${off}>${esc(t("pin_ok"))}</button>`;
        }
        return `<button class="key" data-act="pin-digit" data-arg="${k}" data-key="${k}">${k}</button>`;
      })
      .join("");
    return {
      title: `<span class="title-staff">${icon("lock")}<span>${esc(t("staff"))}</span></span>`,
      html:
        `<section class="pin">` +
        `<div class="pin-left">${icon("lock", "pin-lock")}<h1 id="pin-title">${esc(t("pin_title"))}</h1>` +
        `<p class="pin-who">${esc(v.staff.pending)}</p>` +
        `<div class="dots" id="pin-dots" data-count="${pin.length}">${dots}</div>` +
        `<p class="msg msg-bad" id="pin-msg">${esc(msg)}</p>` +
        `<button class="btn btn-secondary" data-act="signout" id="pin-cancel">${esc(t("cancel"))}</button></div>` +
        `<div class="keypad">${keys}</div></section>`,
    };
  };

  GP.actions["pin-digit"] = (d) => {
    const L = local();
    if ((L.pin || "").length < MAX_PIN) L.pin = (L.pin || "") + d;
    L.error = null;
    render();
  };
  GP.actions["pin-clear"] = () => {
    local().pin = "";
    render();
  };
  GP.actions["pin-ok"] = async () => {
    const L = local();
    const pin = L.pin || "";
    L.pin = "";
    const r = await GP.post("/api/staff/pin", { pin });
    if (!r.ok && local() === L) L.error = r;
    render();
  };
  GP.onKey = (e) => {
    const v = view();
    if (!v || v.screen !== "staff_pin") return;
    if (/^[0-9]$/.test(e.key)) GP.actions["pin-digit"](e.key);
    else if (e.key === "Backspace") {
      local().pin = (local().pin || "").slice(0, -1);
      render();
    } else if (e.key === "Enter" && (local().pin || "").length >= 4) GP.actions["pin-ok"]();
    else return;
    e.preventDefault();
  };

  GP.actions.signout = () => GP.post("/api/staff/signout");
  GP.actions.task = (task) => GP.post("/api/staff/task", { task });

  // --- menu -------------------------------------------------------------------------------

  /** A sync fault in full for staff and the technician: the code to quote, the message. */
  function syncFault(v) {
    const f = (v.status || {}).sync_fault;
    if (!f) return "";
    return (
      `<p class="msg msg-bad sync-fault" id="sync-fault" data-code="${esc(f.code)}">${icon("warn")}` +
      `<span>${esc(t("sync_fault_staff"))} <code>${esc(f.code)}</code> ${esc(f.message)}</span></p>`
    );
  }

  /** A failed check of central's log, for staff to report (docs/trust.md). */
  function logFault(v) {
    const f = (v.status || {}).log_fault;
    if (!f) return "";
    return (
      `<p class="msg msg-bad sync-fault" id="log-fault" data-code="${esc(f.code)}">${icon("warn")}` +
      `<span>${esc(t("log_fault_staff"))} <code>${esc(f.code)}</code> ${esc(f.message)}</span></p>`
    );
  }

  /** An unsynchronised clock, for staff to pass on: the kiosk works on regardless. */
  function clockFault(v) {
    if ((v.status || {}).clock_ok !== false) return "";
    return `<p class="msg msg-warn sync-fault" id="clock-fault">${icon("clock")}<span>${esc(t("clock_bad_staff"))}</span></p>`;
  }

  /** A printer fault, in plain words with what to do (then reprint from the menu). */
  function printerFault(v) {
    const p = (v.status || {}).printer;
    if (!PRINTER_FAULTS.includes(p)) return "";
    return `<p class="msg msg-bad sync-fault" id="printer-fault" data-code="${esc(p)}">${icon("printer")}<span>${esc(t(`printer_${p}`))}</span></p>`;
  }

  GP.screens.staff_menu = (v) => {
    const s = v.staff;
    const st = v.status || {};
    const low = st.sync_fault || st.log_fault || st.clock_ok === false || PRINTER_FAULTS.includes(st.printer);
    const tiles = TASKS.map(
      ([task, ic]) =>
        `<button class="task" data-act="task" data-arg="${task}" data-task="${task}">${icon(ic)}<span>${esc(t(`task_${task}`))}</span></button>`,
    ).join("");
    return {
      title: staffTitle(v),
      html:
        `<section class="staff">${header(v, "menu")}` +
        `<p class="staff-who" id="staff-who">${esc(s.name)} <span class="role">${esc(s.role)}</span></p>` +
        (low ? `<div class="faults scroll" id="faults">${printerFault(v)}${syncFault(v)}${logFault(v)}${clockFault(v)}</div>` : "") +
        `<div class="tasks${low ? " tasks-low" : ""}">${tiles}</div></section>`,
    };
  };

  // --- redeem -----------------------------------------------------------------------------

  async function loadCatalogue(L) {
    const r = await GP.get("/api/catalogue");
    L.items = r.ok ? r.items : [];
    if (!r.ok) L.error = r;
    render();
  }

  GP.enter.staff_redeem = (v, L) => {
    L.cart = {};
    loadCatalogue(L);
  };

  GP.screens.staff_redeem = (v, L) => {
    const vil = v.staff.villager;
    if (!vil) return scanVillager(v, "redeem");
    const items = L.items;
    const cart = L.cart || {};
    let total = 0;
    const rows = (items || [])
      .map((it) => {
        const q = cart[it.id] || 0;
        total += q * it.points;
        return (
          `<div class="row item${q ? " in-cart" : ""}" data-item="${esc(it.id)}">${itemTile(it)}` +
          `<span class="row-main"><span class="row-name">${esc(itemName(it))}</span>` +
          `<span class="row-meta"><span class="row-price">${esc(t("points_n", { n: it.points }))}</span>` +
          `<span class="row-stock">${esc(t("stock_n", { n: it.stock }))}</span></span></span>` +
          `<button class="btn-round" data-act="cart-minus" data-arg="${esc(it.id)}" aria-label="-"${q ? "" : " disabled"}>${icon("minus")}</button>` +
          `<span class="qty" data-qty="${esc(it.id)}">${q}</span>` +
          `<button class="btn-round" data-act="cart-plus" data-arg="${esc(it.id)}" aria-label="+"${q >= it.stock ? " disabled" : ""}>${icon("plus")}</button>` +
          `</div>`
        );
      })
      .join("");
    const after = vil.balance - total;
    const busy = GP.isBusy("/api/staff/redeem");
    const off = total === 0 || after < 0 || busy ? " disabled" : "";
    const why = total === 0 ? t("cart_empty") : after < 0 ? t("not_enough") : "";
    return {
      title: staffTitle(v),
      html:
        `<section class="staff">${header(v, "redeem")}` +
        `<div class="split"><div class="list scroll" id="catalogue">${items ? rows : loading()}</div>` +
        `<div class="side">${villagerChip(vil)}` +
        // Just redeemed, the cart is empty: the outcome (and a receipt's fault) take the
        // sums' room, which say nothing then.
        (total === 0 && L.done
          ? ""
          : `<p class="sum"><span>${esc(t("cart_total"))}</span><b id="cart-total">${total}</b></p>` +
            `<p class="sum${after < 0 ? " neg" : ""}"><span>${esc(t("after"))}</span><b id="cart-after">${after}</b></p>`) +
        `<button class="btn btn-primary" data-act="redeem" id="redeem"${off}>${icon("gift")}<span>${esc(t("confirm"))}</span></button>` +
        (why && !L.done && !L.error ? `<p class="msg" id="cart-why">${esc(why)}</p>` : outcome(L)) +
        redeemReceipt(v, L) +
        `</div></div></section>`,
    };
  };

  /** The redemption stands whatever the printer does (the outcome line says so); a
   * receipt that failed is said under it with the fix, so staff reprint it before the
   * villager walks off. */
  function redeemReceipt(v, L) {
    const rc = v.receipt;
    if (!L.done || L.seq == null || !rc || rc.seq !== L.seq || rc.state !== "failed") return "";
    const why = t(`printer_word_${PRINTER_FAULTS.includes(rc.code) ? rc.code : "error"}`);
    return (
      `<p class="msg msg-bad" id="redeem-receipt-failed" data-code="${esc(rc.code)}">${icon("printer")}` +
      `<span>${esc(t("redeem_receipt_failed", { why }))}</span></p>`
    );
  }

  function changeCart(id, delta) {
    const L = local();
    const it = (L.items || []).find((x) => x.id === id);
    if (!it) return;
    const q = Math.min(it.stock, Math.max(0, ((L.cart || {})[id] || 0) + delta));
    L.cart = { ...(L.cart || {}), [id]: q };
    L.done = L.error = null;
    render();
  }
  GP.actions["cart-plus"] = (id) => changeCart(id, 1);
  GP.actions["cart-minus"] = (id) => changeCart(id, -1);
  GP.actions.redeem = async () => {
    const L = local();
    const cart = Object.entries(L.cart || {}).filter(([, q]) => q > 0);
    if (!cart.length) return;
    const r = await GP.post("/api/staff/redeem", { cart });
    if (local() !== L) return;
    if (r.ok) {
      L.done = t("redeemed", { n: r.points, b: r.balance });
      L.seq = r.seqs[0]; // the receipt's, to say if it failed
      L.error = null;
      L.cart = {};
    } else {
      L.error = r;
      L.done = null;
    }
    loadCatalogue(L);
  };

  // --- enrol ------------------------------------------------------------------------------

  function cardHtml(r, v) {
    const src = `/api/card.svg?text=${encodeURIComponent(r.card)}`;
    return (
      `<div class="print-card-inner"><p class="pc-brand">绿色存折 Green Passbook</p>` +
      `<img src="${esc(src)}" alt="QR"><p class="pc-no">${esc(r.passbook)}</p>` +
      `<p class="pc-name">${esc(r.household)}</p><p class="pc-village">${esc(v.village)}</p></div>`
    );
  }

  GP.screens.staff_enrol = (v, L) => {
    if (L.enrolled) {
      const r = L.enrolled;
      const qr = r.card
        ? `<img id="card-qr" class="card-qr" alt="QR" src="${esc(`/api/card.svg?text=${encodeURIComponent(r.card)}`)}">`
        : `<p class="msg msg-bad" id="no-card">${esc(t("no_card_key"))}</p>`;
      return {
        title: staffTitle(v),
        html:
          `<section class="staff">${header(v, "enrol")}<div class="split enrol-done">` +
          `<div class="card-preview">${qr}</div><div class="side">` +
          `<p class="msg msg-ok">${icon("check_circle")}<span>${esc(t("enrolled"))}</span></p>` +
          `<p class="label">${esc(t("passbook_no"))}</p><p class="passbook-no" id="new-passbook">${esc(r.passbook)}</p>` +
          `<p class="household" id="new-household">${esc(r.household)}</p>` +
          `<div class="actions">` +
          (r.card ? `<button class="btn btn-primary" data-act="print" id="print">${icon("printer")}<span>${esc(t("print"))}</span></button>` : "") +
          `<button class="btn btn-secondary" data-act="enrol-again" id="enrol-again">${icon("user_plus")}<span>${esc(t("enrol_another"))}</span></button>` +
          `</div></div></div></section>`,
      };
    }
    const name = L.household || "";
    const off = !name.trim() || GP.isBusy("/api/staff/enrol") ? " disabled" : "";
    return {
      title: staffTitle(v),
      html:
        `<section class="staff">${header(v, "enrol")}` +
        `<form class="form" data-submit="enrol" id="enrol-form" autocomplete="off">` +
        `<label for="household">${esc(t("household"))}</label>` +
        `<input id="household" data-bind="household" maxlength="64" value="${esc(name)}" placeholder="${esc(t("household_ph"))}" data-autofocus>` +
        `<button class="btn btn-primary" type="submit" id="enrol"${off}>${icon("user_plus")}<span>${esc(t("enrol_do"))}</span></button>` +
        outcome(L) +
        `</form></section>`,
    };
  };

  GP.actions.enrol = async () => {
    const L = local();
    const household = (L.household || "").trim();
    if (!household) return;
    const r = await GP.post("/api/staff/enrol", { household });
    if (local() !== L) return;
    if (r.ok) {
      L.enrolled = r;
      L.household = "";
      L.error = null;
      const pc = document.getElementById("print-card");
      pc.innerHTML = r.card ? cardHtml(r, view()) : "";
    } else {
      L.error = r;
    }
    render();
  };
  GP.actions["enrol-again"] = () => {
    const L = local();
    L.enrolled = null;
    L.focused = false;
    document.getElementById("print-card").innerHTML = "";
    render();
  };
  GP.actions.print = () => window.print();

  // --- replace a lost card ----------------------------------------------------------------
  //
  // The lost card cannot be scanned: staff find the household's passbook by its number
  // or name (names masked), confirm that the old card stops working, and get the new
  // card to print, as after an enrolment. The old card's balance goes with it.

  let searchTimer = null;
  async function loadPassbooks(L) {
    const q = L.query || "";
    L.searching = q;
    const r = await GP.get(`/api/staff/passbooks?q=${encodeURIComponent(q.trim())}`);
    if (local() !== L || L.searching !== q) return; // left the task, or typed on meanwhile
    L.passbooks = r.ok ? r.passbooks : [];
    if (!r.ok) L.error = r;
    render();
  }
  GP.enter.staff_replace = (v, L) => {
    L.query = "";
    loadPassbooks(L);
  };
  // Typing in the search box asks the kiosk again, once the typing pauses.
  document.addEventListener("input", (e) => {
    if (!e.target.closest || !e.target.closest("#replace-q")) return;
    const L = local();
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => loadPassbooks(L), 250);
  });

  // A refusal in this task's own words where the kiosk's general ones would mislead.
  const REPLACE_MESSAGES = { revoked_passbook: "msg_replace_revoked" };
  function replaceOutcome(L) {
    const code = L.error && L.error.code;
    if (code in REPLACE_MESSAGES) {
      return `<p class="msg msg-bad" id="outcome">${icon("warn")}<span>${esc(t(REPLACE_MESSAGES[code]))}</span></p>`;
    }
    return outcome(L);
  }

  function passbookRow(p, L) {
    const gone = p.status === "revoked";
    const flag = p.replaced_by
      ? t("replace_replaced", { p: p.replaced_by })
      : gone
        ? t("replace_revoked")
        : "";
    const picked = L.pick === p.passbook ? " picked" : "";
    return (
      `<button type="button" class="row passbook${gone ? " is-revoked" : ""}${picked}" data-act="pick-passbook" ` +
      `data-arg="${esc(p.passbook)}" data-passbook="${esc(p.passbook)}"${gone ? " disabled" : ""}>` +
      `${icon("person")}<span class="row-main"><span class="row-name">${esc(p.name)}</span>` +
      `<span class="row-meta"><span class="pb-no">${esc(p.passbook)}</span>` +
      (gone ? `<span class="pb-flag">${esc(flag)}</span>` : `<span class="row-stock">${esc(t("balance"))} ${esc(p.balance)}</span>`) +
      `</span></span></button>`
    );
  }

  function replaceDone(v, r) {
    const qr = r.card
      ? `<img id="card-qr" class="card-qr" alt="QR" src="${esc(`/api/card.svg?text=${encodeURIComponent(r.card)}`)}">`
      : `<p class="msg msg-bad" id="no-card">${esc(t("no_card_key"))}</p>`;
    return {
      title: staffTitle(v),
      html:
        `<section class="staff">${header(v, "replace")}<div class="split enrol-done">` +
        `<div class="card-preview">${qr}</div><div class="side">` +
        `<p class="msg msg-ok">${icon("check_circle")}<span>${esc(t("replaced_ok"))}</span></p>` +
        `<p class="passbook-no" id="new-passbook" aria-label="${esc(t("passbook_no"))}">${esc(r.passbook)}</p>` +
        `<p class="sum"><span class="household" id="new-household">${esc(r.household)}</span>` +
        `<span>${esc(t("replace_carried"))} <b id="new-balance">${esc(r.balance)}</b></span></p>` +
        `<p class="muted" id="old-stopped">${esc(t("replace_old_stopped", { p: r.old }))}</p>` +
        `<div class="actions">` +
        (r.card ? `<button class="btn btn-primary" data-act="print" id="print">${icon("printer")}<span>${esc(t("print"))}</span></button>` : "") +
        `<button class="btn btn-secondary" data-act="replace-again" id="replace-again">${icon("card_replace")}<span>${esc(t("replace_another"))}</span></button>` +
        `</div></div></div></section>`,
    };
  }

  function replaceConfirm(v, p) {
    const busy = GP.isBusy("/api/staff/replace") ? " disabled" : "";
    return {
      title: staffTitle(v),
      html:
        `<section class="staff">${header(v, "replace")}` +
        `<div class="confirm" id="replace-confirm">${icon("warn", "confirm-icon")}` +
        `<div class="confirm-text"><p class="confirm-title" id="confirm-title">${esc(t("replace_confirm_title", { name: p.name }))}</p>` +
        `<p id="confirm-old">${esc(t("replace_confirm_old", { p: p.passbook }))}</p>` +
        `<p id="confirm-balance">${esc(t("replace_confirm_balance", { n: p.balance }))}</p></div>` +
        `<div class="actions"><button class="btn btn-secondary" data-act="replace-back" id="replace-back">${icon("back")}<span>${esc(t("cancel"))}</span></button>` +
        `<button class="btn btn-primary" data-act="replace" id="replace-do"${busy}>${icon("card_replace")}<span>${esc(t("replace_do"))}</span></button></div>` +
        `</div></section>`,
    };
  }

  GP.screens.staff_replace = (v, L) => {
    if (L.replaced) return replaceDone(v, L.replaced);
    const list = L.passbooks;
    // A pick the list no longer offers (replaced meanwhile, or searched away) is none.
    const picked = (list || []).find((p) => p.passbook === L.pick && p.status !== "revoked");
    if (picked && L.confirm) return replaceConfirm(v, picked);
    const rows = (list || []).map((p) => passbookRow(p, L)).join("");
    const empty = list && !list.length ? `<p class="loading" id="replace-none">${esc(t("replace_none"))}</p>` : "";
    const side = picked
      ? `<div class="chip" id="picked-passbook">${icon("person")}<b>${esc(picked.name)}</b><span>${esc(picked.passbook)}</span>` +
        `<span>${esc(t("balance"))} <b>${esc(picked.balance)}</b></span></div>`
      : `<p class="picked-entry muted" id="picked-passbook">${esc(t("replace_pick"))}</p>`;
    return {
      title: staffTitle(v),
      html:
        `<section class="staff">${header(v, "replace")}` +
        `<div class="split"><div class="pick-col">` +
        `<input id="replace-q" data-bind="query" maxlength="64" value="${esc(L.query || "")}" placeholder="${esc(t("replace_search"))}" autocomplete="off" data-autofocus>` +
        `<div class="list scroll" id="replace-list">${list ? rows + empty : loading()}</div></div>` +
        `<div class="side">${side}` +
        `<button class="btn btn-primary" data-act="replace-next" id="replace-next"${picked ? "" : " disabled"}>${icon("card_replace")}<span>${esc(t("replace_next"))}</span></button>` +
        replaceOutcome(L) +
        `</div></div></section>`,
    };
  };

  GP.actions["pick-passbook"] = (id) => {
    const L = local();
    L.pick = id;
    L.error = null;
    render();
  };
  GP.actions["replace-next"] = () => {
    const L = local();
    if (!L.pick) return;
    L.confirm = true;
    render();
  };
  GP.actions["replace-back"] = () => {
    local().confirm = false;
    render();
  };
  GP.actions.replace = async () => {
    const L = local();
    if (!L.pick) return;
    const r = await GP.post("/api/staff/replace", { passbook: L.pick });
    if (local() !== L) return;
    L.confirm = false;
    if (r.ok) {
      L.replaced = r;
      L.error = null;
      L.pick = null;
      const pc = document.getElementById("print-card");
      pc.innerHTML = r.card ? cardHtml({ ...r, household: r.card_name }, view()) : "";
    } else {
      L.error = r;
      loadPassbooks(L); // what changed meanwhile (e.g. replaced already) shows in the list
    }
    render();
  };
  GP.actions["replace-again"] = () => {
    const L = local();
    L.replaced = null;
    L.focused = false;
    L.query = "";
    document.getElementById("print-card").innerHTML = "";
    loadPassbooks(L);
    render();
  };

  // --- reprint ----------------------------------------------------------------------------

  GP.screens.staff_reprint = (v, L) => {
    const vil = v.staff.villager;
    if (!vil) return scanVillager(v, "reprint");
    const off = GP.isBusy("/api/staff/reprint") ? " disabled" : "";
    return {
      title: staffTitle(v),
      html:
        `<section class="staff">${header(v, "reprint")}` +
        `<div class="form">${villagerChip(vil)}` +
        `<button class="btn btn-primary" data-act="reprint" id="reprint"${off}>${icon("printer")}<span>${esc(t("reprint_do"))}</span></button>` +
        printerFault(v) +
        (L.fault ? `<p class="msg msg-bad" id="outcome">${icon("warn")}<span>${esc(L.fault)}</span></p>` : outcome(L)) +
        `</div></section>`,
    };
  };

  GP.actions.reprint = async () => {
    const L = local();
    const r = await GP.post("/api/staff/reprint", {});
    if (local() !== L) return;
    L.done = L.error = L.fault = null;
    if (r.ok) L.done = t("reprinted");
    // Why not, in the printer's words when it was the printer (paper out, unplugged …).
    else if (r.printer) L.fault = t(`printer_${r.printer}`);
    else L.error = r;
    render();
  };

  // --- award ------------------------------------------------------------------------------

  GP.screens.staff_award = (v, L) => {
    const vil = v.staff.villager;
    if (!vil) return scanVillager(v, "award");
    const points = L.points || "";
    const reason = L.reason || "";
    const n = Number(points);
    const off = !(Number.isInteger(n) && n > 0) || !reason.trim() || GP.isBusy("/api/staff/award") ? " disabled" : "";
    const quick = [10, 20, 50, 100]
      .map((q) => `<button type="button" class="chip-btn" data-act="set" data-arg="points=${q}">${q}</button>`)
      .join("");
    const reasons = ["reason_volunteer", "reason_cleanup"]
      .map((k) => `<button type="button" class="chip-btn" data-act="set" data-arg="reason=${esc(t(k))}">${esc(t(k))}</button>`)
      .join("");
    return {
      title: staffTitle(v),
      html:
        `<section class="staff">${header(v, "award")}` +
        `<form class="form form-2" data-submit="award" id="award-form" autocomplete="off">${villagerChip(vil)}` +
        `<div class="field"><label for="award-points">${esc(t("award_points"))}</label>` +
        `<input id="award-points" data-bind="points" inputmode="numeric" value="${esc(points)}" data-autofocus>${quick}</div>` +
        `<div class="field"><label for="award-reason">${esc(t("reason"))}</label>` +
        `<input id="award-reason" data-bind="reason" maxlength="200" value="${esc(reason)}" placeholder="${esc(t("reason_ph"))}">${reasons}</div>` +
        `<div class="field"><button class="btn btn-primary" type="submit" id="award"${off}>${icon("star")}<span>${esc(t("award_do"))}</span></button>` +
        outcome(L) +
        `</div></form></section>`,
    };
  };

  GP.actions.set = (arg) => {
    const i = arg.indexOf("=");
    local()[arg.slice(0, i)] = arg.slice(i + 1);
    render();
  };
  GP.actions.award = async () => {
    const L = local();
    const r = await GP.post("/api/staff/award", { points: Number(L.points), reason: (L.reason || "").trim() });
    if (local() !== L) return;
    if (r.ok) {
      L.done = t("awarded", { n: r.points });
      L.error = null;
      L.points = L.reason = "";
    } else {
      L.error = r;
      L.done = null;
    }
    render();
  };

  // --- reverse ----------------------------------------------------------------------------

  async function loadEntries(L) {
    const r = await GP.get("/api/staff/entries");
    L.entries = r.ok ? r.entries : [];
    L.other = Boolean(r.ok && r.other); // central takes reversals of other kiosks' entries
    if (!r.ok) L.error = r;
    render();
  }
  GP.enter.staff_reverse = (v, L) => {
    loadEntries(L);
    loadCatalogue(L); // item names for redeem and restock entries
  };

  function hhmm(ms) {
    const d = new Date(ms);
    return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
  }

  function entryWhat(v, e) {
    const parts = [];
    if (e.passbook_id) parts.push(e.passbook_id);
    if (e.kind === "deposit") parts.push(`${GP.categoryName(v, e.category)} ${GP.mass(lang(), e.grams)}`);
    if (e.item_id) {
      const it = (local().items || []).find((x) => x.id === e.item_id);
      parts.push(`${it ? itemName(it) : e.item_id} × ${Math.abs(e.qty || 0)}`);
    }
    return parts.join(" · ");
  }

  /** What undoing `e` changes, line by line: whose, what, the points, the stock. */
  function reverseConfirm(v, e, reason) {
    const busy = GP.isBusy("/api/staff/reverse") ? " disabled" : "";
    const lines = [];
    if (e.passbook_id) {
      const who = e.name ? `${e.name} · ${e.passbook_id}` : e.passbook_id;
      lines.push(["who", t("reverse_confirm_who", { who })]);
    }
    let what = t(`kind_${e.kind}`);
    if (e.kind === "deposit") what += ` · ${GP.categoryName(v, e.category)} · ${GP.mass(lang(), e.grams)}`;
    if (e.item_id) {
      const it = (local().items || []).find((x) => x.id === e.item_id);
      what += ` · ${it ? itemName(it) : e.item_id} × ${Math.abs(e.qty || 0)}`;
    }
    lines.push(["what", what]);
    // What changes, on one line (the screen has room for four): points, then stock.
    const effects = [];
    if (e.points > 0) effects.push(t("reverse_confirm_takes", { n: e.points }));
    if (e.points < 0) effects.push(t("reverse_confirm_gives", { n: -e.points }));
    if (e.item_id && e.qty) {
      effects.push(t(e.qty < 0 ? "reverse_confirm_stock_back" : "reverse_confirm_stock_off", { n: Math.abs(e.qty) }));
    }
    if (effects.length) lines.push(["undoes", effects.join(lang() === "en" ? "; " : "，")]);
    lines.push(["reason", t("reverse_confirm_reason", { r: reason })]);
    return {
      title: staffTitle(v),
      html:
        `<section class="staff">${header(v, "reverse")}` +
        `<div class="confirm confirm-dense" id="reverse-confirm" data-seq="${e.seq}">${icon("undo", "confirm-icon")}` +
        `<div class="confirm-text"><p class="confirm-title" id="confirm-title">${esc(t("reverse_confirm_title", { seq: entryId(e) }))}</p>` +
        lines.map(([id, text]) => `<p id="confirm-${id}">${esc(text)}</p>`).join("") +
        `</div>` +
        `<div class="actions"><button class="btn btn-secondary" data-act="reverse-back" id="reverse-back">${icon("back")}<span>${esc(t("cancel"))}</span></button>` +
        `<button class="btn btn-primary" data-act="reverse-do" id="reverse-do"${busy}>${icon("undo")}<span>${esc(t("reverse_confirm_do"))}</span></button></div>` +
        `</div></section>`,
    };
  }

  /** An entry's id as staff read it: "#12" here, "K1#12" for another kiosk's. */
  function entryId(e) {
    return e.device ? `${e.device}#${e.seq}` : e.seq;
  }

  GP.screens.staff_reverse = (v, L) => {
    const entries = L.entries;
    const rows = (entries || [])
      .map((e) => {
        const done = e.reversed_by !== null && e.reversed_by !== undefined;
        const picked = L.pick === e.seq ? " picked" : "";
        const pts = e.points ? `${e.points > 0 ? "+" : ""}${e.points}` : "";
        return (
          `<button type="button" class="row entry${done ? " is-reversed" : ""}${picked}" data-act="pick-entry" data-arg="${e.seq}" data-seq="${e.seq}"${done ? " disabled" : ""}>` +
          `<span class="e-seq">#${e.seq}</span><span class="e-time">${hhmm(e.wall_ms)}</span>` +
          `<span class="e-kind">${esc(t(`kind_${e.kind}`))}</span><span class="e-what">${esc(entryWhat(v, e))}</span>` +
          `<span class="e-points">${esc(pts)}</span>` +
          (done ? `<span class="e-flag">${esc(t("reversed"))}</span>` : "") +
          `</button>`
        );
      })
      .join("");
    const picked = L.pick === "other" ? L.otherEntry : (entries || []).find((e) => e.seq === L.pick);
    const reason = L.reason || "";
    if (picked && L.confirm && reason.trim()) return reverseConfirm(v, picked, reason.trim());
    const off = !picked || !reason.trim() || GP.isBusy("/api/staff/reverse") ? " disabled" : "";
    const reasons = ["reason_mistake", "reason_damaged"]
      .map((k) => `<button type="button" class="chip-btn" data-act="set" data-arg="reason=${esc(t(k))}">${esc(t(k))}</button>`)
      .join("");
    const side = picked
      ? `<p class="picked-entry" id="picked-entry">${picked.device ? esc(picked.device) : ""}#${picked.seq} ${esc(t(`kind_${picked.kind}`))} ${esc(entryWhat(v, picked))}</p>`
      : `<p class="picked-entry muted" id="picked-entry">${esc(t("pick_entry"))}</p>`;
    // Another kiosk's entry, by the id on the villager's receipt: only when central takes it.
    const findBusy = GP.isBusy("/api/staff/other-entry") ? " disabled" : "";
    const other = L.other
      ? `<label for="other-entry">${esc(t("other_entry"))}</label>` +
        `<div class="inline"><input id="other-entry" data-bind="otherId" maxlength="80" placeholder="${esc(t("other_entry_hint"))}" value="${esc(L.otherId || "")}">` +
        `<button type="button" class="btn btn-small btn-secondary" data-act="find-other" id="find-other"${findBusy}><span>${esc(t("other_find"))}</span></button></div>`
      : "";
    return {
      title: staffTitle(v),
      html:
        `<section class="staff">${header(v, "reverse")}` +
        `<div class="split"><div class="list scroll" id="entries">${entries ? rows : loading()}</div>` +
        `<form class="side" data-submit="reverse" id="reverse-form" autocomplete="off">${other}${side}` +
        `<label for="reverse-reason">${esc(t("reason"))}</label>` +
        `<input id="reverse-reason" data-bind="reason" maxlength="200" value="${esc(reason)}">` +
        `<div class="chips">${reasons}</div>` +
        `<button class="btn btn-primary" type="submit" id="reverse"${off}>${icon("undo")}<span>${esc(t("reverse_do"))}</span></button>` +
        outcome(L) +
        `</form></div></section>`,
    };
  };

  GP.actions["find-other"] = async () => {
    const L = local();
    const id = (L.otherId || "").trim();
    if (!id) return;
    L.done = L.error = null;
    const r = await GP.get(`/api/staff/other-entry?id=${encodeURIComponent(id)}`);
    if (local() !== L) return;
    if (r.ok) {
      L.otherEntry = r.entry;
      L.pick = "other";
    } else {
      L.error = r;
      if (L.pick === "other") L.pick = null;
    }
    render();
  };
  GP.actions["pick-entry"] = (seq) => {
    const L = local();
    L.pick = Number(seq);
    L.done = L.error = null;
    render();
  };
  // Reversing takes two taps: the form asks, the confirmation shows what will be undone.
  GP.actions.reverse = () => {
    const L = local();
    if (L.pick === undefined || L.pick === null || !(L.reason || "").trim()) return;
    L.confirm = true;
    L.done = L.error = null;
    render();
  };
  GP.actions["reverse-back"] = () => {
    local().confirm = false;
    render();
  };
  GP.actions["reverse-do"] = async () => {
    const L = local();
    if (L.pick === undefined || L.pick === null) return;
    const reason = (L.reason || "").trim();
    const body =
      L.pick === "other" && L.otherEntry ? { entry: entryId(L.otherEntry), reason } : { seq: L.pick, reason };
    const r = await GP.post("/api/staff/reverse", body);
    if (local() !== L) return;
    L.confirm = false;
    if (r.ok) {
      L.done = t("reversed_ok", { seq: r.reverses });
      L.error = null;
      L.pick = null;
      L.otherEntry = null;
      L.otherId = "";
      L.reason = "";
    } else {
      L.error = r;
      L.done = null;
    }
    loadEntries(L);
  };

  // --- restock ----------------------------------------------------------------------------

  GP.enter.staff_restock = (v, L) => {
    L.qty = "10";
    loadCatalogue(L);
  };

  GP.screens.staff_restock = (v, L) => {
    const items = L.items;
    const rows = (items || [])
      .map(
        (it) =>
          `<button type="button" class="row item${L.item === it.id ? " picked" : ""}" data-act="pick-item" data-arg="${esc(it.id)}" data-item="${esc(it.id)}">` +
          `${itemTile(it)}<span class="row-main"><span class="row-name">${esc(itemName(it))}</span>` +
          `<span class="row-stock" data-stock="${esc(it.id)}">${esc(t("stock_n", { n: it.stock }))}</span></span></button>`,
      )
      .join("");
    const qty = L.qty || "";
    const n = Number(qty);
    const off = !L.item || !(Number.isInteger(n) && n > 0) || GP.isBusy("/api/staff/restock") ? " disabled" : "";
    const picked = (items || []).find((it) => it.id === L.item);
    return {
      title: staffTitle(v),
      html:
        `<section class="staff">${header(v, "restock")}` +
        `<div class="split"><div class="list scroll" id="restock-items">${items ? rows : loading()}</div>` +
        `<form class="side" data-submit="restock" id="restock-form" autocomplete="off">` +
        `<p class="picked-entry${picked ? "" : " muted"}">${esc(picked ? itemName(picked) : t("pick_item"))}</p>` +
        `<label for="restock-qty">${esc(t("qty"))}</label>` +
        `<div class="stepper"><button type="button" class="btn-round" data-act="qty" data-arg="-1" aria-label="-">${icon("minus")}</button>` +
        `<input id="restock-qty" data-bind="qty" inputmode="numeric" value="${esc(qty)}">` +
        `<button type="button" class="btn-round" data-act="qty" data-arg="1" aria-label="+">${icon("plus")}</button></div>` +
        `<button class="btn btn-primary" type="submit" id="restock"${off}>${icon("box")}<span>${esc(t("restock_do"))}</span></button>` +
        outcome(L) +
        `</form></div></section>`,
    };
  };

  GP.actions["pick-item"] = (id) => {
    const L = local();
    L.item = id;
    L.done = L.error = null;
    render();
  };
  GP.actions.qty = (delta) => {
    const L = local();
    L.qty = String(Math.max(1, (Number(L.qty) || 0) + Number(delta)));
    render();
  };
  GP.actions.restock = async () => {
    const L = local();
    const r = await GP.post("/api/staff/restock", { item: L.item, qty: Number(L.qty) });
    if (local() !== L) return;
    if (r.ok) {
      L.done = t("restocked", { n: r.stock });
      L.error = null;
    } else {
      L.error = r;
      L.done = null;
    }
    loadCatalogue(L);
  };

  // --- report -----------------------------------------------------------------------------

  GP.enter.staff_report = async (v, L) => {
    const r = await GP.get("/api/staff/report");
    L.report = r.ok ? r.report : null;
    if (!r.ok) L.error = r;
    render();
  };

  GP.screens.staff_report = (v, L) => {
    const rep = L.report;
    let body = L.error ? outcome(L) : loading();
    if (rep) {
      const en = lang() === "en";
      const cats = rep.categories.length
        ? rep.categories
            .map(
              (c) =>
                `<tr data-category="${esc(c.category)}"><td style="--c:${GP.categoryColour(c.category)}">${GP.categoryIcon(c.category)}${esc(en ? c.name_en : c.name_zh)}</td>` +
                `<td>${c.deposits}</td><td>${((c.grams || 0) / 1000).toFixed(1)}</td><td>${c.points || 0}</td></tr>`,
            )
            .join("")
        : `<tr><td colspan="4" class="muted">${esc(t("report_none"))}</td></tr>`;
      const stock = rep.stock
        .map((s) => `<li data-item="${esc(s.id)}"><span>${esc(en ? s.name_en : s.name_zh)}</span><b>${s.stock}</b></li>`)
        .join("");
      const kg = rep.categories.reduce((sum, c) => sum + (c.grams || 0), 0);
      body =
        `<div class="split report"><div class="list scroll">` +
        `<table class="report-table" id="report-categories"><thead><tr><th>${esc(t("col_category"))}</th><th>${esc(t("col_count"))}</th>` +
        `<th>${esc(t("col_kg"))}</th><th>${esc(t("col_points"))}</th></tr></thead><tbody>${cats}</tbody></table>` +
        `<p class="label">${esc(t("report_stock"))}</p><ul class="stock" id="report-stock">${stock}</ul></div>` +
        `<div class="side">` +
        `<p class="sum"><span>${esc(t("report_categories"))}</span><b id="report-kg">${esc(GP.mass(lang(), kg))}</b></p>` +
        `<p class="sum"><span>${esc(t("report_points_in"))}</span><b id="points-in">${rep.points_in}</b></p>` +
        `<p class="sum"><span>${esc(t("report_points_out"))}</span><b id="points-out">${rep.points_out}</b></p>` +
        `<p class="sum"><span>${esc(t("report_co2"))}</span><b id="report-co2">${esc(GP.co2(rep.co2e_g))}</b></p>` +
        `<p class="sum"><span>${esc(t("report_entries"))}</span><b id="report-entries">${rep.entries}</b></p>` +
        `</div></div>`;
    }
    return { title: staffTitle(v), html: `<section class="staff">${header(v, "report")}${body}</section>` };
  };
})();
