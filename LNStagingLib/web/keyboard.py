"""The review's keyboard shortcuts: one table for the "?" panel and the page's key handler.

The handler (a script on the page) ignores keys typed into a field, maps a key to an action name and sends it to
the server (``lns_key`` trigger, ReviewApp.on_key); the busy counter shows the spinner until the server answered.
"""

from __future__ import annotations

import json

# (keys shown in the "?" panel, what they do); KEYMAP below must stay in step with it
SHORTCUTS = (
    ("N / ↓", "next candidate"),
    ("P / ↑", "previous candidate"),
    ("U", "next pending candidate"),
    ("A", "accept the selected candidate"),
    ("R", "reject the selected candidate"),
    ("Backspace / 0", "reset the decision to pending"),
    ("Ctrl+Z / Ctrl+Y (Ctrl+Shift+Z)", "undo / redo a contour edit"),
    ("B / E / Esc", "paint / erase / no tool"),
    ("[ / ]", "brush smaller / larger"),
    ("Shift+R", "reject every pending node below the operating point (undo on the page)"),
    ("PageUp / PageDown or ↑ / ↓ with Shift", "axial slice up / down"),
    ("O", "PET overlay on / off"),
    ("1 2 3 4", "CT window: soft tissue, mediastinum, lung, bone"),
    ("Z", "zoom to the selected node in all three views (the next ones too)"),
    ("F", "reset zoom (fit the images)"),
    ("?", "show / hide this panel"),
)

KEYMAP = {
    "n": "next", "j": "next", "p": "previous", "k": "previous", "a": "accept", "r": "reject",
    "ArrowDown": "next", "ArrowUp": "previous", "u": "next_pending", "b": "paint", "e": "erase",
    "Escape": "no_tool", "[": "brush_smaller", "]": "brush_larger", "R": "reject_below",
    "Backspace": "reset", "0": "reset", "o": "overlay", "f": "reset_zoom", "z": "zoom_node",
    "PageUp": "slice_up", "PageDown": "slice_down", "Shift+ArrowUp": "slice_up", "Shift+ArrowDown": "slice_down",
    "1": "preset:soft tissue", "2": "preset:mediastinum", "3": "preset:lung", "4": "preset:bone",
    "Ctrl+z": "undo", "Ctrl+y": "redo", "Ctrl+Shift+Z": "redo", "Ctrl+Shift+z": "redo",
}

KEYBOARD_SCRIPT = """
(function () {
  const KEYMAP = %s;
  function busy(delta) {
    const state = window.trame && window.trame.state;
    if (state) { state.set('busy', Math.max(0, (state.get('busy') || 0) + delta)); }
  }
  // the reviewer of this browser tab: sent with each decision, so two browsers on one server record their own
  const DECIDING = ['lns_accept', 'lns_reject', 'lns_reset', 'lns_key', 'lns_bulk_reject', 'lns_undo_bulk'];
  window.lnsReviewer = null;
  window.lnsSetReviewer = function (name) {
    window.lnsReviewer = String(name || '').slice(0, 64);
    return window.lnsTrigger('lns_reviewer', [window.lnsReviewer]);
  };
  window.lnsTrigger = function (name, args) {
    busy(+1);
    args = (args || []).slice();
    if (DECIDING.includes(name)) {  // this tab's name; before any typing, the --reviewer given at start
      const state = window.trame && window.trame.state;
      args.push(window.lnsReviewer !== null ? window.lnsReviewer : String(state && state.get('reviewer_default') || ''));
    }
    return window.trame.trigger(name, args).finally(() => busy(-1));
  };
  document.addEventListener('keydown', function (event) {
    const target = event.target;
    const tag = (target && target.tagName || '').toLowerCase();
    if (tag === 'textarea' || (tag === 'input' && !['checkbox', 'radio', 'range'].includes(target.type)) ||
        (target && target.isContentEditable) || !window.trame || !window.trame.state) { return; }
    if (event.key === '?') {
      window.trame.state.set('help_open', !window.trame.state.get('help_open'));
      event.preventDefault();
      return;
    }
    if (target && target.getAttribute && target.getAttribute('role') === 'slider' && !event.ctrlKey &&
        ['ArrowLeft', 'ArrowRight', 'ArrowUp', 'ArrowDown', 'PageUp', 'PageDown'].includes(event.key)) { return; }
    const key = (event.ctrlKey || event.metaKey ? 'Ctrl+' : '') + (event.shiftKey && event.key.length > 1 ? 'Shift+' : '') +
      (event.shiftKey && (event.ctrlKey || event.metaKey) && event.key.length === 1 ? 'Shift+' : '') +
      (event.key.length === 1 && !event.shiftKey ? event.key.toLowerCase() : event.key);
    const action = KEYMAP[key];
    if (!action) { return; }
    event.preventDefault();
    window.lnsTrigger('lns_key', [action]);
  }, true);
})();
""" % json.dumps(KEYMAP)
