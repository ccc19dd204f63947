// Shared helpers for the dsv4 serve node tests: start/stop a server on a free loopback port,
// make the tiny model (with the V4 test tokenizer) once, read /metrics.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = process.env.DSV4_BIN || path.join(ROOT, 'build/release/apps/cli/dsv4');
const TOKENIZER = process.env.DSV4_TOKENIZER || path.join(ROOT, 'third_party/npm/dsv4-tokenizer/tokenizer.json');

// The tiny checkpoint directory: $DSV4_TEST_MODEL, else made once under the OS temp dir.
export function tinyModel() {
  if (process.env.DSV4_TEST_MODEL) return process.env.DSV4_TEST_MODEL;
  const dir = path.join(os.tmpdir(), `dsv4-server-test-model-${process.getuid?.() ?? 0}`);
  if (!fs.existsSync(path.join(dir, 'config.json')) || !fs.existsSync(path.join(dir, 'tokenizer.json'))) {
    fs.rmSync(dir, { recursive: true, force: true });
    execFileSync(BIN, ['make-tiny', '--out', dir, '--tokenizer', TOKENIZER], { stdio: 'inherit' });
  }
  return dir;
}

// Starts `dsv4 serve` on 127.0.0.1 with a free port; resolves once it listens.
export async function startServer(extraArgs = [], { script } = {}) {
  const model = tinyModel();
  const args = ['serve', '--model', model, '--host', '127.0.0.1', '--port', '0', '--model-name', 'tiny',
                '--ctx', '2048', ...extraArgs];
  let scriptFile;
  if (script) {
    scriptFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'dsv4-script-')), 'script.json');
    fs.writeFileSync(scriptFile, JSON.stringify(script));
    args.push('--script', scriptFile);
  }
  const proc = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('server did not start:\n' + log)), 60000);
    proc.stderr.on('data', (d) => {
      log += d.toString();
      const m = log.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited with ${code}:\n${log}`)); });
  });
  proc.removeAllListeners('exit');
  const url = `http://127.0.0.1:${port}`;
  return {
    url, port, proc,
    log: () => log,
    async stop() {
      if (proc.exitCode === null) {
        const done = new Promise((r) => proc.on('exit', r));
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 10000);
        await done;
        clearTimeout(t);
      }
      if (scriptFile) fs.rmSync(path.dirname(scriptFile), { recursive: true, force: true });
    },
  };
}

// Parses Prometheus text into {name: value} (labels kept in the name).
export async function metrics(url, headers = {}) {
  const res = await fetch(url + '/metrics', { headers });
  const text = await res.text();
  const out = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out[line.slice(0, i)] = Number(line.slice(i + 1));
  }
  return out;
}

export async function waitFor(fn, ms = 10000, step = 50) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, step));
  }
}

// A DSML tool call as DeepSeek-V4 writes it (used by scripted-output tests).
export function dsmlCall(name, params) {
  let s = '\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name="' + name + '">\n';
  for (const [k, v] of Object.entries(params)) {
    const str = typeof v === 'string';
    s += `<｜DSML｜parameter name="${k}" string="${str}">${str ? v : JSON.stringify(v)}</｜DSML｜parameter>\n`;
  }
  return s + '</｜DSML｜invoke>\n</｜DSML｜tool_calls>';
}
