// What Meridian's pages share (the storefront, served by every edge POP,
// and the SRE dashboard, served by routing): each page's script is this
// file followed by the page's own, joined when the crate is built.
'use strict';

const $ = (id) => document.getElementById(id);
const wait = (ms) => new Promise((r) => setTimeout(r, ms));

// h('p.muted', {…attributes}, child, …): an element; strings become text
// (nothing is ever parsed as HTML).
function h(tag, attrs, ...children) {
  const [name, ...classes] = tag.split('.');
  const el = document.createElement(name);
  if (classes.length) el.className = classes.join(' ');
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c != null) el.append(c instanceof Node ? c : String(c));
  return el;
}

// Replaces `parent`'s children without taking the keyboard focus away: a
// live update that rebuilds a table must not drop a keyboard user back to
// the top of the page. The focused element's `data-focus` key (e.g. the
// drain button of a region, whether it reads Drain or Undrain) names its
// successor, which gets the focus back.
function replaceKeepingFocus(parent, ...children) {
  const active = document.activeElement;
  const key = active && parent.contains(active) ? active.getAttribute('data-focus') : null;
  parent.replaceChildren(...children);
  if (key == null) return;
  const next = [...parent.querySelectorAll('[data-focus]')].find((el) => el.getAttribute('data-focus') === key);
  if (next) next.focus();
}
