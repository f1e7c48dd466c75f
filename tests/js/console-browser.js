#!/usr/bin/env node
// Drives the spend console in Debian's headless Chromium and prints ONE JSON document of what it
// saw; the Python integration test makes the assertions. Exit 0 unless the browser itself could
// not run (launch failure: exit 2).
//
//   node tests/js/console-browser.js config.json
//   config.json: {"url": "http://127.0.0.1:PORT", "token": "..." | null, "shots": "/dir",
//                 "filter": {"team": "..."}, "xss_model": "<img src=x onerror=alert(1)>"}
//   or, for the live check alone: {"url", "token", "live_marker": "/path/to/create"}
//
// Output keys: console_errors, page_errors, failed_requests, dialogs, csp_violations (lists; the
// deliberate 401s are left out and counted in unauthorized_responses and
// unauthorized_console_messages), not_ready, driver_errors, api_calls {page: [path?query]};
// token_prompt_shown, data_visible_before_token, wrong_token_rejected, token_accepted;
// overview {today_list, today_net, today_requests, mtd_list, mtd_net, mtd_requests (data-value
// strings), mtd_by_team, mtd_by_app, mtd_by_model {key: cost}, daily {day: cost}, updated};
// budgets {name: spend}, budget_cards [...]; savings_cards; requests [request_id...];
// rates_version, rates_source, rates_rows; phone_overflow_x; filtered_request_ids,
// filtered_teams, filtered_hash; xss_cell_texts, xss_img_count, xss_filter_value,
// xss_detail_model, xss_detail_img_count, detail_hash; quote {model, text, value, error}.
'use strict';

const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');

const READY_MS = 15000;
const PAGES = ['overview', 'budgets', 'savings', 'requests', 'rates'];

async function main() {
  const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const base = cfg.url.replace(/\/+$/, '');
  const shots = cfg.shots || null;
  if (shots) fs.mkdirSync(shots, { recursive: true });

  const out = {
    console_errors: [], page_errors: [], failed_requests: [], dialogs: [], csp_violations: [],
    unauthorized_responses: 0, unauthorized_console_messages: 0, not_ready: [], driver_errors: [],
    api_calls: {},  // per page: the API requests made while it loaded (path?query)
  };

  let browser;
  try {
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
        '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
    });
  } catch (e) {
    out.driver_errors.push('launch: ' + (e && e.message || e));
    process.stdout.write(JSON.stringify(out) + '\n');
    process.exit(2);
  }

  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, deviceScaleFactor: 1 });
  await context.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__cspViolations.push({ directive: e.violatedDirective, blocked: e.blockedURI, source: e.sourceFile, line: e.lineNumber, sample: e.sample });
    });
  });
  const page = await context.newPage();
  let apiLog = null;  // the API calls of the page being loaded

  page.on('console', (m) => {
    const type = m.type();
    if (type !== 'error' && type !== 'warning') return;
    const text = m.text();
    // Chromium logs every non-2xx fetch as "Failed to load resource: ... status of 401"
    if (/status of 401\b/.test(text)) { out.unauthorized_console_messages++; return; }
    const loc = m.location() || {};
    out.console_errors.push({ type, text, url: loc.url || '' });
  });
  page.on('pageerror', (e) => out.page_errors.push(String(e && e.stack || e)));
  page.on('requestfailed', (r) => {
    out.failed_requests.push({ url: r.url(), method: r.method(), failure: (r.failure() || {}).errorText || 'failed' });
  });
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (apiLog && u.pathname.startsWith('/api/')) apiLog.push(u.pathname + u.search);
  });
  page.on('response', (r) => {
    const s = r.status();
    if (s === 401) { out.unauthorized_responses++; return; }
    if (s >= 400) out.failed_requests.push({ url: r.url(), method: r.request().method(), status: s });
  });
  page.on('dialog', (d) => {
    out.dialogs.push({ type: d.type(), message: d.message() });
    d.dismiss().catch(() => {});
  });

  const step = async (name, fn) => {
    try { await fn(); } catch (e) { out.driver_errors.push(name + ': ' + String(e && e.message || e).split('\n')[0]); }
  };
  const shot = async (file) => {
    if (shots) await page.screenshot({ path: path.join(shots, file), fullPage: true });
  };
  const waitReady = async (name) => {
    try {
      await page.waitForFunction((n) => document.body.dataset.ready === n, name, { timeout: READY_MS });
      return true;
    } catch (e) {
      out.not_ready.push(name);
      return false;
    }
  };
  // Navigate by hash; the same hash again still reloads (a throwaway parameter).
  const open = async (hash, name) => {
    await page.evaluate((h) => {
      delete document.body.dataset.ready;
      if (location.hash === h) h += (h.includes('?') ? '&' : '?') + '_=' + Date.now();
      location.hash = h;
    }, hash);
    return waitReady(name);
  };
  const attr = (sel, a) => page.$eval(sel, (el, a2) => el.getAttribute(a2), a).catch(() => null);
  const text = (sel) => page.$eval(sel, (el) => el.textContent).catch(() => null);

  await step('open', async () => {
    await page.goto(base + '/', { waitUntil: 'load', timeout: 30000 });
  });

  // ---- live mode (config "live_marker"): the Overview, left open, shows new traffic by itself.
  // Records today's request count, creates the marker file (the caller then sends a request) and
  // waits, without reloading, for the figure to change: live = {before, after}.
  if (cfg.live_marker) {
    await step('live', async () => {
      if (cfg.token) {
        await page.fill('#token-input', cfg.token);
        await page.click('#token-submit');
      }
      if (!(await waitReady('overview'))) return;
      const before = await attr('[data-test=today-requests]', 'data-value');
      out.live = { before, after: null };
      fs.writeFileSync(cfg.live_marker, 'ready\n');
      await page.waitForFunction((b) => {
        const el = document.querySelector('[data-test=today-requests]');
        return el && el.getAttribute('data-value') !== b;
      }, before, { timeout: 40000 });
      out.live.after = await attr('[data-test=today-requests]', 'data-value');
    });
    await browser.close();
    process.stdout.write(JSON.stringify(out) + '\n');
    return;
  }

  // ---- token
  await step('token', async () => {
    if (cfg.token) {
      out.token_prompt_shown = await page.waitForSelector('#token-form', { state: 'visible', timeout: READY_MS }).then(() => true, () => false);
      out.data_visible_before_token = await page.evaluate(() =>
        Array.from(document.querySelectorAll('[data-test=today-list]')).some((e) => e.textContent.trim() !== ''));
      await page.fill('#token-input', 'not-the-token-' + Date.now());
      await page.click('#token-submit');
      const errShown = await page.waitForSelector('#token-error', { state: 'visible', timeout: READY_MS }).then(() => true, () => false);
      out.wrong_token_rejected = errShown && await page.isVisible('#token-form');
      out.data_visible_after_wrong_token = await page.evaluate(() =>
        Array.from(document.querySelectorAll('[data-test=today-list]')).some((e) => e.textContent.trim() !== ''));
      await page.fill('#token-input', cfg.token);
      await page.click('#token-submit');
      out.token_accepted = await waitReady('overview');
      out.token_form_hidden_after = !(await page.isVisible('#token-form'));
    } else {
      out.token_accepted = await waitReady('overview');
      out.token_prompt_shown = await page.isVisible('#token-form');
    }
  });

  // ---- every page
  for (const name of PAGES) {
    await step(name, async () => {
      apiLog = [];
      const ready = await open('#/' + name, name);
      out.api_calls[name] = apiLog;
      apiLog = null;
      await shot(name + '.png');
      if (!ready) return;
      if (name === 'overview') {
        const fig = {};
        for (const k of ['today_list', 'today_net', 'today_requests', 'mtd_list', 'mtd_net', 'mtd_requests']) {
          fig[k] = await attr(`[data-test=${k.replace('_', '-')}]`, 'data-value');
        }
        fig.mtd_by_team = await page.$$eval('#mtd-by-team tr[data-key]', (rows) => Object.fromEntries(rows.map((r) =>
          [r.getAttribute('data-key'), (r.querySelector('td[data-test=cost]') || { getAttribute: () => null }).getAttribute('data-value')])));
        fig.mtd_by_app = await page.$$eval('#mtd-by-app tr[data-key]', (rows) => Object.fromEntries(rows.map((r) =>
          [r.getAttribute('data-key'), r.querySelector('td[data-test=cost]').getAttribute('data-value')])));
        fig.mtd_by_model = await page.$$eval('#mtd-by-model tr[data-key]', (rows) => Object.fromEntries(rows.map((r) =>
          [r.getAttribute('data-key'), r.querySelector('td[data-test=cost]').getAttribute('data-value')])));
        fig.daily = await page.$$eval('#daily-chart [data-day][data-value]', (bars) => Object.fromEntries(bars.map((b) =>
          [b.getAttribute('data-day'), b.getAttribute('data-value')])));
        fig.updated = await text('#status');
        // Where each team's month-to-date cost leads: the filtered requests behind the figure.
        fig.mtd_team_links = await page.$$eval('#mtd-by-team tr[data-key]', (rows) => Object.fromEntries(rows.map((r) => {
          const a = r.querySelector('td[data-test=cost] a');
          return [r.getAttribute('data-key'), a ? a.getAttribute('href') : null];
        })));
        out.overview = fig;
      } else if (name === 'budgets') {
        out.budget_cards = await page.$$eval('[data-test=budget]', (cards) => cards.map((c) => ({
          name: c.getAttribute('data-name'),
          spend: (c.querySelector('[data-test=spend]') || { getAttribute: () => null }).getAttribute('data-value'),
          limit: (c.querySelector('[data-test=limit]') || { getAttribute: () => null }).getAttribute('data-value'),
          blocked: (c.querySelector('[data-test=blocked]') || { getAttribute: () => null }).getAttribute('data-value'),
        })));
        out.budgets = Object.fromEntries(out.budget_cards.map((b) => [b.name, b.spend]));
      } else if (name === 'savings') {
        out.savings_cards = await page.$$eval('[data-test=saving]', (c) => c.length);
        out.savings_text = ((await text('#page-savings .page-body')) || '').trim().slice(0, 500);
      } else if (name === 'requests') {
        out.requests = await page.$$eval('#requests-table tr[data-request-id]', (rows) => rows.map((r) => r.getAttribute('data-request-id')));
      } else if (name === 'rates') {
        out.rates_version = ((await text('[data-test=rates-version]')) || '').trim();
        out.rates_source = ((await text('[data-test=rates-source]')) || '').trim();
        out.rates_rows = await page.$$eval('#rates-table tbody tr[data-model]', (r) => r.length);
      }
    });
  }

  // ---- phone
  await step('phone', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await open('#/overview', 'overview');
    await page.waitForTimeout(400);  // the chart redraws to the new width
    await shot('overview-phone.png');
    out.phone_overflow_x = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
    await open('#/requests', 'requests');
    await shot('requests-phone.png');
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  // ---- filter
  await step('filter', async () => {
    await open('#/requests', 'requests');
    const f = cfg.filter || {};
    if (f.team !== undefined) await page.fill('#f-team', String(f.team));
    await page.click('#f-apply');
    await waitReady('requests');
    out.filtered_request_ids = await page.$$eval('#requests-table tr[data-request-id]', (rows) => rows.map((r) => r.getAttribute('data-request-id')));
    out.filtered_teams = await page.$$eval('#requests-table tr[data-request-id] td[data-test=team]', (c) => c.map((x) => x.textContent));
    out.filtered_hash = await page.evaluate(() => location.hash);
  });

  // ---- hostile model id
  if (cfg.xss_model) {
    await step('xss', async () => {
      await open('#/requests?model=' + encodeURIComponent(cfg.xss_model), 'requests');
      out.xss_cell_texts = await page.$$eval('#requests-table tr[data-request-id] td[data-test=model]', (c) => c.map((x) => x.textContent));
      out.xss_img_count = await page.evaluate(() => document.querySelectorAll('img').length);
      out.xss_filter_value = await page.inputValue('#f-model');
      await page.waitForTimeout(500);
      const row = await page.$('#requests-table tr[data-request-id] td.id a');
      if (row) {
        await page.evaluate(() => { delete document.body.dataset.ready; });
        await row.click();
        await waitReady('request');
        out.xss_detail_model = await text('#request-detail tr[data-field=model_requested] td');
        out.xss_detail_img_count = await page.evaluate(() => document.querySelectorAll('img').length);
        out.detail_hash = await page.evaluate(() => location.hash);
        await page.waitForTimeout(300);
        await shot('request.png');
      }
    });
  }

  // ---- quote
  await step('quote', async () => {
    await open('#/rates', 'rates');
    const model = await attr('#rates-table tbody tr[data-model]', 'data-model');
    out.quote = { model, text: null, value: null, error: null };
    if (!model) return;
    await page.fill('#q-model', model);
    await page.fill('#q-input', '1000');
    await page.fill('#q-output', '500');
    await page.click('#q-submit');
    await page.waitForSelector('#quote-result[data-ready]', { timeout: READY_MS });
    out.quote.text = await text('[data-test=quote-total]');
    out.quote.value = await attr('[data-test=quote-total]', 'data-value');
    out.quote.error = await text('#quote-result .error');
    await shot('rates-quote.png');
  });

  await step('csp', async () => {
    out.csp_violations = await page.evaluate(() => window.__cspViolations || []);
  });

  await browser.close();
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
  process.stdout.write(JSON.stringify({ driver_errors: ['fatal: ' + String(e && e.stack || e)] }) + '\n');
  process.exit(2);
});
