/* Green Passbook kiosk page: the icons, as inline SVG (the kiosk is offline: no icon fonts).
 *
 * Every message on a villager screen has an icon, so that a villager who reads
 * little still knows what the screen means. Icons are line drawings on a 48×48
 * grid in `currentColor`; waste categories also have a colour of their own.
 */
"use strict";
window.GP = window.GP || {};

GP.ICON_PATHS = {
  qr:
    '<rect x="6" y="6" width="14" height="14" rx="2"/><rect x="28" y="6" width="14" height="14" rx="2"/>' +
    '<rect x="6" y="28" width="14" height="14" rx="2"/>' +
    '<path fill="currentColor" d="M11 11h4v4h-4zM33 11h4v4h-4zM11 33h4v4h-4z"/>' +
    '<path d="M28 28h5v5M38 28h4M28 38v4h6M38 34v8h4M34 34h0"/>',
  arrow_down: '<path d="M24 6v32M12 26l12 12 12-12"/>',
  check_circle: '<circle cx="24" cy="24" r="20"/><path d="M14 25l7 7 13-14"/>',
  cross_circle: '<circle cx="24" cy="24" r="20"/><path d="M16 16l16 16M32 16L16 32"/>',
  warn: '<path d="M24 5L44 41H4z"/><path d="M24 18v11M24 35v1"/>',
  scale: '<path d="M4 28h40M8 28v12h32V28"/><rect x="17" y="32" width="14" height="5"/><path d="M14 28v-4h20v4"/>',
  place_bag:
    '<path d="M14 20h20l3 14H11z"/><path d="M19 20v-3a5 5 0 0110 0v3"/><path d="M4 42h40"/>' +
    '<path d="M24 2v8M20 7l4 4 4-4"/>',
  hold_still:
    '<path d="M13 6h22M13 42h22M17 6v5l7 13-7 13v5M31 6v5l-7 13 7 13v5"/><path d="M20 38h8"/>',
  remove_bag:
    '<path d="M14 22h20l3 14H11z"/><path d="M19 22v-3a5 5 0 0110 0v3"/><path d="M4 42h40"/>' +
    '<path d="M40 16V4M36 8l4-4 4 4"/>',
  too_light:
    '<path d="M38 8C24 8 12 18 12 34l-5 6"/><path d="M12 34c14 0 26-8 26-26"/><path d="M18 28h10M22 21h9"/>',
  over_capacity:
    '<path d="M9 40l4-20h22l4 20z"/><path d="M19 20a5 5 0 0110 0"/><path d="M24 26v6M24 36v.5"/>',
  scale_disconnected:
    '<path d="M16 4v9M32 4v9M10 13h28v7a14 14 0 01-28 0z"/><path d="M24 34v10"/><path d="M5 5l38 38"/>',
  scale_error:
    '<path d="M31 5a10 10 0 00-9 14L6 35l7 7 16-16a10 10 0 0014-9l-6 6-6-2-2-6z"/>',
  leaf: '<path d="M8 40C8 18 22 8 42 8c0 20-10 34-32 32z"/><path d="M8 40l18-18"/>',
  person: '<circle cx="24" cy="16" r="8"/><path d="M8 42c0-9 7-14 16-14s16 5 16 14"/>',
  star:
    '<path d="M24 5l5.6 12.4 13.4 1.4-10 9.1 2.8 13.3L24 34.5 12.2 41.2 15 27.9 5 18.8l13.4-1.4z"/>',
  back: '<path d="M30 8L14 24l16 16"/>',
  globe:
    '<circle cx="24" cy="24" r="18"/><path d="M6 24h36M24 6c7 6 7 30 0 36M24 6c-7 6-7 30 0 36"/>',
  cloud: '<path d="M14 36h22a8 8 0 000-16 12 12 0 00-23-2A9 9 0 0014 36z"/>',
  cloud_off:
    '<path d="M14 36h22a8 8 0 000-16 12 12 0 00-23-2A9 9 0 0014 36z"/><path d="M6 6l36 36"/>',
  clock: '<circle cx="24" cy="24" r="18"/><path d="M24 14v10l7 5"/>',
  upload: '<path d="M24 32V8M14 18l10-10 10 10M8 40h32"/>',
  printer:
    '<path d="M14 18V6h20v12M14 34H8V18h32v16h-6"/><rect x="14" y="28" width="20" height="14"/>',
  gift:
    '<rect x="6" y="16" width="36" height="8"/><path d="M10 24v18h28V24M24 16v26"/>' +
    '<path d="M24 16c-3-9-13-9-11-3 1 3 11 3 11 3zM24 16c3-9 13-9 11-3-1 3-11 3-11 3z"/>',
  user_plus:
    '<circle cx="20" cy="16" r="8"/><path d="M4 42c0-9 7-14 16-14 5 0 9 1.5 12 4"/><path d="M38 28v12M32 34h12"/>',
  card_replace:
    '<rect x="4" y="6" width="26" height="18" rx="3"/><path d="M4 12h26"/>' +
    '<rect x="18" y="24" width="26" height="18" rx="3"/><path d="M23 36h8"/>' +
    '<path d="M8 28v4a4 4 0 004 4h2M11 33l3 3-3 3"/>',
  undo: '<path d="M16 8L6 18l10 10"/><path d="M6 18h22a12 12 0 010 24h-8"/>',
  box: '<path d="M6 14l18-8 18 8v20l-18 8-18-8z"/><path d="M6 14l18 8 18-8M24 22v20"/>',
  chart:
    '<path d="M6 42h36"/><rect x="10" y="26" width="6" height="12"/><rect x="21" y="16" width="6" height="22"/>' +
    '<rect x="32" y="8" width="6" height="30"/>',
  logout: '<path d="M20 8H8v32h12"/><path d="M30 14l10 10-10 10M40 24H18"/>',
  lock: '<rect x="10" y="20" width="28" height="22" rx="3"/><path d="M16 20v-6a8 8 0 0116 0v6M24 29v5"/>',
  plus: '<path d="M24 10v28M10 24h28"/>',
  minus: '<path d="M10 24h28"/>',
  backspace: '<path d="M18 10h22v28H18L6 24z"/><path d="M24 18l10 12M34 18L24 30"/>',
  home: '<path d="M6 22L24 7l18 15M11 18v22h26V18"/>',
  // waste categories
  paper: '<path d="M12 4h18l8 8v32H12z"/><path d="M30 4v8h8M18 22h14M18 28h14M18 34h10"/>',
  cardboard: '<path d="M6 16l18-8 18 8v18l-18 8-18-8z"/><path d="M6 16l18 8 18-8M24 24v18M15 12l18 8"/>',
  plastic_pet:
    '<path d="M20 4h8v6l4 6v24a4 4 0 01-4 4h-8a4 4 0 01-4-4V16l4-6z"/><path d="M16 24h16M16 32h16"/>',
  plastic_hdpe:
    '<path d="M20 4h8v6M14 10h20l4 8v22a4 4 0 01-4 4H14a4 4 0 01-4-4V18z"/><path d="M27 16h7v10h-7z"/>',
  plastic_mixed: '<path d="M10 14h28l-3 28H13z"/><path d="M6 14h36M16 8h16"/><path d="M18 24l6 10 6-10z"/>',
  metal: '<path d="M24 4l17 10v20L24 44 7 34V14z"/><circle cx="24" cy="24" r="7"/>',
  aluminium:
    '<ellipse cx="24" cy="10" rx="12" ry="4"/><path d="M12 10v28c0 2.2 5.4 4 12 4s12-1.8 12-4V10M12 18h24"/>',
  glass:
    '<path d="M21 4h6v10c5 2 8 6 8 12v16a2 2 0 01-2 2H15a2 2 0 01-2-2V26c0-6 3-10 8-12z"/><path d="M13 28h22"/>',
  textiles:
    '<path d="M16 6L6 12l4 8 6-3v25h16V17l6 3 4-8-10-6c-1 4-4 6-8 6s-7-2-8-6z"/>',
  batteries:
    '<rect x="11" y="10" width="26" height="32" rx="3"/><path d="M19 6h10M20 21h8M24 17v8M20 34h8"/>',
  kitchen:
    '<path d="M24 14c-4-4-16-4-16 10 0 10 8 18 12 18 2 0 3-1 4-1s2 1 4 1c4 0 12-8 12-18 0-14-12-14-16-10z"/>' +
    '<path d="M24 14c0-4 2-8 6-10"/>',
  ewaste: '<rect x="13" y="4" width="22" height="40" rx="3"/><path d="M21 38h6M13 10h22M13 32h22"/>',
};

GP.CATEGORY_COLOURS = {
  paper: "#1556b0",
  cardboard: "#8a4f1d",
  plastic_pet: "#00649a",
  plastic_hdpe: "#00707a",
  plastic_mixed: "#b84d00",
  metal: "#4a5a63",
  aluminium: "#5b6b75",
  glass: "#1e6b2a",
  textiles: "#6a1b9a",
  batteries: "#b3261e",
  kitchen: "#4b7a1f",
  ewaste: "#283593",
};

/** An inline SVG icon; `cls` adds classes (sizes are set in CSS). */
GP.icon = function (name, cls) {
  const body = GP.ICON_PATHS[name] || GP.ICON_PATHS.leaf;
  return (
    `<svg class="icon ${cls || ""}" data-icon="${name}" viewBox="0 0 48 48" aria-hidden="true" ` +
    'fill="none" stroke="currentColor" stroke-width="3" stroke-linecap="round" ' +
    `stroke-linejoin="round">${body}</svg>`
  );
};

GP.categoryIcon = function (key, cls) {
  return GP.icon(key in GP.ICON_PATHS ? key : "leaf", cls);
};

GP.categoryColour = function (key) {
  return GP.CATEGORY_COLOURS[key] || "#1b6b2f";
};
