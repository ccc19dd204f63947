// dsv4 serve with the official `ollama` npm client on the tiny model.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Ollama } from 'ollama';
import { startServer, metrics, waitFor } from './helpers.mjs';

let srv, client;
before(async () => {
  srv = await startServer([]);
  client = new Ollama({ host: srv.url });
});
after(async () => { await srv?.stop(); });

const messages = [{ role: 'user', content: 'Say hello.' }];

test('list and version', async () => {
  const tags = await client.list();
  assert.equal(tags.models[0].name, 'tiny');
  const v = await client.version();
  assert.equal(typeof v.version, 'string');
});

test('chat (non-streaming and streaming agree)', async () => {
  const opts = { temperature: 0, num_predict: 10 };
  const r = await client.chat({ model: 'tiny', messages, options: opts, stream: false });
  assert.equal(r.done, true);
  assert.equal(r.done_reason, 'length');
  assert.equal(r.eval_count, 10);
  assert.ok(r.message.content.length > 0);
  const s = await client.chat({ model: 'tiny', messages, options: opts, stream: true });
  let text = '', last;
  for await (const part of s) { text += part.message.content; last = part; }
  assert.equal(text, r.message.content);
  assert.equal(last.done, true);
});

test('think: true gives message.thinking', async () => {
  const r = await client.chat({ model: 'tiny:latest', messages, think: true, options: { num_predict: 6 }, stream: false });
  assert.ok(r.message.thinking.length > 0);
});

test('generate', async () => {
  const r = await client.generate({ model: 'tiny', prompt: 'Once upon a time', options: { temperature: 0, num_predict: 6 }, stream: false });
  assert.equal(r.done, true);
  assert.ok(r.response.length > 0);
  const s = await client.generate({ model: 'tiny', prompt: 'Once upon a time', options: { temperature: 0, num_predict: 6 }, stream: true });
  let text = '';
  for await (const part of s) text += part.response;
  assert.equal(text, r.response);
});

test('unknown model is an error', async () => {
  await assert.rejects(client.chat({ model: 'llama3', messages, stream: false }), (e) => e.status_code === 404);
});

test('abort mid-stream frees the session', async () => {
  const before = await metrics(srv.url);
  const s = await client.chat({ model: 'tiny', messages, options: { num_predict: 1500 }, stream: true });
  let n = 0;
  try {
    for await (const part of s) { if (++n >= 3) s.abort(); }
  } catch (e) { /* AbortError */ }
  const ok = await waitFor(async () => {
    const m = await metrics(srv.url);
    return m.dsv4_requests_active === 0 && m.dsv4_client_disconnects_total > before.dsv4_client_disconnects_total;
  });
  assert.ok(ok);
});

test('preload request (empty messages / prompt) answers at once', async () => {
  const r = await fetch(srv.url + '/api/chat', { method: 'POST', body: JSON.stringify({ model: 'tiny', messages: [] }) });
  const j = await r.json();
  assert.equal(j.done, true);
  assert.equal(j.done_reason, 'load');
  const g = await client.generate({ model: 'tiny', prompt: '', stream: false });
  assert.equal(g.done_reason, 'load');
  const bad = await fetch(srv.url + '/api/generate', { method: 'POST', body: JSON.stringify({ model: 'nope' }) });
  assert.equal(bad.status, 404);
});
