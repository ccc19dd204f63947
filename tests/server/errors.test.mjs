// Bad input and authentication: each answered with the right status code, in the API's own
// error format, and the server keeps serving.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { Ollama } from 'ollama';
import { startServer } from './helpers.mjs';

let srv;
before(async () => { srv = await startServer(['--max-body', '65536']); });
after(async () => { await srv?.stop(); });

async function post(path, body, headers = {}) {
  const res = await fetch(srv.url + path, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, json, text };
}

const good = JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });

test('malformed JSON -> 400 in each format', async () => {
  let r = await post('/v1/chat/completions', '{"model": "tiny", "messages": [');
  assert.equal(r.status, 400);
  assert.match(r.json.error.message, /malformed JSON/);
  assert.equal(r.json.error.type, 'invalid_request_error');
  r = await post('/v1/messages', '{oops');
  assert.equal(r.status, 400);
  assert.equal(r.json.type, 'error');
  assert.equal(r.json.error.type, 'invalid_request_error');
  r = await post('/api/chat', 'not json');
  assert.equal(r.status, 400);
  assert.equal(typeof r.json.error, 'string');
});

test('wrong types -> 400 naming the field', async () => {
  const cases = [
    [{ model: 'tiny', messages: 'hello' }, /messages/],
    [{ model: 'tiny', messages: [{ role: 'user', content: 'x' }], max_tokens: 'ten' }, /max_tokens/],
    [{ model: 'tiny', messages: [{ role: 'user', content: 'x' }], stream: 'yes' }, /stream/],
    [{ model: 'tiny', messages: [{ role: 'user', content: 'x' }], temperature: 5 }, /temperature/],
    [{ model: 'tiny', messages: [{ role: 'user', content: 'x' }], tools: {} }, /tools/],
    [{ model: 42, messages: [{ role: 'user', content: 'x' }] }, /model/],
    [{ model: 'tiny', messages: [{ role: 'user', content: 'x' }], max_tokens: -1 }, /max_tokens/],
  ];
  for (const [body, re] of cases) {
    const r = await post('/v1/chat/completions', JSON.stringify(body));
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.match(r.json.error.message, re);
  }
  const a = await post('/v1/messages', JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: 'x' }] }));
  assert.equal(a.status, 400);
  assert.match(a.json.error.message, /max_tokens/);
});

test('huge body -> 413', async () => {
  const big = JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: 'x'.repeat(200000) }] });
  const r = await post('/v1/chat/completions', big);
  assert.equal(r.status, 413);
});

test('invalid UTF-8 -> 400', async () => {
  const bytes = Buffer.concat([Buffer.from('{"model":"tiny","messages":[{"role":"user","content":"'),
    Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('"}]}')]);
  const r = await post('/v1/chat/completions', bytes);
  assert.equal(r.status, 400);
});

test('unknown model -> 404, unknown endpoint -> 404', async () => {
  const r = await post('/v1/chat/completions', JSON.stringify({ model: 'gpt-5', messages: [{ role: 'user', content: 'x' }] }));
  assert.equal(r.status, 404);
  assert.equal(r.json.error.code, 'model_not_found');
  const o = await post('/api/generate', JSON.stringify({ model: 'mistral', prompt: 'x' }));
  assert.equal(o.status, 404);
  const e = await post('/v1/nothing', good);
  assert.equal(e.status, 404);
});

test('prompt longer than the context -> 400 context_length_exceeded', async () => {
  const r = await post('/v1/chat/completions', JSON.stringify({ model: 'tiny',
    messages: [{ role: 'user', content: 'word '.repeat(3000) }] }));
  assert.equal(r.status, 400);
  assert.equal(r.json.error.code, 'context_length_exceeded');
});

test('server still healthy after bad input', async () => {
  const r = await post('/v1/chat/completions', good);
  assert.equal(r.status, 200);
  const h = await fetch(srv.url + '/health');
  assert.equal((await h.json()).status, 'ok');
});

test('API key: missing / wrong -> 401, right key (Bearer or x-api-key) works', async () => {
  const keyed = await startServer(['--api-key', 'sekret']);
  try {
    let r = await fetch(keyed.url + '/v1/chat/completions', { method: 'POST', body: good });
    assert.equal(r.status, 401);
    r = await fetch(keyed.url + '/v1/messages', { method: 'POST', body: good });
    assert.equal(r.status, 401);
    assert.equal((await r.json()).error.type, 'authentication_error');
    r = await fetch(keyed.url + '/health');
    assert.equal(r.status, 200);
    const bad = new OpenAI({ baseURL: keyed.url + '/v1', apiKey: 'wrong', maxRetries: 0 });
    await assert.rejects(bad.models.list(), (e) => e instanceof OpenAI.AuthenticationError);
    const ok = new OpenAI({ baseURL: keyed.url + '/v1', apiKey: 'sekret', maxRetries: 0 });
    const c = await ok.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
    assert.equal(c.usage.completion_tokens, 2);
    const an = new Anthropic({ baseURL: keyed.url, apiKey: 'sekret', maxRetries: 0 });
    const m = await an.messages.create({ model: 'tiny', max_tokens: 2, messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(m.usage.output_tokens, 2);
    const badA = new Anthropic({ baseURL: keyed.url, apiKey: 'nope', maxRetries: 0 });
    await assert.rejects(badA.messages.create({ model: 'tiny', max_tokens: 2, messages: [{ role: 'user', content: 'hi' }] }),
      (e) => e instanceof Anthropic.AuthenticationError);
    const ol = new Ollama({ host: keyed.url, headers: { Authorization: 'Bearer sekret' } });
    const g = await ol.generate({ model: 'tiny', prompt: 'hi', options: { num_predict: 2 }, stream: false });
    assert.equal(g.eval_count, 2);
    const olBad = new Ollama({ host: keyed.url });
    await assert.rejects(olBad.generate({ model: 'tiny', prompt: 'hi', stream: false }), (e) => e.status_code === 401);
  } finally {
    await keyed.stop();
  }
});

test('SIGTERM during a long stream shuts down promptly', async () => {
  const s = await startServer([]);
  const client = new OpenAI({ baseURL: s.url + '/v1', apiKey: 'x', maxRetries: 0 });
  const stream = await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'go' }],
    max_tokens: 1800, stream: true });
  const it = stream[Symbol.asyncIterator]();
  await it.next();
  const t0 = Date.now();
  const exited = new Promise((r) => s.proc.on('exit', (code) => r(code)));
  s.proc.kill('SIGTERM');
  const code = await exited;
  assert.equal(code, 0);
  assert.ok(Date.now() - t0 < 5000, 'shutdown took too long');
  try { while (!(await it.next()).done); } catch { /* connection closed */ }
});

test('CORS: no cross-origin access unless --cors names the origin', async () => {
  let r = await fetch(srv.url + '/v1/models', { headers: { Origin: 'https://evil.example' } });
  assert.equal(r.headers.get('access-control-allow-origin'), null);
  const s = await startServer(['--cors', 'http://localhost:3000']);
  try {
    r = await fetch(s.url + '/v1/models', { headers: { Origin: 'http://localhost:3000' } });
    assert.equal(r.headers.get('access-control-allow-origin'), 'http://localhost:3000');
    r = await fetch(s.url + '/v1/chat/completions', { method: 'OPTIONS', headers: { Origin: 'http://localhost:3000',
      'Access-Control-Request-Method': 'POST' } });
    assert.ok(r.status === 204 || r.status === 200);
    assert.equal(r.headers.get('access-control-allow-origin'), 'http://localhost:3000');
    r = await fetch(s.url + '/v1/models', { headers: { Origin: 'https://evil.example' } });
    assert.equal(r.headers.get('access-control-allow-origin'), null);
  } finally {
    await s.stop();
  }
});
