// dsv4 serve with the official `openai` npm client on the tiny model.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startServer, metrics, waitFor } from './helpers.mjs';

let srv, client;
before(async () => {
  srv = await startServer(['--parallel', '4']);
  client = new OpenAI({ baseURL: srv.url + '/v1', apiKey: 'unused', maxRetries: 0 });
});
after(async () => { await srv?.stop(); });

const msgs = [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Say hello.' }];

test('models list', async () => {
  const list = await client.models.list();
  const ids = [];
  for await (const m of list) ids.push(m.id);
  assert.deepEqual(ids, ['tiny']);
});

test('chat completion (non-streaming) with usage and reasoning_content', async () => {
  const r = await client.chat.completions.create({ model: 'tiny', messages: msgs, max_tokens: 8, temperature: 0 });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(r.usage.completion_tokens, 8);
  assert.ok(r.usage.prompt_tokens > 5);
  assert.equal(typeof r.usage.prompt_tokens_details.cached_tokens, 'number');
  // Thinking is on by default: a random model never closes </think>, so all text is reasoning.
  assert.equal(typeof r.choices[0].message.reasoning_content, 'string');
  assert.ok(r.choices[0].message.reasoning_content.length > 0);
});

test('thinking off puts the text in content', async () => {
  const r = await client.chat.completions.create({ model: 'tiny', messages: msgs, max_tokens: 6, temperature: 0,
    reasoning_effort: 'none' });
  assert.ok(r.choices[0].message.content.length > 0);
  assert.equal(r.choices[0].message.reasoning_content, undefined);
  const r2 = await client.chat.completions.create({ model: 'tiny', messages: msgs, max_tokens: 6, temperature: 0,
    chat_template_kwargs: { thinking: false } });
  assert.equal(r2.choices[0].message.content, r.choices[0].message.content);
});

test('streaming equals non-streaming (greedy), include_usage', async () => {
  const args = { model: 'tiny', messages: msgs, max_completion_tokens: 12, temperature: 0, reasoning_effort: 'none' };
  const full = await client.chat.completions.create(args);
  const stream = await client.chat.completions.create({ ...args, stream: true, stream_options: { include_usage: true } });
  let text = '', finish = null, usage = null, chunks = 0;
  for await (const c of stream) {
    chunks++;
    if (c.usage) usage = c.usage;
    if (c.choices[0]) {
      text += c.choices[0].delta.content ?? '';
      finish = c.choices[0].finish_reason ?? finish;
    }
  }
  assert.ok(chunks > 3);
  assert.equal(text, full.choices[0].message.content);
  assert.equal(finish, 'length');
  assert.equal(usage.completion_tokens, 12);
});

test('seeded sampling is reproducible; top_p and stop accepted', async () => {
  const args = { model: 'tiny', messages: msgs, max_tokens: 10, temperature: 0.9, top_p: 0.95, seed: 42,
    reasoning_effort: 'none' };
  const a = await client.chat.completions.create(args);
  const b = await client.chat.completions.create(args);
  assert.equal(a.choices[0].message.content, b.choices[0].message.content);
  const text = a.choices[0].message.content;
  const cut = text.slice(3, 6);
  if (cut.trim().length === 3) {
    const s = await client.chat.completions.create({ ...args, stop: [cut] });
    assert.equal(s.choices[0].finish_reason, 'stop');
    assert.equal(s.choices[0].message.content, text.slice(0, text.indexOf(cut)));
  }
});

test('logprobs / top_logprobs', async () => {
  const r = await client.chat.completions.create({ model: 'tiny', messages: msgs, max_tokens: 4, temperature: 0,
    logprobs: true, top_logprobs: 3 });
  const lp = r.choices[0].logprobs.content;
  assert.equal(lp.length, 4);
  for (const e of lp) {
    assert.equal(typeof e.token, 'string');
    assert.ok(e.logprob <= 0);
    assert.equal(e.top_logprobs.length, 3);
  }
});

test('legacy completions (streaming and not)', async () => {
  const r = await client.completions.create({ model: 'tiny', prompt: 'Once upon a time', max_tokens: 6, temperature: 0 });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.usage.completion_tokens, 6);
  const s = await client.completions.create({ model: 'tiny', prompt: 'Once upon a time', max_tokens: 6, temperature: 0, stream: true });
  let text = '';
  for await (const c of s) text += c.choices[0]?.text ?? '';
  assert.equal(text, r.choices[0].text);
});

test('responses API (streaming and not)', async () => {
  const r = await client.responses.create({ model: 'tiny', input: 'Say hello.', max_output_tokens: 8, temperature: 0,
    reasoning: { effort: 'none' } });
  assert.equal(r.object, 'response');
  assert.equal(r.status, 'incomplete');
  assert.ok(r.output_text.length > 0);
  const s = await client.responses.create({ model: 'tiny', input: 'Say hello.', max_output_tokens: 8, temperature: 0,
    reasoning: { effort: 'none' }, stream: true });
  let text = '', done = null;
  for await (const ev of s) {
    if (ev.type === 'response.output_text.delta') text += ev.delta;
    if (ev.type === 'response.incomplete' || ev.type === 'response.completed') done = ev.response;
  }
  assert.equal(text, r.output_text);
  assert.ok(done);
});

test('errors: unknown model 404, bad parameter 400', async () => {
  await assert.rejects(client.chat.completions.create({ model: 'gpt-4o', messages: msgs }),
    (e) => e instanceof OpenAI.NotFoundError && /does not exist/.test(e.message));
  await assert.rejects(client.chat.completions.create({ model: 'tiny', messages: msgs, temperature: 'hot' }),
    (e) => e instanceof OpenAI.BadRequestError && /temperature/.test(e.message));
  await assert.rejects(client.chat.completions.create({ model: 'tiny', messages: [] }),
    (e) => e instanceof OpenAI.BadRequestError);
});

test('concurrent requests: batched greedy output equals the output alone', async () => {
  const prompts = ['alpha beta', 'the quick brown fox', 'one two three four', 'lorem ipsum dolor'];
  const alone = [];
  for (const p of prompts) {
    const r = await client.completions.create({ model: 'tiny', prompt: p, max_tokens: 16, temperature: 0 });
    alone.push(r.choices[0].text);
  }
  const together = await Promise.all(prompts.map((p) =>
    client.completions.create({ model: 'tiny', prompt: p, max_tokens: 16, temperature: 0 })));
  assert.deepEqual(together.map((r) => r.choices[0].text), alone);
});

test('prefix cache: the next turn of a conversation hits the cache; output identical to a cache-off server', async () => {
  const history = [{ role: 'system', content: 'You are a helpful assistant. '.repeat(12) },
    { role: 'user', content: 'Tell me about the ocean and the mountains, in detail.' }];
  const args = { model: 'tiny', max_tokens: 12, temperature: 0, reasoning_effort: 'none' };
  const t1 = await client.chat.completions.create({ ...args, messages: history });
  const turn2 = [...history, { role: 'assistant', content: t1.choices[0].message.content },
    { role: 'user', content: 'And the rivers?' }];
  const hit = await client.chat.completions.create({ ...args, messages: turn2 });
  assert.ok(hit.usage.prompt_tokens_details.cached_tokens > 0, 'turn 2 should hit the prefix cache');
  const m = await metrics(srv.url);
  assert.ok(m.dsv4_prefix_cache_hits_total >= 1);
  const cold = await startServer(['--prefix-cache-mb', '0']);
  try {
    const c = new OpenAI({ baseURL: cold.url + '/v1', apiKey: 'unused', maxRetries: 0 });
    const miss = await c.chat.completions.create({ ...args, messages: turn2 });
    assert.equal(miss.usage.prompt_tokens_details.cached_tokens, 0);
    assert.equal(hit.choices[0].message.content, miss.choices[0].message.content);
  } finally {
    await cold.stop();
  }
});

test('cancellation mid-stream frees the session', async () => {
  const before = await metrics(srv.url);
  const stream = await client.chat.completions.create({ model: 'tiny', messages: msgs, max_tokens: 1500,
    temperature: 0, stream: true });
  let n = 0;
  for await (const c of stream) {
    if (++n >= 3) { stream.controller.abort(); break; }
  }
  const ok = await waitFor(async () => {
    const m = await metrics(srv.url);
    return m.dsv4_requests_active === 0 && m.dsv4_http_generations_in_flight === 0 &&
      m.dsv4_client_disconnects_total > before.dsv4_client_disconnects_total;
  });
  assert.ok(ok, 'stream was not cancelled');
});

test('a non-streaming client that goes away is cancelled too', async () => {
  const before = await metrics(srv.url);
  const ac = new AbortController();
  const p = fetch(srv.url + '/v1/chat/completions', { method: 'POST', signal: ac.signal,
    body: JSON.stringify({ model: 'tiny', messages: msgs, max_tokens: 1500 }) }).then((r) => r.text());
  await new Promise((r) => setTimeout(r, 700));
  ac.abort();
  await assert.rejects(p);
  const ok = await waitFor(async () => {
    const m = await metrics(srv.url);
    return m.dsv4_requests_active === 0 && m.dsv4_client_disconnects_total > before.dsv4_client_disconnects_total;
  }, 10000);
  assert.ok(ok, 'abandoned non-streaming request still running');
});
