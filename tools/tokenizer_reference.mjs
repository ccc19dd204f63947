#!/usr/bin/env node
// Independent reference tokenizer for the conformance tests and the benchmark: runs the
// npm package @lenml/tokenizers (a port of transformers.js) on a tokenizer.json.
//
//   node tools/tokenizer_reference.mjs encode --tokenizer FILE --in CORPUS.jsonl --out IDS.jsonl
//       each input line {"text": ...} -> one output line: the JSON array of its ids
//   node tools/tokenizer_reference.mjs text --tokenizer FILE "some text"
//       prints the ids of one string
//   node tools/tokenizer_reference.mjs bench --tokenizer FILE --in CORPUS.jsonl [--seconds S]
//       one thread, repeated passes over the corpus; prints the fastest pass as
//       "node_mb_per_s <x>" and the mean as "node_mean_mb_per_s <x>"
//
// Added tokens in the text are always matched (HF default). add_special_tokens is off.
//
// One deliberate adjustment: JavaScript's \s is not Unicode White_Space (it lacks U+0085 NEL
// and includes U+FEFF, which is not whitespace), while the official tokenizer (Oniguruma) uses
// White_Space. The reference is given the pre-tokenizer regex with \s / \S spelled as the
// explicit White_Space class (spec B.7), so it implements the official semantics.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const here = path.dirname(fileURLToPath(import.meta.url));
const npmRoot = path.join(here, "..", "third_party", "npm");
const require = createRequire(path.join(npmRoot, "package.json"));
const { TokenizerLoader } = require("@lenml/tokenizers");

const WS = "\\t\\n\\x0B\\x0C\\r \\x85\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000";

function fixWhitespace(re) {
  // Replace \s and \S outside character classes (the DeepSeek pattern has none inside).
  let out = "";
  let inClass = false;
  for (let i = 0; i < re.length; i++) {
    const c = re[i];
    if (c === "\\" && i + 1 < re.length) {
      const n = re[i + 1];
      if (!inClass && n === "s") out += `[${WS}]`;
      else if (!inClass && n === "S") out += `[^${WS}]`;
      else if (inClass && (n === "s" || n === "S")) throw new Error("\\s inside a class not supported");
      else out += c + n;
      i++;
      continue;
    }
    if (c === "[" && !inClass) inClass = true;
    else if (c === "]" && inClass) inClass = false;
    out += c;
  }
  return out;
}

function patchPreTokenizer(pt) {
  if (!pt) return pt;
  if (pt.type === "Sequence") return { ...pt, pretokenizers: pt.pretokenizers.map(patchPreTokenizer) };
  if (pt.type === "Split" && pt.pattern && pt.pattern.Regex !== undefined) {
    return { ...pt, pattern: { Regex: fixWhitespace(pt.pattern.Regex) } };
  }
  return pt;
}

export function loadReference(tokenizerPath) {
  const json = JSON.parse(fs.readFileSync(tokenizerPath, "utf8"));
  json.pre_tokenizer = patchPreTokenizer(json.pre_tokenizer);
  const cfgPath = path.join(path.dirname(tokenizerPath), "tokenizer_config.json");
  const config = fs.existsSync(cfgPath) ? JSON.parse(fs.readFileSync(cfgPath, "utf8")) : {};
  // Plain encoding: no BOS/EOS, no chat template, no clean-up.
  const tokenizerConfig = { ...config, add_bos_token: false, add_eos_token: false, chat_template: undefined };
  const origWarn = console.warn;
  console.warn = () => {};  // "Unknown tokenizer class" for PreTrainedTokenizerFast is expected
  try {
    return TokenizerLoader.fromPreTrained({ tokenizerJSON: json, tokenizerConfig });
  } finally {
    console.warn = origWarn;
  }
}

export function encodeText(tok, text) {
  return tok.encode(text, { add_special_tokens: false });
}

function parseArgs(argv) {
  const args = { _: [] };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i].startsWith("--")) args[argv[i].slice(2)] = argv[++i];
    else args._.push(argv[i]);
  }
  return args;
}

function readCorpus(file) {
  return fs.readFileSync(file, "utf8").split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l).text);
}

function main() {
  const [mode, ...rest] = process.argv.slice(2);
  const args = parseArgs(rest);
  if (!args.tokenizer) throw new Error("--tokenizer FILE is required");
  const tok = loadReference(args.tokenizer);
  if (mode === "text") {
    console.log(JSON.stringify(encodeText(tok, args._.join(" "))));
  } else if (mode === "encode") {
    const texts = readCorpus(args.in);
    const lines = texts.map((t) => JSON.stringify(encodeText(tok, t)));
    fs.writeFileSync(args.out, lines.join("\n") + "\n");
    const n = lines.reduce((a, l) => a + JSON.parse(l).length, 0);
    console.log(`[reference] ${texts.length} texts, ${n} tokens -> ${args.out}`);
  } else if (mode === "bench") {
    const texts = readCorpus(args.in);
    const bytes = texts.reduce((a, t) => a + Buffer.byteLength(t, "utf8"), 0);
    const seconds = Number(args.seconds ?? 5);
    let passes = 0, tokens = 0, best = Infinity;
    const t0 = process.hrtime.bigint();
    let elapsed = 0;
    while (elapsed < seconds || passes < 2) {
      const p0 = process.hrtime.bigint();
      for (const t of texts) tokens += encodeText(tok, t).length;
      best = Math.min(best, Number(process.hrtime.bigint() - p0) / 1e9);
      passes++;
      elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
    }
    console.log(`node_passes ${passes} bytes_per_pass ${bytes} tokens ${tokens / passes} seconds ${elapsed.toFixed(3)}`);
    console.log(`node_mean_mb_per_s ${((bytes * passes) / elapsed / 1e6).toFixed(3)}`);
    console.log(`node_mb_per_s ${(bytes / best / 1e6).toFixed(3)}`);
  } else {
    throw new Error(`unknown mode '${mode}' (encode | text | bench)`);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) main();
