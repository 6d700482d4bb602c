// sluice web UI: A task's log, of any length: only the rows in sight are in the page (a million
// lines scroll as smoothly as ten), with search (every match highlighted, next and previous),
// a separator where each attempt starts, the first error, following the end, and download.
import { h } from "./lib.js";

const ROW = 18;
// Browsers cap an element's height (~33 million px in Chromium): past this, scrolling is scaled.
const MAX_PX = 15e6;
// Work done in slices this long at most, so the page never stops answering.
const SLICE_MS = 12;

export class LogView {
  constructor({ onFollowChange = null } = {}) {
    // One entry per row: a line's index in `lines`, or -attempt for an attempt's separator.
    this.rows = [];
    this.text = [];
    this.stream = [];
    this.attempt = [];
    this.ts = [];
    this.seen = new Set();
    this.lastAttempt = 0;
    this.matches = [];
    this.current = -1;
    this.query = "";
    this.follow = true;
    this.onFollowChange = onFollowChange;
    this.space = h("div", { class: "log-space" });
    this.win = h("div", { class: "log-rows" });
    this.empty = h("div", { class: "empty" }, "no output yet");
    this.box = h("div", { class: "log", id: "log", tabindex: "0", role: "log", "aria-label": "log" }, this.space, this.win, this.empty);
    this.box.addEventListener("scroll", () => {
      const atEnd = this.box.scrollTop + this.box.clientHeight >= this.box.scrollHeight - ROW;
      if (this.follow !== atEnd && !this.programmatic) {
        this.follow = atEnd;
        if (this.onFollowChange) this.onFollowChange(atEnd);
      }
      this.programmatic = false;
      this.schedule();
    }, { passive: true });
    this.pending = false;
  }

  clear() {
    this.rows = []; this.text = []; this.stream = []; this.attempt = []; this.ts = [];
    this.seen = new Set(); this.lastAttempt = 0; this.matches = []; this.current = -1;
    this.empty.hidden = false;
    this.schedule();
  }

  get length() { return this.text.length; }

  /** A log that stays empty: said so, in a box of one line. */
  nothing(text) {
    this.empty.textContent = text;
    this.box.classList.add("none");
  }

  /** Adds lines (`{attempt, seq, ts, stream, line}`), each once. */
  append(lines) {
    for (const l of lines) {
      const key = l.attempt * 4294967296 + l.seq;
      if (this.seen.has(key)) continue;
      this.seen.add(key);
      if (l.attempt !== this.lastAttempt) {
        // Where a later attempt starts (the first attempt's start needs no line).
        if (this.lastAttempt !== 0 || l.attempt > 1) this.rows.push(-l.attempt);
        this.lastAttempt = l.attempt;
      }
      const i = this.text.length;
      this.text.push(l.line);
      this.stream.push(l.stream === "stderr" ? 1 : 0);
      this.attempt.push(l.attempt);
      this.ts.push(l.ts);
      this.rows.push(i);
      if (this.query && this.test(i)) this.matches.push(this.rows.length - 1);
    }
    if (this.text.length) { this.empty.hidden = true; this.box.classList.remove("none"); }
    this.schedule();
  }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.render(); });
  }

  scale() {
    const total = this.rows.length * ROW;
    return total > MAX_PX ? MAX_PX / total : 1;
  }

  render() {
    const k = this.scale();
    this.space.style.height = Math.ceil(this.rows.length * ROW * k) + "px";
    if (this.follow) {
      const end = this.box.scrollHeight - this.box.clientHeight;
      if (Math.abs(this.box.scrollTop - end) > 1) { this.programmatic = true; this.box.scrollTop = end; }
    }
    const view = this.box.clientHeight || 400;
    const first = Math.max(0, Math.floor(this.box.scrollTop / k / ROW) - 20);
    const last = Math.min(this.rows.length, first + Math.ceil(view / ROW) + 40);
    this.win.style.transform = `translateY(${this.box.scrollTop - (this.box.scrollTop / k - first * ROW)}px)`;
    const hits = this.query ? new Set(this.matches.slice(...this.range(first, last))) : null;
    const cur = this.current >= 0 ? this.matches[this.current] : -1;
    const frag = document.createDocumentFragment();
    for (let r = first; r < last; r++) frag.append(this.row(r, hits && hits.has(r), r === cur));
    this.win.replaceChildren(frag);
  }

  /** The slice of `matches` whose rows are in [first, last). */
  range(first, last) {
    const lo = lower(this.matches, first), hi = lower(this.matches, last);
    return [lo, hi];
  }

  row(r, hit, current) {
    const i = this.rows[r];
    if (i < 0) return h("div", { class: "line sep", "data-attempt": -i }, h("span", { class: "ln" }, ""), h("span", { class: "txt" }, `── attempt ${-i} ──`));
    const el = h("div", { class: "line" + (this.stream[i] ? " stderr" : "") + (hit ? " match" : "") + (current ? " current" : ""), id: "L" + (i + 1), "data-row": r, title: this.ts[i] + " · attempt " + this.attempt[i] },
      h("a", { class: "ln", href: "#L" + (i + 1) }, i + 1), h("span", { class: "txt" }, hit ? highlight(plain(this.text[i]), this.query) : ansi(this.text[i])));
    return el;
  }

  test(i) { return plain(this.text[i]).toLowerCase().includes(this.query); }

  /** Finds every line holding `q` (any case), in slices; then shows the first match. */
  async search(q) {
    this.query = q.toLowerCase();
    this.matches = [];
    this.current = -1;
    const token = (this.searching = {});
    if (this.query) {
      let r = 0;
      while (r < this.rows.length) {
        const until = performance.now() + SLICE_MS;
        while (r < this.rows.length && performance.now() < until) {
          const stop = Math.min(this.rows.length, r + 2000);
          for (; r < stop; r++) {
            const i = this.rows[r];
            if (i >= 0 && plain(this.text[i]).toLowerCase().includes(this.query)) this.matches.push(r);
          }
        }
        if (r < this.rows.length) await new Promise((res) => setTimeout(res, 0));
        if (token !== this.searching) return this.matches.length;
      }
    }
    if (this.matches.length) this.go(0);
    else this.schedule();
    return this.matches.length;
  }

  /** Shows match `n` (wrapping). */
  go(n) {
    if (!this.matches.length) return;
    this.current = ((n % this.matches.length) + this.matches.length) % this.matches.length;
    this.show(this.matches[this.current]);
  }

  /** Scrolls row `r` into the middle of the view and stops following. */
  show(r) {
    this.setFollow(false);
    const k = this.scale();
    this.programmatic = true;
    this.box.scrollTop = Math.max(0, (r * ROW - this.box.clientHeight / 2) * k);
    this.schedule();
  }

  setFollow(on) {
    this.follow = on;
    if (this.onFollowChange) this.onFollowChange(on);
    this.schedule();
  }

  /** Line `n` (from 1), as `#Ln` links to. */
  showLine(n) {
    const r = lower(this.rows.map((x) => (x < 0 ? -1 : x)), n - 1);
    if (r < this.rows.length) { this.query = ""; this.matches = [r]; this.current = 0; this.show(r); }
  }

  /** The first line on stderr that reads like an error (else the first on stderr), in slices. */
  async firstError() {
    const re = /error|exception|traceback|fatal|killed|panic/i;
    let any = -1;
    for (let r = 0; r < this.rows.length;) {
      const until = performance.now() + SLICE_MS;
      for (; r < this.rows.length && performance.now() < until; r++) {
        const i = this.rows[r];
        if (i < 0 || !this.stream[i]) continue;
        if (re.test(this.text[i])) { this.mark(r); return true; }
        if (any < 0) any = r;
      }
      await new Promise((res) => setTimeout(res, 0));
    }
    if (any >= 0) { this.mark(any); return true; }
    return false;
  }

  mark(r) { this.query = ""; this.matches = [r]; this.current = 0; this.show(r); }

  /** The whole log as text, as the server keeps it. */
  asText() {
    const out = [];
    for (let i = 0; i < this.text.length; i++) out.push(`${this.ts[i]} ${this.stream[i] ? "stderr" : "stdout"} ${this.text[i]}`);
    return out.join("\n") + "\n";
  }
}

/** The first index of sorted `a` whose value is at least `v`. */
function lower(a, v) {
  let lo = 0, hi = a.length;
  while (lo < hi) { const m = (lo + hi) >> 1; if (a[m] < v) lo = m + 1; else hi = m; }
  return lo;
}

/** A line as it reads: without its colour codes. */
function plain(text) { return text.includes("\x1b[") ? text.replace(/\x1b\[[0-9;]*m/g, "") : text; }

function highlight(text, q) {
  const frag = document.createDocumentFragment();
  const low = text.toLowerCase();
  let at = 0;
  for (let i = low.indexOf(q); i >= 0 && q; i = low.indexOf(q, at)) {
    frag.append(text.slice(at, i), h("mark", {}, text.slice(i, i + q.length)));
    at = i + q.length;
  }
  frag.append(text.slice(at));
  return frag;
}

// ANSI colour codes (SGR) to spans; everything else is text.
export const ANSI_COLORS = ["#000", "#e06c75", "#98c379", "#e5c07b", "#61afef", "#c678dd", "#56b6c2", "#dcdfe4"];
export const ANSI_BRIGHT = ["#5c6370", "#ff7b86", "#b5e890", "#ffd68a", "#8ac7ff", "#e49cff", "#7fdde8", "#ffffff"];
export function ansi(text) {
  if (!text.includes("\x1b[")) return document.createTextNode(text);
  const frag = document.createDocumentFragment();
  let style = { color: null, bold: false };
  const re = /\x1b\[([0-9;]*)m/g;
  let last = 0, m;
  const push = (t) => {
    if (!t) return;
    const span = h("span", { class: style.bold ? "ansi-bold" : null }, t);
    if (style.color) span.style.color = style.color;
    frag.append(span);
  };
  while ((m = re.exec(text))) {
    push(text.slice(last, m.index));
    last = re.lastIndex;
    for (const c of (m[1] || "0").split(";").map(Number)) {
      if (c === 0) style = { color: null, bold: false };
      else if (c === 1) style.bold = true;
      else if (c === 22) style.bold = false;
      else if (c >= 30 && c <= 37) style.color = ANSI_COLORS[c - 30];
      else if (c >= 90 && c <= 97) style.color = ANSI_BRIGHT[c - 90];
      else if (c === 39) style.color = null;
    }
  }
  push(text.slice(last));
  return frag;
}
