// Bounded load test (loopback only, fixed duration): many concurrent streaming clients, a
// third of them disconnecting early, a few non-streaming ones. Afterwards: no crash, no
// leaked session (/metrics: 0 active, 0 queued, 0 in flight) and the server's resident memory
// back near its idle level. Duration: $DSV4_LOAD_SECONDS (default 15), clients:
// $DSV4_LOAD_CLIENTS (default 32).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import OpenAI from 'openai';
import { startServer, metrics, waitFor } from './helpers.mjs';

const SECONDS = Number(process.env.DSV4_LOAD_SECONDS || 15);
const CLIENTS = Number(process.env.DSV4_LOAD_CLIENTS || 32);
const CACHE_MB = 32;

let srv;
before(async () => { srv = await startServer(['--parallel', '8', '--queue', '64', '--prefix-cache-mb', String(CACHE_MB), '--quiet']); });
after(async () => { await srv?.stop(); });

function rssMB(pid) {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(s.match(/VmRSS:\s+(\d+)/)[1]) / 1024;
}

test(`load: ${CLIENTS} clients for ${SECONDS} s`, { timeout: (SECONDS + 120) * 1000 }, async () => {
  const client = new OpenAI({ baseURL: srv.url + '/v1', apiKey: 'x', maxRetries: 0, timeout: 120000 });
  // Warm up (allocations of a first batch), then take the idle level.
  await Promise.all([...Array(8)].map((_, i) => client.chat.completions.create({ model: 'tiny',
    messages: [{ role: 'user', content: `warm up ${i}` }], max_tokens: 32 })));
  await new Promise((r) => setTimeout(r, 500));
  const idle = rssMB(srv.proc.pid);
  const stats = { ok: 0, aborted: 0, rejected: 0, errors: 0, tokens: 0, chunks: 0 };
  const end = Date.now() + SECONDS * 1000;
  const t0 = Date.now();
  let peak = idle;
  const sampler = setInterval(() => { peak = Math.max(peak, rssMB(srv.proc.pid)); }, 200);
  async function worker(id) {
    let n = 0;
    while (Date.now() < end) {
      n++;
      const kind = (id + n) % 6;  // 0,1: disconnect early; 2: non-streaming; else stream to the end
      const body = { model: 'tiny', max_tokens: 8 + ((id * 7 + n * 13) % 56), temperature: 0.8, seed: id * 1000 + n,
        messages: [{ role: 'user', content: `client ${id} request ${n}: tell me something ` + 'x '.repeat(id % 20) }] };
      try {
        if (kind === 2) {
          const r = await client.chat.completions.create(body);
          stats.tokens += r.usage.completion_tokens;
          stats.ok++;
          continue;
        }
        const stream = await client.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } });
        let k = 0;
        for await (const c of stream) {
          stats.chunks++;
          if (c.usage) stats.tokens += c.usage.completion_tokens;
          if (kind < 2 && ++k >= 3) { stream.controller.abort(); break; }
        }
        if (kind < 2) stats.aborted++; else stats.ok++;
      } catch (e) {
        if (e instanceof OpenAI.RateLimitError) stats.rejected++;
        else if (e.name === 'AbortError' || e instanceof OpenAI.APIUserAbortError) stats.aborted++;
        else { stats.errors++; console.log('# error: ' + e.message); }
      }
    }
  }
  await Promise.all([...Array(CLIENTS)].map((_, i) => worker(i)));
  clearInterval(sampler);
  const elapsed = (Date.now() - t0) / 1000;
  assert.equal(srv.proc.exitCode, null, 'server crashed:\n' + srv.log());
  const clean = await waitFor(async () => {
    const m = await metrics(srv.url);
    return m.dsv4_requests_active === 0 && m.dsv4_requests_queued === 0 && m.dsv4_http_generations_in_flight === 0 ? m : null;
  }, 20000, 100);
  assert.ok(clean, 'sessions leaked: ' + JSON.stringify(await metrics(srv.url)));
  await new Promise((r) => setTimeout(r, 1000));
  const after = rssMB(srv.proc.pid);
  const cacheMB = clean.dsv4_prefix_cache_bytes / 1048576;
  console.log(`# load: ${CLIENTS} clients, ${elapsed.toFixed(1)} s: ${stats.ok} completed, ${stats.aborted} disconnected early, ` +
    `${stats.rejected} rejected (429), ${stats.errors} errors; ${stats.tokens} tokens (${(stats.tokens / elapsed).toFixed(1)} tok/s in finished requests), ` +
    `${stats.chunks} chunks`);
  console.log(`# memory: idle ${idle.toFixed(1)} MB, peak ${peak.toFixed(1)} MB, after ${after.toFixed(1)} MB ` +
    `(prefix cache holds ${cacheMB.toFixed(1)} MB); disconnects seen by the server: ${clean.dsv4_client_disconnects_total}`);
  assert.equal(stats.errors, 0);
  assert.ok(stats.ok > CLIENTS, 'too few requests completed');
  assert.ok(clean.dsv4_client_disconnects_total >= 1);
  // Back near idle: the prefix cache budget plus 25% slack for allocator caching.
  assert.ok(after <= idle * 1.25 + CACHE_MB + 16, `RSS ${after.toFixed(1)} MB not back near idle ${idle.toFixed(1)} MB`);
  // Still serving.
  const r = await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'still there?' }], max_tokens: 4 });
  assert.equal(r.usage.completion_tokens, 4);
});
