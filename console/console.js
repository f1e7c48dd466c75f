// bedrock-meter spend console: one page, plain DOM. Every value from the API is untrusted and is
// only ever written with textContent / setAttribute (never parsed as HTML); the page runs under a
// strict CSP (no inline script or style), so styling is by class or by CSSOM (el.style.width).
'use strict';

(function () {
  const POLL_MS = 10000;
  const TOKEN_KEY = 'bedrock-meter.admin-token';
  const SVG = 'http://www.w3.org/2000/svg';
  const DAY_MS = 86400000;

  // ---------------------------------------------------------------- DOM helpers

  function fill(el, kids) {
    for (const c of kids.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : String(c));  // strings become text nodes
    }
    return el;
  }

  function setAttrs(el, props) {
    if (!props) return;
    for (const k of Object.keys(props)) {
      const v = props[k];
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') el.setAttribute('class', v);
      else if (k === 'text') el.textContent = String(v);
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'style') throw new Error('style attributes are not allowed');
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }

  // h('a', {href: '#/x', class: 'k'}, 'text', child, [more])
  function h(tag, props, ...kids) {
    const el = document.createElement(tag);
    setAttrs(el, props);
    return fill(el, kids);
  }

  function svg(tag, props, ...kids) {
    const el = document.createElementNS(SVG, tag);
    setAttrs(el, props);
    return fill(el, kids);
  }

  // Replace an element's children (null / false skipped, arrays flattened, strings as text).
  function put(el, ...kids) {
    el.replaceChildren();
    return fill(el, kids);
  }

  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));

  // ---------------------------------------------------------------- formatting

  // Money as the API sends it (a decimal string); Number() is for display only.
  function usdText(v, signed) {
    if (v === null || v === undefined || v === '') return '—';
    const n = Number(v);
    if (!Number.isFinite(n)) return String(v);
    const a = Math.abs(n);
    let body;
    if (a === 0) body = '0.00';
    else if (a >= 1) {
      body = a.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
    } else {
      // Fractions of a dollar keep four significant digits (at most 12 places), at least two.
      const places = Math.min(12, Math.max(2, 3 - Math.floor(Math.log10(a))));
      body = a.toFixed(places).replace(/(\.\d\d\d*?)0+$/, '$1');
    }
    const sign = n < 0 ? '−' : (signed && n > 0 ? '+' : '');
    return sign + '$' + body;
  }

  // A money element: formatted text, the exact string in title and data-value.
  function money(v, props, tag) {
    const el = h(tag || 'span', Object.assign({ class: 'num money' }, props || {}), usdText(v));
    if (v !== null && v !== undefined) {
      el.setAttribute('title', '$' + String(v));
      el.setAttribute('data-value', String(v));
    }
    return el;
  }

  function int(v) {
    if (v === null || v === undefined || v === '') return '—';
    const n = Number(v);
    return Number.isFinite(n) ? n.toLocaleString('en-US') : String(v);
  }

  function pct(v, digits) {
    const n = Number(v);
    return Number.isFinite(n) ? n.toFixed(digits === undefined ? 1 : digits) + '%' : '—';
  }

  // The chart's axis top: 1, 2, 2.5 or 5 times a power of ten, at least v.
  function niceCeil(v) {
    if (!(v > 0)) return 0;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5]) if (m * p >= v * (1 - 1e-12)) return m * p;
    return 10 * p;
  }

  function isoDay(ms) { return new Date(ms).toISOString().slice(0, 10); }
  function utcDay(offsetDays) { return isoDay(Date.now() + (offsetDays || 0) * DAY_MS); }
  function nextDay(day) { return isoDay(Date.parse(day + 'T00:00:00Z') + DAY_MS); }
  function when(iso) { return typeof iso === 'string' ? iso.replace('T', ' ').replace(/\.\d+/, '').replace('Z', '') : '—'; }
  function clock(d) { return d.toTimeString().slice(0, 8); }
  function label(k) { return k === '' || k === null || k === undefined ? '(none)' : String(k); }
  function humanize(s) { return String(s).replace(/_/g, ' '); }

  function hashFor(page, params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params || {})) {
      if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
    }
    const s = q.toString();
    return '#/' + page + (s ? '?' + s : '');
  }

  // ---------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }
  class AuthError extends Error {
    constructor(hadToken) { super('unauthorized'); this.hadToken = hadToken; }
  }

  const state = {
    token: sessionStorage.getItem(TOKEN_KEY) || '',
    seq: 0,
    submitted: false,   // the token on trial was just typed in
    gen: 0,             // bumped on every navigation; stale answers are dropped
    name: null,         // current page name
    params: new URLSearchParams(),
    timer: null,
    lastLoad: 0,
    gated: false,
    requestsHash: '#/requests',
  };

  async function api(path, params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params || {})) {
      if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
    }
    const qs = q.toString();
    const headers = { Accept: 'application/json' };
    const sent = state.token;
    if (sent) headers.Authorization = 'Bearer ' + sent;
    let res;
    try {
      res = await fetch(path + (qs ? '?' + qs : ''), { headers, cache: 'no-store', credentials: 'omit' });
    } catch (e) {
      throw new ApiError(0, 'cannot reach the proxy\'s admin listener (' + (e && e.message || e) + ')');
    }
    if (res.status === 401) throw new AuthError(Boolean(sent));
    const text = await res.text();
    let body = null;
    try { body = JSON.parse(text); } catch (e) { body = null; }
    if (!res.ok) {
      const msg = body && typeof body.message === 'string' ? body.message : 'HTTP ' + res.status;
      throw new ApiError(res.status, msg);
    }
    if (body === null || typeof body !== 'object') throw new ApiError(res.status, 'the answer is not JSON');
    return body;
  }

  // ---------------------------------------------------------------- shared widgets

  function tableWrap(table) { return h('div', { class: 'table-wrap' }, table); }

  // Column headings; a leading '#' marks a numeric (right-aligned) column.
  function thead(cols) {
    return h('thead', null, h('tr', null, cols.map((c) => (c[0] === '#'
      ? h('th', { scope: 'col', class: 'num' }, c.slice(1)) : h('th', { scope: 'col' }, c)))));
  }

  function emptyRow(cols, text) {
    return h('tr', { class: 'empty' }, h('td', { colspan: cols }, text));
  }

  function notice(text, cls) { return h('p', { class: 'notice ' + (cls || '') }, text); }

  function section(title, ...kids) {
    return h('section', { class: 'block' }, h('h2', null, title), kids);
  }

  // Any JSON value as text or as a small definition list (evidence, tags).
  function valueNode(v) {
    if (v === null || v === undefined) return h('span', { class: 'muted' }, '—');
    if (Array.isArray(v)) {
      if (v.every((x) => x === null || typeof x !== 'object')) return document.createTextNode(v.join(', '));
      return h('div', null, v.map(valueNode));
    }
    if (typeof v === 'object') return defList(v);
    return document.createTextNode(String(v));
  }

  function defList(obj) {
    const keys = Object.keys(obj || {});
    if (!keys.length) return h('span', { class: 'muted' }, '—');
    return h('dl', { class: 'kv' }, keys.map((k) => [h('dt', null, humanize(k)), h('dd', null, valueNode(obj[k]))]));
  }

  // ---------------------------------------------------------------- Overview

  const overview = {
    data: null,
    async load(params, ctx) {
      const today = utcDay(0);
      const month = today.slice(0, 8) + '01';
      const chartSince = utcDay(-29);  // 30 whole UTC days, today included
      const week = utcDay(-6);          // the last 7 UTC days, today included
      const weekBefore = utcDay(-13);   // the 7 before
      // The Overview's API calls: 8 per refresh, all on whole UTC days (the ledger answers those
      // from its per-day table); listed in NOTES.md.
      const [team, app, model, days, m7, m14, t7, t14] = await Promise.all([
        api('/api/spend', { since: month, by: 'team' }),
        api('/api/spend', { since: month, by: 'app' }),
        api('/api/spend', { since: month, by: 'model' }),
        api('/api/spend', { since: chartSince, by: 'day' }),
        api('/api/spend', { since: week, by: 'model' }),
        api('/api/spend', { since: weekBefore, until: week, by: 'model' }),
        api('/api/spend', { since: week, by: 'team' }),
        api('/api/spend', { since: weekBefore, until: week, by: 'team' }),
      ]);
      if (!ctx.alive()) return;
      this.data = { today, month, chartSince, week, team, app, model, days, m7, m14, t7, t14 };
      this.render(ctx.body);
    },

    render(body) {
      const d = this.data;
      const todayRow = (d.days.rows || []).find((r) => r.key === d.today) ||
        { requests: 0, cost_usd: '0.000000', net_usd: '0.000000' };
      const mtd = d.team.total;
      const pruned = [d.team, d.days].map((x) => x.pruned_before).filter(Boolean);
      put(body,
        pruned.length ? notice('Rows before ' + when(pruned[0]) + ' UTC were pruned from the ledger: older figures are incomplete.', 'warn') : null,
        h('div', { class: 'kpis' },
          this.kpi('Today', d.today, 'today', todayRow, { since: d.today }),
          this.kpi('Month to date', d.month.slice(0, 7), 'mtd', mtd, { since: d.month })),
        section('Daily spend, last 30 days', h('div', { id: 'daily-chart', class: 'chart' })),
        h('div', { class: 'grid-3' },
          this.spendTable('By team', 'mtd-by-team', d.team, 'team'),
          this.spendTable('By app', 'mtd-by-app', d.app, 'app'),
          this.spendTable('By model', 'mtd-by-model', d.model, 'model')),
        h('div', { class: 'grid-2' },
          this.movers('Top movers by model', 'movers-model', d.m7, d.m14, 'model'),
          this.movers('Top movers by team', 'movers-team', d.t7, d.t14, 'team')));
      this.chart();
    },

    kpi(title, sub, test, t, filter) {
      return h('div', { class: 'card kpi', 'data-test': test },
        h('h2', null, title, ' ', h('span', { class: 'muted small' }, sub)),
        h('div', { class: 'kpi-main' },
          h('a', { href: hashFor('requests', Object.assign({ order: 'cost' }, filter)) },
            money(t.cost_usd, { 'data-test': test + '-list' }))),
        h('div', { class: 'kpi-sub' },
          h('span', null, 'net ', money(t.net_usd, { 'data-test': test + '-net' })),
          h('a', { href: hashFor('requests', filter) },
            h('span', { class: 'num', 'data-test': test + '-requests', 'data-value': String(t.requests) }, int(t.requests)),
            ' requests')));
    },

    spendTable(title, id, doc, by) {
      const d = this.data;
      const total = Number(doc.total.cost_usd) || 0;
      const rows = doc.rows || [];
      const body = rows.map((r) => {
        const filter = { since: d.month };
        filter[by] = r.key;
        const linkable = r.key !== '' && r.key !== null && r.key !== undefined;
        const share = total > 0 ? Math.max(0, Number(r.cost_usd)) / total * 100 : 0;
        const bar = h('span', { class: 'share-bar' });
        bar.style.width = share.toFixed(1) + '%';
        return h('tr', { 'data-key': r.key },
          h('th', { scope: 'row', class: 'key' },
            linkable ? h('a', { href: hashFor('requests', filter) }, label(r.key)) : h('span', { class: 'muted' }, label(r.key)),
            h('span', { class: 'share', title: share.toFixed(1) + '% of the month' }, bar)),
          h('td', { class: 'num' }, int(r.requests)),
          h('td', { 'data-test': 'cost', 'data-value': r.cost_usd, class: 'num', title: '$' + r.cost_usd },
            linkable ? h('a', { href: hashFor('requests', Object.assign({ order: 'cost' }, filter)) }, usdText(r.cost_usd)) : usdText(r.cost_usd)),
          h('td', { 'data-test': 'net', 'data-value': r.net_usd, class: 'num', title: '$' + r.net_usd }, usdText(r.net_usd)));
      });
      return section(title, tableWrap(h('table', { id, class: 'data' },
        thead([by, '#requests', '#list', '#net']),
        h('tbody', null, body.length ? body : emptyRow(4, 'No spend this month.')))));
    },

    movers(title, id, now, before, by) {
      const cur = new Map((now.rows || []).map((r) => [r.key, r]));
      const prev = new Map((before.rows || []).map((r) => [r.key, r]));
      const keys = new Set([...cur.keys(), ...prev.keys()]);
      const list = [...keys].map((k) => {
        const a = cur.get(k), b = prev.get(k);
        const c = a ? Number(a.cost_usd) : 0, p = b ? Number(b.cost_usd) : 0;
        return { key: k, cur: a ? a.cost_usd : '0', prev: b ? b.cost_usd : '0', change: c - p, ratio: p > 0 ? (c - p) / p : null };
      }).filter((m) => m.change !== 0).sort((x, y) => Math.abs(y.change) - Math.abs(x.change)).slice(0, 8);
      const rows = list.map((m) => {
        const linkable = m.key !== '' && m.key !== null;
        const f = { since: this.data.week };
        f[by] = m.key;
        return h('tr', { 'data-key': m.key },
          h('th', { scope: 'row', class: 'key' }, linkable ? h('a', { href: hashFor('requests', f) }, label(m.key)) : label(m.key)),
          h('td', { class: 'num', title: '$' + m.prev }, usdText(m.prev)),
          h('td', { class: 'num', title: '$' + m.cur }, usdText(m.cur)),
          h('td', { class: 'num change ' + (m.change > 0 ? 'up' : 'down'), 'data-test': 'change' },
            (m.change > 0 ? '▲ ' : '▼ ') + usdText(m.change, true),
            m.ratio !== null ? h('span', { class: 'muted small' }, ' ' + (m.ratio > 0 ? '+' : '') + (m.ratio * 100).toFixed(0) + '%') : h('span', { class: 'muted small' }, ' new')));
      });
      return section(title, h('p', { class: 'muted small' }, 'The last 7 UTC days (today included) against the 7 before, largest change first.'),
        tableWrap(h('table', { id, class: 'data' },
          thead([by, '#prior 7 d', '#last 7 d', '#change']),
          h('tbody', null, rows.length ? rows : emptyRow(4, 'No change.')))));
    },

    chart() {
      const box = $('#daily-chart');
      if (!box || !this.data) return;
      const d = this.data;
      const byDay = new Map((d.days.rows || []).map((r) => [r.key, r]));
      const days = [];
      for (let t = Date.parse(d.chartSince + 'T00:00:00Z'); isoDay(t) <= d.today; t += DAY_MS) days.push(isoDay(t));
      const values = days.map((k) => (byDay.get(k) ? Number(byDay.get(k).cost_usd) : 0));
      const max = niceCeil(Math.max(0, ...values));
      const W = Math.max(300, Math.round(box.clientWidth || 720)), H = 190;
      this.drawnWidth = box.clientWidth;
      if (!this.observer && window.ResizeObserver) {
        // redraw at the box's real width: after a resize, a rotation, or the token gate lifting
        this.observer = new ResizeObserver(() => requestAnimationFrame(() => {
          const b = $('#daily-chart');
          if (b && b.clientWidth && b.clientWidth !== this.drawnWidth) this.chart();
        }));
      }
      if (this.observer && this.observed !== box) {
        this.observer.disconnect();
        this.observer.observe(box);
        this.observed = box;
      }
      const left = 64, right = 8, top = 10, bottom = 24;
      const plotW = W - left - right, plotH = H - top - bottom;
      const step = plotW / days.length, barW = Math.max(2, step * 0.72);
      const g = svg('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': 'Daily list spend, last 30 days' });
      for (const f of [0, 0.5, 1]) {
        const y = top + plotH - plotH * f;
        g.append(svg('line', { x1: left, x2: W - right, y1: y, y2: y, class: 'grid' }),
          svg('text', { x: left - 6, y: y + 4, class: 'axis', 'text-anchor': 'end' }, usdText(max * f)));
      }
      days.forEach((day, i) => {
        const row = byDay.get(day);
        const value = row ? row.cost_usd : '0.000000';
        const bh = max > 0 ? Math.max(values[i] > 0 ? 1 : 0, plotH * values[i] / max) : 0;
        const x = left + i * step + (step - barW) / 2;
        const a = svg('a', { href: hashFor('requests', { since: day, until: nextDay(day) }), 'data-day': day, 'data-value': value, class: 'bar' + (day === d.today ? ' today' : '') },
          svg('title', null, day + ': ' + usdText(value) + ' list' + (row ? ', ' + usdText(row.net_usd) + ' net, ' + int(row.requests) + ' requests' : '') + ' ($' + value + ')'),
          svg('rect', { x: (left + i * step).toFixed(1), y: top, width: step.toFixed(1), height: plotH, class: 'hit' }),
          svg('rect', { x: x.toFixed(1), y: (top + plotH - bh).toFixed(1), width: barW.toFixed(1), height: bh.toFixed(1), class: 'fill' }));
        g.append(a);
        const every = step < 22 ? 7 : 5;
        if ((days.length - 1 - i) % every === 0) {
          const last = i === days.length - 1;
          g.append(svg('text', { x: (last ? x + barW : x + barW / 2).toFixed(1), y: H - 6, class: 'axis', 'text-anchor': last ? 'end' : 'middle' }, day.slice(5)));
        }
      });
      put(box, g);
    },
  };

  // ---------------------------------------------------------------- Budgets

  const budgets = {
    async load(params, ctx) {
      const doc = await api('/api/budgets');
      if (!ctx.alive()) return;
      $('#budgets-asof').textContent = 'As of ' + when(doc.as_of) + ' UTC. The bar is spend; the lighter part is reserved by requests in flight.';
      const list = doc.budgets || [];
      put(ctx.body, list.length
        ? h('div', { class: 'budget-grid' }, list.map((b) => this.card(b)))
        : notice('No budgets are configured (budgets: in the config).'));
    },

    card(b) {
      const limit = Number(b.limit_usd);
      const spendPct = Number(b.used_percent) || 0;
      const resPct = limit > 0 ? Number(b.reserved_usd) / limit * 100 : 0;
      const forecastPct = Number(b.forecast_percent) || 0;
      const over = forecastPct > 100;
      const used = Math.min(100, Math.max(0, spendPct));
      const fillEl = h('div', { class: 'fill' + (spendPct >= 100 ? ' full' : '') });
      fillEl.style.width = used + '%';
      const resEl = h('div', { class: 'reserved', title: 'reserved in flight: $' + b.reserved_usd });
      resEl.style.left = used + '%';
      resEl.style.width = Math.min(100 - used, Math.max(0, resPct)) + '%';
      const marks = (b.warn_at || []).map((p) => {
        const m = h('div', { class: 'mark', title: 'warn at ' + p + '%', 'data-test': 'threshold', 'data-value': String(p) });
        m.style.left = Math.min(100, Math.max(0, Number(p))) + '%';
        return m;
      });
      const fc = h('div', { class: 'forecast-mark' + (over ? ' over' : ''), title: 'forecast ' + pct(forecastPct) });
      fc.style.left = Math.min(100, Math.max(0, forecastPct)) + '%';
      const bar = h('div', {
        class: 'budget-bar', role: 'meter', 'aria-label': 'spend against the limit',
        'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': used.toFixed(1),
      }, fillEl, resEl, marks, fc);
      const refused = { outcome: 'refused', since: String(b.period_start || '').slice(0, 10) };
      for (const part of String(b.scope || '').split(',')) {
        const m = /^(team|app)=(.*)$/.exec(part);
        if (m) refused[m[1]] = m[2];
      }
      return h('article', { class: 'card budget' + (over ? ' is-over' : ''), 'data-test': 'budget', 'data-name': b.name },
        h('header', { class: 'budget-head' },
          h('h2', null, b.name),
          h('span', { class: 'badge ' + (b.action === 'block' ? 'action-block' : 'action-alert') }, b.action),
          h('span', { class: 'muted small' }, b.scope)),
        h('div', { class: 'budget-figures' },
          h('span', { class: 'big' }, money(b.spend_usd, { 'data-test': 'spend' })),
          h('span', { class: 'muted' }, ' of ', money(b.limit_usd, { 'data-test': 'limit' })),
          h('span', { class: 'used num' }, pct(spendPct))),
        bar,
        h('dl', { class: 'kv budget-kv' },
          h('dt', null, 'reserved'), h('dd', null, money(b.reserved_usd, { 'data-test': 'reserved' }), ' in flight'),
          h('dt', null, 'forecast'), h('dd', { class: over ? 'over' : '' },
            money(b.forecast_usd, { 'data-test': 'forecast' }), ' (' + pct(forecastPct) + ') at period end',
            over ? h('span', { class: 'badge warn' }, 'over the limit') : null),
          h('dt', null, 'period'), h('dd', null, b.period + ' (' + b.time_zone + '): ' + when(b.period_start) + ' → ' + when(b.period_end) + ' UTC'),
          h('dt', null, 'blocked'), h('dd', null,
            h('a', { href: hashFor('requests', refused), 'data-test': 'blocked', 'data-value': String(b.blocked_requests) },
              int(b.blocked_requests) + ' blocked request' + (Number(b.blocked_requests) === 1 ? '' : 's'))),
          h('dt', null, 'source'), h('dd', null, b.source)));
    },
  };

  // ---------------------------------------------------------------- Savings

  const savings = {
    async load(params, ctx) {
      let doc;
      try {
        doc = await api('/api/advice');
      } catch (e) {
        if (e instanceof ApiError && e.status === 503) {  // no ledger rows or no table yet
          if (!ctx.alive()) return;
          put(ctx.body, notice(e.message, 'info'));
          return;
        }
        throw e;
      }
      if (!ctx.alive()) return;
      const cards = [];
      for (const b of doc.buying_mode || []) {
        const options = b.options || [];
        const priced = options.filter((o) => o.monthly_usd !== null && o.monthly_usd !== undefined);
        const cheapest = priced.reduce((m, o) => (m === null || Number(o.monthly_usd) < Number(m.monthly_usd) ? o : m), null);
        const save = cheapest ? Number(b.on_demand_monthly_usd) - Number(cheapest.monthly_usd) : 0;
        cards.push({ monthly: Math.max(0, save), node: () => this.buyingCard(b, Math.max(0, save), cheapest) });
      }
      for (const l of doc.levers || []) {
        cards.push({ monthly: Number(l.monthly_savings_usd) || 0, node: () => this.leverCard(l) });
      }
      cards.sort((a, b) => b.monthly - a.monthly);
      const w = doc.window || {};
      put(ctx.body,
        h('p', { class: 'muted', 'data-test': 'advice-window' },
          'Window ' + when(w.since) + ' → ' + when(w.until) + ' UTC · ' + int(w.requests) + ' requests · ',
          money(w.spend_usd), ' spent · rate table ' + (doc.rate_table_version || '—')),
        cards.length ? h('div', { class: 'saving-list' }, cards.map((c) => c.node())) : notice('The advisor found nothing to change.'),
        (doc.provisioned || []).length ? section('Provisioned throughput', (doc.provisioned || []).map((p) => this.provisionedCard(p))) : null,
        (doc.notes || []).length ? section('Notes', h('ul', { class: 'notes' }, doc.notes.map((n) => h('li', null, n)))) : null);
    },

    head(kind, title, sub, monthly, windowUsd) {
      return h('header', { class: 'saving-head' },
        h('div', null, h('span', { class: 'badge' }, kind), h('h2', null, title), h('p', { class: 'muted small' }, sub)),
        h('div', { class: 'saving-figure' },
          h('span', { class: 'big' }, money(monthly, { 'data-test': 'monthly-saving' })), h('span', { class: 'muted small' }, ' / month'),
          windowUsd !== undefined ? h('div', { class: 'muted small' }, money(windowUsd), ' over the window') : null));
    },

    leverCard(l) {
      const who = [l.team && 'team ' + l.team, l.app && 'app ' + l.app, l.model && l.model].filter(Boolean).join(' · ');
      return h('article', { class: 'card saving', 'data-test': 'saving', 'data-kind': 'lever', 'data-lever': l.lever },
        this.head('lever', humanize(l.lever), who, l.monthly_savings_usd, l.savings_usd),
        l.caveat ? h('p', { class: 'caveat' }, l.caveat) : null,
        h('details', { open: true }, h('summary', null, 'Evidence'), defList(l.evidence || {})));
    },

    buyingCard(b, save, cheapest) {
      const opts = (b.options || []).map((o) => h('tr', { class: o === cheapest ? 'best' : '' },
        h('td', null, humanize(o.mode)), h('td', null, humanize(o.term)),
        h('td', { class: 'num' }, o.units === null || o.units === undefined ? '—' : int(o.units)),
        h('td', { class: 'num', title: o.monthly_usd === null ? '' : '$' + o.monthly_usd }, usdText(o.monthly_usd)),
        h('td', { class: 'num' }, usdText(o.spill_usd)),
        h('td', { class: 'num' }, o.utilisation === null || o.utilisation === undefined ? '—' : pct(Number(o.utilisation) * 100)),
        h('td', { class: 'note' }, o.note || '')));
      const load = (b.load || {});
      const tpm = (x) => (x ? 'p50 ' + int(x.p50) + ', p95 ' + int(x.p95) + ', p99 ' + int(x.p99) + ', max ' + int(x.max) + ', mean ' + int(x.mean) : '—');
      return h('article', { class: 'card saving', 'data-test': 'saving', 'data-kind': 'buying_mode' },
        this.head('buying mode', b.model, [b.region, b.scope].filter(Boolean).join(' · '), save.toFixed(6)),
        b.recommendation ? h('p', { class: 'recommendation' }, b.recommendation) : null,
        h('details', { open: true }, h('summary', null, 'Evidence'),
          defList({
            requests: int(b.requests),
            on_demand: usdText(b.on_demand_usd) + ' over the window ($' + b.on_demand_usd + ')',
            on_demand_monthly: usdText(b.on_demand_monthly_usd) + ' ($' + b.on_demand_monthly_usd + ')',
            input_tokens_per_minute: tpm(load.input_tpm),
            output_tokens_per_minute: tpm(load.output_tpm),
            break_even: b.break_even || {},
          }),
          tableWrap(h('table', { class: 'data compact' },
            thead(['mode', 'term', '#units', '#monthly', '#spill / month', '#utilisation', 'note']),
            h('tbody', null, opts.length ? opts : emptyRow(7, 'No options.'))))));
    },

    provisionedCard(p) {
      return h('article', { class: 'card saving', 'data-test': 'provisioned' },
        h('header', { class: 'saving-head' }, h('div', null,
          h('span', { class: 'badge' }, 'provisioned'), h('h2', null, p.model || ''),
          h('p', { class: 'muted small wrap' }, p.arn || ''))),
        p.recommendation ? h('p', { class: 'recommendation' }, p.recommendation) : null,
        defList({
          region: p.region, requests: int(p.requests), committed: '$' + p.committed_usd,
          on_demand_equivalent: '$' + p.on_demand_equivalent_usd,
          utilisation: p.utilisation === null ? null : pct(Number(p.utilisation) * 100),
          input_tpm: p.input_tpm, output_tpm: p.output_tpm,
        }));
    },
  };

  // ---------------------------------------------------------------- Requests

  const FILTERS = ['team', 'app', 'model', 'outcome', 'min_cost', 'max_cost', 'since', 'until', 'unpriced', 'order'];
  const FIELD = {
    team: 'f-team', app: 'f-app', model: 'f-model', outcome: 'f-outcome', min_cost: 'f-min-cost',
    max_cost: 'f-max-cost', since: 'f-since', until: 'f-until', order: 'f-order',
  };

  const requests = {
    shown: 0,
    cursor: null,
    enter(params) {
      for (const [k, id] of Object.entries(FIELD)) document.getElementById(id).value = params.get(k) || '';
      $('#f-unpriced').checked = params.get('unpriced') === '1';
      this.shown = 0;
      this.cursor = null;
      $('#requests-more').hidden = true;
    },
    query(params) {
      const q = {};
      for (const k of FILTERS) if (params.get(k)) q[k] = params.get(k);
      return q;
    },
    async load(params, ctx) {
      // A refresh keeps what was shown: the newest page again, as long as the rows on screen.
      const limit = Math.min(500, Math.max(50, this.shown));
      const doc = await api('/api/requests', Object.assign(this.query(params), { limit }));
      if (!ctx.alive()) return;
      const table = h('table', { id: 'requests-table', class: 'data requests' },
        thead(['request', 'time (UTC)', 'team', 'app', 'model', 'outcome', '#status', '#in', '#out', '#cache r / w', '#cost']),
        h('tbody', null));
      put(ctx.body, h('p', { class: 'muted small', id: 'requests-summary' }), h('div', { class: 'block flush' }, tableWrap(table)));
      this.shown = 0;
      this.append(doc);
    },
    append(doc) {
      const tbody = $('#requests-table tbody');
      const rows = doc.rows || [];
      for (const r of rows) tbody.append(this.row(r));
      this.shown += rows.length;
      if (this.shown === 0) tbody.append(emptyRow(11, 'No requests match.'));
      this.cursor = doc.next_cursor || null;
      $('#requests-more').hidden = !this.cursor;
      $('#requests-summary').textContent = int(this.shown) + ' request' + (this.shown === 1 ? '' : 's') + ' shown' + (this.cursor ? ', more available' : '');
    },
    row(r) {
      const link = hashFor('request', { id: r.request_id, at: r.time_ms });
      const tr = h('tr', { 'data-request-id': r.request_id, class: 'clickable outcome-' + r.outcome },
        h('td', { class: 'id' }, h('a', { href: link, title: r.request_id }, r.request_id)),
        h('td', { class: 'time' }, when(r.time)),
        h('td', { 'data-test': 'team' }, label(r.team)),
        h('td', { 'data-test': 'app' }, label(r.app)),
        h('td', { 'data-test': 'model', class: 'model', title: r.model_base ? 'priced as ' + r.model_base : 'no base model' }, r.model_requested),
        h('td', null, h('span', { class: 'badge outcome ' + r.outcome }, r.outcome)),
        h('td', { class: 'num' }, String(r.status)),
        h('td', { class: 'num' }, int(r.input_tokens)),
        h('td', { class: 'num' }, int(r.output_tokens)),
        h('td', { class: 'num' }, int(r.cache_read_tokens) + ' / ' + int(r.cache_write_tokens)),
        h('td', {
          class: 'num', 'data-test': 'cost', 'data-value': r.cost_usd,
          title: '$' + r.cost_usd + (r.priced ? '' : ' — unpriced: ' + (r.unpriced_reason || 'no rate matched')),
        },
          r.priced ? usdText(r.cost_usd) : h('span', { class: 'badge warn' }, 'unpriced')));
      tr.addEventListener('click', (ev) => {
        if (ev.target.closest('a') || (window.getSelection && String(window.getSelection()))) return;
        location.hash = link;
      });
      return tr;
    },
    async more() {
      if (!this.cursor) return;
      const gen = state.gen;
      const btn = $('#requests-more');
      btn.disabled = true;
      try {
        const doc = await api('/api/requests', Object.assign(this.query(state.params), { limit: 50, cursor: this.cursor }));
        if (gen !== state.gen) return;
        this.append(doc);
      } catch (e) {
        if (gen === state.gen) failed(e);
      } finally {
        btn.disabled = false;
      }
    },
    apply(ev) {
      ev.preventDefault();
      const q = {};
      for (const [k, id] of Object.entries(FIELD)) q[k] = document.getElementById(id).value.trim();
      if ($('#f-unpriced').checked) q.unpriced = '1';
      go(hashFor('requests', q));
    },
  };

  // ---------------------------------------------------------------- Request

  const MONEY_FIELDS = /_usd$/;
  const request = {
    poll: false,
    async load(params, ctx) {
      $('#request-back').setAttribute('href', state.requestsHash);
      const id = params.get('id') || '';
      if (!id) { put(ctx.body, notice('No request id in the address.')); return; }
      const doc = await api('/api/request', { id, at: params.get('at') || '' });
      if (!ctx.alive()) return;
      const rows = doc.rows || [];
      put(ctx.body,
        rows.length > 1 ? notice(rows.length + ' rows carry this id (a client reused it).', 'warn') : null,
        rows.map((r) => h('div', { class: 'card detail' },
          h('h2', { class: 'wrap' }, r.request_id),
          tableWrap(h('table', { class: 'kv-table', 'data-test': 'request-record' }, h('tbody', null,
            Object.keys(r).map((k) => h('tr', { 'data-field': k },
              h('th', { scope: 'row' }, k),
              h('td', { 'data-test': 'value-' + k, class: MONEY_FIELDS.test(k) ? 'num' : '' }, this.value(k, r[k]))))))))));
    },
    value(k, v) {
      if (k === 'tags') {
        const keys = Object.keys(v || {});
        return keys.length ? keys.map((t) => t + '=' + v[t]).join(', ') : '(none)';
      }
      if (v === null || v === undefined) return '—';
      if (MONEY_FIELDS.test(k)) return '$' + v + '  (' + usdText(v) + ')';
      if (typeof v === 'object') return JSON.stringify(v);
      return String(v);
    },
  };

  // ---------------------------------------------------------------- Rates

  const rates = {
    models: new Set(),
    timer: null,
    async load(params, ctx) {
      const q = $('#rates-search').value.trim();
      const doc = await api('/api/rates', { q });
      if (!ctx.alive()) return;
      $('[data-test=rates-version]').textContent = doc.version;
      $('[data-test=rates-source]').textContent = doc.source;
      const entries = doc.entries || [];
      $('#rates-count').textContent = (q ? int(entries.length) + ' of ' : '') + int(doc.total_entries) + ' entries';
      let grew = false;
      for (const e of entries) if (!this.models.has(e.model)) { this.models.add(e.model); grew = true; }
      if (grew) put($('#q-models'), ...[...this.models].sort().map((m) => h('option', { value: m })));
      const price = (v) => (v === null || v === undefined ? h('span', { class: 'muted' }, '—') : '$' + v);
      const rows = entries.map((e) => h('tr', { 'data-model': e.model },
        h('th', { scope: 'row', class: 'model' }, h('button', { type: 'button', class: 'link', title: 'Quote this model', onclick: () => this.pick(e) }, e.model)),
        h('td', { class: 'regions' }, (e.regions || []).map((r, i) => [i ? ', ' : null, h('span', { class: 'nowrap' }, r)])),
        h('td', null, e.scope === null ? 'any' : e.scope),
        h('td', null, e.tier), h('td', null, e.latency), h('td', null, e.batch ? 'yes' : ''),
        h('td', { class: 'time' }, (e.effective_from || '…') + ' → ' + (e.effective_to || '…')),
        h('td', { class: 'num' }, price(e.input)), h('td', { class: 'num' }, price(e.output)),
        h('td', { class: 'num' }, price(e.cache_read)), h('td', { class: 'num' }, price(e.cache_write)),
        h('td', { class: 'num' }, price(e.cache_write_1h)),
        h('td', { class: 'small' }, e.long_context_threshold ? '> ' + int(e.long_context_threshold) + ': $' + e.long_context.input + ' / $' + e.long_context.output : ''),
        h('td', { class: 'entry small' }, e.entry)));
      put(ctx.body, h('div', { class: 'block flush' }, tableWrap(h('table', { id: 'rates-table', class: 'data' },
        thead(['model', 'regions', 'scope', 'tier', 'latency', 'batch', 'effective', '#input', '#output', '#cache read', '#cache write', '#write 1 h', 'long context', 'entry']),
        h('tbody', null, rows.length ? rows : emptyRow(14, 'No entry matches.'))))));
    },
    pick(e) {
      $('#q-model').value = e.model;
      if (e.regions && e.regions.length && e.regions[0] !== '*') $('#q-region').value = e.regions[0];
      $('#q-tier').value = e.tier === 'standard' ? '' : e.tier;
      $('#q-latency').value = e.latency === 'optimized' ? 'optimized' : '';
      $('#q-model').focus();
    },
    search() {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => { if (state.name === 'rates') refresh(false); }, 300);
    },
    async quote(ev) {
      ev.preventDefault();
      const out = $('#quote-result');
      const val = (id) => document.getElementById(id).value.trim();
      const params = {
        model: val('q-model'), region: val('q-region'), tier: val('q-tier'), latency: val('q-latency'),
        input: val('q-input') || '0', output: val('q-output') || '0',
        cache_read: val('q-cache-read') || '0', cache_write: val('q-cache-write') || '0',
      };
      if (!params.model) { put(out, h('p', { class: 'error' }, 'model: required')); return; }
      put(out, h('p', { class: 'muted' }, 'Pricing…'));
      delete out.dataset.ready;
      try {
        const q = await api('/api/quote', params);
        const parts = [['input', q.input_usd], ['output', q.output_usd], ['cache read', q.cache_read_usd], ['cache write', q.cache_write_usd]];
        put(out, q.priced
          ? h('div', { class: 'quote-answer' },
            h('p', { class: 'big' }, money(q.total_usd, { 'data-test': 'quote-total' })),
            h('table', { class: 'data compact' }, h('tbody', null, parts.map(([k, v]) =>
              h('tr', null, h('th', { scope: 'row' }, k), h('td', { class: 'num', title: '$' + v }, usdText(v)))))),
            h('p', { class: 'muted small' },
              [q.kind, q.scope, q.tier, q.latency, q.long_context ? 'long context' : null].filter(Boolean).join(' · ') +
              ' · entry ' + (q.entry || '—') + ' · table ' + q.rate_table_version),
            q.note ? h('p', { class: 'caveat' }, q.note) : null)
          : h('div', { class: 'quote-answer' },
            h('p', { class: 'big' }, h('span', { 'data-test': 'quote-total', 'data-value': '' }, 'unpriced')),
            h('p', { class: 'caveat' }, q.note || 'no rate matched')));
      } catch (e) {
        if (e instanceof AuthError) { gate(e.hadToken); return; }
        put(out, h('p', { class: 'error' }, e.message));
      }
      out.dataset.ready = '1';
    },
  };

  // ---------------------------------------------------------------- router, polling, token

  const PAGES = { overview, budgets, savings, requests, request, rates };

  function parseHash() {
    const raw = location.hash.replace(/^#\/?/, '');
    const i = raw.indexOf('?');
    const name = i < 0 ? raw : raw.slice(0, i);
    return { name: PAGES[name] ? name : 'overview', params: new URLSearchParams(i < 0 ? '' : raw.slice(i + 1)) };
  }

  function go(hash) {
    delete document.body.dataset.ready;
    if (location.hash === hash) route();
    else location.hash = hash;
  }

  function pageRoot(name) { return document.getElementById('page-' + name); }

  function route() {
    state.gen++;
    delete document.body.dataset.ready;
    clearTimeout(state.timer);
    const { name, params } = parseHash();
    const changed = state.name !== name;
    state.name = name;
    state.params = params;
    if (name === 'requests') state.requestsHash = location.hash || '#/requests';
    for (const n of Object.keys(PAGES)) pageRoot(n).hidden = n !== name;
    for (const a of $$('#nav a')) {
      if (a.dataset.page === name || (name === 'request' && a.dataset.page === 'requests')) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    const root = pageRoot(name);
    $('.page-error', root).hidden = true;
    if (changed || name === 'request') put($('.page-body', root), h('p', { class: 'muted loading' }, 'Loading…'));
    if (PAGES[name].enter) PAGES[name].enter(params);
    if (changed) window.scrollTo(0, 0);
    refresh(true);
  }

  async function refresh(first) {
    clearTimeout(state.timer);
    const gen = state.gen;
    const seq = ++state.seq;  // a newer load (search, poll) supersedes this one
    const name = state.name;
    const page = PAGES[name];
    const root = pageRoot(name);
    const alive = () => gen === state.gen && seq === state.seq && !state.gated;
    const ctx = { alive, body: $('.page-body', root) };
    try {
      await page.load(state.params, ctx);
      if (!alive()) return;
      $('.page-error', root).hidden = true;
      showGate(false);
      state.submitted = false;
      state.lastLoad = Date.now();
      setStatus('updated ' + clock(new Date()), false);
      if (first || !document.body.dataset.ready) document.body.dataset.ready = name;
    } catch (e) {
      if (!alive()) return;
      if (e instanceof AuthError) { gate(e.hadToken); return; }
      if (!$('#token-gate').hidden && e instanceof ApiError && e.status === 0) {
        const err = $('#token-error');  // could not even ask: say so on the form
        err.textContent = e.message;
        err.hidden = false;
        $('#token-submit').disabled = false;
        state.gated = true;
        return;
      }
      showGate(false);  // anything but a 401 means the token (if any) was accepted
      if ($('.loading', ctx.body)) ctx.body.replaceChildren();
      failed(e);
      if (first && !(e instanceof ApiError && e.status === 0)) document.body.dataset.ready = name;
      if (e instanceof ApiError && e.status === 0) setStatus('offline — retrying', true);
    }
    schedule();
  }

  function failed(e) {
    const el = $('.page-error', pageRoot(state.name));
    el.textContent = e && e.message ? e.message : String(e);
    el.hidden = false;
  }

  function schedule() {
    clearTimeout(state.timer);
    if (state.gated || PAGES[state.name].poll === false) return;
    const gen = state.gen;
    state.timer = setTimeout(() => {
      if (gen !== state.gen) return;
      if (document.hidden) return;  // visibilitychange resumes
      refresh(false);
    }, POLL_MS);
  }

  function setStatus(text, bad) {
    const s = $('#status');
    s.textContent = text;
    s.classList.toggle('bad', Boolean(bad));
  }

  function showGate(on) {
    $('#token-gate').hidden = !on;
    $('#main').hidden = on;
    $('#nav').hidden = on;
    if (!on) $('#token-submit').disabled = false;
  }

  // A 401: hide and drop every figure, ask for the token.
  function gate(hadToken) {
    state.gen++;
    state.gated = true;
    clearTimeout(state.timer);
    delete document.body.dataset.ready;
    for (const n of Object.keys(PAGES)) {
      $('.page-body', pageRoot(n)).replaceChildren();
      $('.page-error', pageRoot(n)).hidden = true;
    }
    $('#quote-result').replaceChildren();
    for (const sel of ['[data-test=rates-version]', '[data-test=rates-source]', '#rates-count', '#budgets-asof']) $(sel).textContent = '';
    showGate(true);
    setStatus('', false);
    const err = $('#token-error');
    if (hadToken) {
      err.textContent = state.submitted ? 'That token was not accepted.' : 'The token is no longer accepted (rotated?). Enter the current one.';
      err.hidden = false;
      sessionStorage.removeItem(TOKEN_KEY);
      state.token = '';
    } else {
      err.hidden = true;
    }
    $('#token-submit').disabled = false;
    const input = $('#token-input');
    input.value = '';
    input.focus();
  }

  function submitToken(ev) {
    ev.preventDefault();
    const v = $('#token-input').value.trim();
    const err = $('#token-error');
    if (!v) { err.textContent = 'Enter the admin token.'; err.hidden = false; return; }
    err.hidden = true;
    state.token = v;
    state.submitted = true;
    sessionStorage.setItem(TOKEN_KEY, v);
    state.gated = false;
    $('#token-submit').disabled = true;
    route();  // its answer re-enables the button: showGate(false) or gate()
  }

  function start() {
    $('#token-form').addEventListener('submit', submitToken);
    $('#requests-filter').addEventListener('submit', (ev) => requests.apply(ev));
    $('#requests-more').addEventListener('click', () => requests.more());
    $('#rates-search').addEventListener('input', () => rates.search());
    $('#quote-form').addEventListener('submit', (ev) => rates.quote(ev));
    for (const a of $$('a[href^="#/"]')) {
      // a click on a link to the page already shown still reloads it
      a.addEventListener('click', (ev) => {
        if (ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
        if (a.getAttribute('href') === location.hash) { ev.preventDefault(); go(location.hash); }
        else delete document.body.dataset.ready;
      });
    }
    window.addEventListener('hashchange', () => { if (!state.gated) route(); });
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden && !state.gated && PAGES[state.name].poll !== false && Date.now() - state.lastLoad >= POLL_MS) refresh(false);
    });
    if (!location.hash) history.replaceState(null, '', '#/overview');
    route();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
}());
