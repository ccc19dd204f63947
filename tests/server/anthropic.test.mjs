// dsv4 serve with the official `@anthropic-ai/sdk` client on the tiny model.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';
import { startServer, metrics, waitFor } from './helpers.mjs';

let srv, client;
before(async () => {
  srv = await startServer([]);
  client = new Anthropic({ baseURL: srv.url, apiKey: 'unused', maxRetries: 0 });
});
after(async () => { await srv?.stop(); });

const messages = [{ role: 'user', content: 'Say hello.' }];

test('messages.create (non-streaming)', async () => {
  const r = await client.messages.create({ model: 'tiny', max_tokens: 8, system: 'Be brief.', messages, temperature: 0 });
  assert.equal(r.type, 'message');
  assert.equal(r.role, 'assistant');
  assert.equal(r.stop_reason, 'max_tokens');
  assert.equal(r.usage.output_tokens, 8);
  assert.ok(r.usage.input_tokens > 0);
  assert.equal(r.content[0].type, 'text');
  assert.ok(r.content[0].text.length > 0);
});

test('streaming events and finalMessage equal the non-streaming answer', async () => {
  const args = { model: 'tiny', max_tokens: 10, messages, temperature: 0 };
  const full = await client.messages.create(args);
  const stream = client.messages.stream(args);
  const types = new Set();
  let text = '';
  stream.on('text', (t) => { text += t; });
  for await (const ev of stream) types.add(ev.type);
  const final = await stream.finalMessage();
  assert.ok(types.has('message_start') && types.has('content_block_delta') && types.has('message_stop'));
  assert.equal(text, full.content[0].text);
  assert.equal(final.content[0].text, full.content[0].text);
  assert.equal(final.stop_reason, 'max_tokens');
});

test('thinking enabled streams a thinking block', async () => {
  const r = await client.messages.create({ model: 'tiny', max_tokens: 8, messages, temperature: 1,
    thinking: { type: 'enabled', budget_tokens: 1024 } });
  assert.equal(r.content[0].type, 'thinking');
  assert.ok(r.content[0].thinking.length > 0);
});

test('count_tokens', async () => {
  const r = await client.messages.countTokens({ model: 'tiny', messages });
  assert.ok(r.input_tokens > 3);
});

test('errors in the Anthropic format', async () => {
  await assert.rejects(client.messages.create({ model: 'claude-3-opus', max_tokens: 5, messages }),
    (e) => e instanceof Anthropic.NotFoundError && e.error?.error?.type === 'not_found_error');
  await assert.rejects(client.messages.create({ model: 'tiny', max_tokens: 5, messages: [{ role: 'system', content: 'x' }] }),
    (e) => e instanceof Anthropic.BadRequestError && e.error?.error?.type === 'invalid_request_error');
});

test('cancellation mid-stream frees the session', async () => {
  const before = await metrics(srv.url);
  const stream = client.messages.stream({ model: 'tiny', max_tokens: 1500, messages, temperature: 0 });
  let n = 0;
  for await (const ev of stream) {
    if (ev.type === 'content_block_delta' && ++n >= 3) { stream.abort(); break; }
  }
  const ok = await waitFor(async () => {
    const m = await metrics(srv.url);
    return m.dsv4_requests_active === 0 && m.dsv4_client_disconnects_total > before.dsv4_client_disconnects_total;
  });
  assert.ok(ok);
});
