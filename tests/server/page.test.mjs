// The chat page at "/" in headless Chromium (Debian's chromium): a screenshot of the page as
// served (chromium --screenshot), then an interactive run with playwright-core: send a
// message, see thinking (collapsed) and a tool call (scripted model output), stop a long
// answer on the tiny model. Screenshots go to $DSV4_SCREENSHOT_DIR (default: a temp dir).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, dsmlCall, metrics, waitFor } from './helpers.mjs';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const OUT = process.env.DSV4_SCREENSHOT_DIR || fs.mkdtempSync(path.join(os.tmpdir(), 'dsv4-page-'));
fs.mkdirSync(OUT, { recursive: true });
const have = fs.existsSync(CHROMIUM);
const flags = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'];

const script = [{ match: 'weather', output: 'The user asks about the weather, so I should call the tool.</think>Let me check that for you.' +
  dsmlCall('get_weather', { city: 'Paris' }) + '<｜end▁of▁sentence｜>' }];

let scripted, real;
before(async () => {
  if (!have) return;
  scripted = await startServer([], { script });
  real = await startServer([]);
});
after(async () => { await scripted?.stop(); await real?.stop(); });

function pngOk(file) {
  const b = fs.readFileSync(file);
  return b.length > 1000 && b.subarray(1, 4).toString() === 'PNG';
}

test('chromium --screenshot of the page', { skip: !have && 'chromium not installed' }, () => {
  const file = path.join(OUT, 'page-empty.png');
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'chr-'));
  try {
    execFileSync(CHROMIUM, [...flags, `--user-data-dir=${profile}`,
      `--screenshot=${file}`, '--window-size=1000,700', '--virtual-time-budget=3000', scripted.url + '/'],
    { stdio: 'ignore', timeout: 60000 });
  } finally {
    fs.rmSync(profile, { recursive: true, force: true });
  }
  assert.ok(pngOk(file));
  console.log('# screenshot: ' + file);
});

test('chat page: streaming answer, collapsed thinking, tool call, stop button', { skip: !have && 'chromium not installed' }, async () => {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: flags.slice(1) });
  try {
    const page = await browser.newPage({ viewport: { width: 1000, height: 700 } });
    await page.goto(scripted.url + '/');
    await page.waitForFunction(() => document.getElementById('model').textContent === 'tiny');
    await page.click('#toolsbtn');
    await page.fill('#tools', JSON.stringify([{ type: 'function', function: { name: 'get_weather',
      parameters: { type: 'object', properties: { city: { type: 'string' } } } } }]));
    await page.click('#toolsbtn');
    await page.fill('#input', 'What is the weather in Paris?');
    await page.press('#input', 'Enter');
    await page.waitForSelector('.tool');
    await page.waitForFunction(() => !document.getElementById('send').disabled);
    const tool = await page.textContent('.tool');
    assert.match(tool, /get_weather\(\{"city": "Paris"\}\)/);
    const open = await page.$eval('details.thinking', (d) => d.open);
    assert.equal(open, false);
    const content = await page.textContent('.msg.assistant');
    assert.match(content, /Let me check that for you\./);
    assert.ok(!content.includes('DSML'));
    await page.click('details.thinking summary');  // expand to show it in the screenshot
    const file = path.join(OUT, 'page-chat.png');
    await page.screenshot({ path: file });
    assert.ok(pngOk(file));
    console.log('# screenshot: ' + file);

    // Stop button on a long answer from the tiny model.
    const p2 = await browser.newPage({ viewport: { width: 1000, height: 700 } });
    await p2.goto(real.url + '/');
    await p2.waitForFunction(() => document.getElementById('model').textContent === 'tiny');
    await p2.fill('#maxtok', '1500');
    await p2.fill('#input', 'Write a long story.');
    await p2.press('#input', 'Enter');
    await p2.waitForFunction(() => (document.querySelector('details.thinking div')?.textContent.length ?? 0) > 20);
    await p2.click('#stop');
    await p2.waitForFunction(() => document.querySelector('.meta')?.textContent.includes('stopped'));
    const ok = await waitFor(async () => (await metrics(real.url)).dsv4_requests_active === 0);
    assert.ok(ok, 'stopping in the page cancels the request');
    const file2 = path.join(OUT, 'page-stopped.png');
    await p2.screenshot({ path: file2 });
    console.log('# screenshot: ' + file2);
  } finally {
    await browser.close();
  }
});
