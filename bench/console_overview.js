// Loads the spend console's Overview `loads` times in headless Chromium and prints the time from
// navigation to the page's "rendered" mark (document.body.dataset.ready === 'overview').
// Usage (from tests/js, where playwright-core is installed): node ../../bench/console_overview.js URL LOADS
'use strict';
const path = require('path');
const { chromium } = require(require.resolve('playwright-core', { paths: [path.join(__dirname, '..', 'tests', 'js')] }));

(async () => {
  const [url, loads] = [process.argv[2], Number(process.argv[3] || 11)];
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
  });
  const ms = [];
  try {
    const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
    for (let i = 0; i < loads; i++) {
      await page.goto('about:blank');
      const began = Date.now();
      await page.goto(url + '/#/overview');
      await page.waitForFunction(() => document.body.dataset.ready === 'overview', null, { timeout: 120000 });
      ms.push(Date.now() - began);
    }
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify({ ms }) + '\n');
})().catch((e) => { console.error(e); process.exit(1); });
