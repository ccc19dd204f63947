// Tool calls and reasoning end to end with the official clients. A random tiny model never
// writes DSML, so this server plays back scripted model output (--script) at the runtime
// boundary: the request -> prompt mapping (tools rendered, tool results in the prompt) picks
// the scripted reply, and the reply -> response mapping is what the clients see.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { Ollama } from 'ollama';
import { startServer, dsmlCall } from './helpers.mjs';

const script = [
  // Second turn: the tool result is in the prompt (as a V4 tool_result block).
  { match: '<tool_result>sunny, 21 C</tool_result>', output: 'The tool says sunny.</think>It is sunny and 21 C in Paris.<｜end▁of▁sentence｜>' },
  // First turn: the tool schema was rendered into the system prompt and the user asks.
  { match: '"name": "get_weather"', output: 'The user wants the weather; call the tool.</think>Let me check.' +
      dsmlCall('get_weather', { city: 'Paris', days: 2 }) + '<｜end▁of▁sentence｜>' },
  { match: 'leak test', output: 'Plain answer.' + dsmlCall('get_weather', { city: 'Rome' }) + '<｜end▁of▁sentence｜>' },
];

const tools = [{ type: 'function', function: { name: 'get_weather', description: 'Weather for a city',
  parameters: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } }, required: ['city'] } } }];

let srv;
before(async () => { srv = await startServer([], { script }); });
after(async () => { await srv?.stop(); });

test('OpenAI: tool round trip (non-streaming), reasoning_content and tool_calls', async () => {
  const client = new OpenAI({ baseURL: srv.url + '/v1', apiKey: 'x', maxRetries: 0 });
  const messages = [{ role: 'user', content: 'What is the weather in Paris?' }];
  const r1 = await client.chat.completions.create({ model: 'tiny', messages, tools });
  const m1 = r1.choices[0].message;
  assert.equal(r1.choices[0].finish_reason, 'tool_calls');
  assert.equal(m1.reasoning_content, 'The user wants the weather; call the tool.');
  assert.equal(m1.content, 'Let me check.');
  assert.equal(m1.tool_calls.length, 1);
  assert.equal(m1.tool_calls[0].function.name, 'get_weather');
  assert.deepEqual(JSON.parse(m1.tool_calls[0].function.arguments), { city: 'Paris', days: 2 });
  assert.match(m1.tool_calls[0].id, /^call_[0-9a-f]{24}$/);
  messages.push(m1, { role: 'tool', tool_call_id: m1.tool_calls[0].id, content: 'sunny, 21 C' });
  const r2 = await client.chat.completions.create({ model: 'tiny', messages, tools });
  assert.equal(r2.choices[0].message.content, 'It is sunny and 21 C in Paris.');
  assert.equal(r2.choices[0].finish_reason, 'stop');
});

test('OpenAI: streamed tool_calls deltas, no DSML in the stream', async () => {
  const client = new OpenAI({ baseURL: srv.url + '/v1', apiKey: 'x', maxRetries: 0 });
  const stream = await client.chat.completions.create({ model: 'tiny', tools, stream: true,
    messages: [{ role: 'user', content: 'What is the weather in Paris?' }] });
  let reasoning = '', content = '', calls = [], finish, raw = '';
  for await (const c of stream) {
    raw += JSON.stringify(c);
    const d = c.choices[0]?.delta ?? {};
    reasoning += d.reasoning_content ?? '';
    content += d.content ?? '';
    for (const tc of d.tool_calls ?? []) calls.push(tc);
    finish = c.choices[0]?.finish_reason ?? finish;
  }
  assert.equal(reasoning, 'The user wants the weather; call the tool.');
  assert.equal(content, 'Let me check.');
  assert.equal(calls.length, 1);
  assert.equal(calls[0].index, 0);
  assert.equal(calls[0].function.name, 'get_weather');
  assert.equal(finish, 'tool_calls');
  assert.ok(!raw.includes('DSML') && !raw.includes('think>'));
  // The SDK's stream helper assembles the same message.
  const runner = client.chat.completions.stream({ model: 'tiny', tools, messages: [{ role: 'user', content: 'What is the weather in Paris?' }] });
  const final = await runner.finalChatCompletion();
  assert.deepEqual(JSON.parse(final.choices[0].message.tool_calls[0].function.arguments), { city: 'Paris', days: 2 });
});

test('OpenAI: without tools, DSML is never leaked into content', async () => {
  const client = new OpenAI({ baseURL: srv.url + '/v1', apiKey: 'x', maxRetries: 0 });
  const r = await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'leak test' }],
    reasoning_effort: 'none' });
  assert.equal(r.choices[0].message.content, 'Plain answer.');
  assert.equal(r.choices[0].message.tool_calls, undefined);
});

test('Anthropic: tool_use round trip with thinking, streaming', async () => {
  const client = new Anthropic({ baseURL: srv.url, apiKey: 'x', maxRetries: 0 });
  const atools = [{ name: 'get_weather', description: 'Weather for a city', input_schema: tools[0].function.parameters }];
  const messages = [{ role: 'user', content: 'What is the weather in Paris?' }];
  const stream = client.messages.stream({ model: 'tiny', max_tokens: 200, tools: atools, messages,
    thinking: { type: 'enabled', budget_tokens: 2048 } });
  const m1 = await stream.finalMessage();
  assert.deepEqual(m1.content.map((b) => b.type), ['thinking', 'text', 'tool_use']);
  assert.equal(m1.stop_reason, 'tool_use');
  const use = m1.content[2];
  assert.deepEqual(use.input, { city: 'Paris', days: 2 });
  messages.push({ role: 'assistant', content: m1.content },
    { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'sunny, 21 C' }] });
  const m2 = await client.messages.create({ model: 'tiny', max_tokens: 200, tools: atools, messages,
    thinking: { type: 'enabled', budget_tokens: 2048 } });
  assert.equal(m2.content.at(-1).text, 'It is sunny and 21 C in Paris.');
  assert.equal(m2.stop_reason, 'end_turn');
});

test('Ollama: tool_calls round trip', async () => {
  const client = new Ollama({ host: srv.url });
  const messages = [{ role: 'user', content: 'What is the weather in Paris?' }];
  const r1 = await client.chat({ model: 'tiny', messages, tools, think: true, stream: false });
  assert.equal(r1.message.thinking, 'The user wants the weather; call the tool.');
  assert.deepEqual(r1.message.tool_calls[0].function, { name: 'get_weather', arguments: { city: 'Paris', days: 2 } });
  messages.push(r1.message, { role: 'tool', content: 'sunny, 21 C', tool_name: 'get_weather' });
  const r2 = await client.chat({ model: 'tiny', messages, tools, think: true, stream: true });
  let text = '';
  for await (const p of r2) text += p.message.content;
  assert.equal(text, 'It is sunny and 21 C in Paris.');
});

test('OpenAI Responses: streamed reasoning + function call through the SDK accumulator, round trip', async () => {
  const client = new OpenAI({ baseURL: srv.url + '/v1', apiKey: 'x', maxRetries: 0 });
  const rtools = [{ type: 'function', name: 'get_weather', description: 'Weather for a city',
    parameters: tools[0].function.parameters }];
  const stream = client.responses.stream({ model: 'tiny', input: 'What is the weather in Paris?', tools: rtools });
  for await (const ev of stream) assert.ok(!JSON.stringify(ev).includes('DSML'));
  const r1 = await stream.finalResponse();
  assert.deepEqual(r1.output.map((o) => o.type), ['reasoning', 'message', 'function_call']);
  assert.equal(r1.output[0].content[0].text, 'The user wants the weather; call the tool.');
  assert.equal(r1.output_text, 'Let me check.');
  const call = r1.output[2];
  assert.deepEqual(JSON.parse(call.arguments), { city: 'Paris', days: 2 });
  const r2 = await client.responses.create({ model: 'tiny', tools: rtools, input: [
    { role: 'user', content: 'What is the weather in Paris?' }, ...r1.output,
    { type: 'function_call_output', call_id: call.call_id, output: 'sunny, 21 C' }] });
  assert.equal(r2.output_text, 'It is sunny and 21 C in Paris.');
});
