#!/usr/bin/env python3
"""Generates the tokenizer conformance corpus deterministically (no downloads).

Writes tests/data/tokenizer/corpus/corpus.jsonl: one {"text": ...} object per line, about
300 KB of UTF-8 text in total, mixing source code, English prose, CJK, Cyrillic, Arabic,
Devanagari and other scripts, emoji (skin tones, ZWJ sequences, flags, keycaps), digit runs,
every Unicode White_Space character, CRLF, format characters, long pieces, added-token
strings and random assigned code points.

The expected ids are produced separately by the independent reference
(tools/tokenizer_reference.mjs, see tools/tokenizer_update_corpus.sh).

Random code points are restricted to characters assigned in Unicode 14.0 (the tables of the
PCRE2 10.42 that Debian 12 ships); run with a Python whose unicodedata is 14.0 (3.11).
Usage: python3 tools/tokenizer_make_corpus.py [out.jsonl]
"""
import json
import os
import sys
import unicodedata


class Rng:
    """xorshift64*: stable across Python versions (unlike relying on library internals)."""

    def __init__(self, seed):
        self.s = seed & 0xFFFFFFFFFFFFFFFF or 1

    def next(self):
        x = self.s
        x ^= (x >> 12)
        x ^= (x << 25) & 0xFFFFFFFFFFFFFFFF
        x ^= (x >> 27)
        self.s = x
        return (x * 0x2545F4914F6CDD1D) & 0xFFFFFFFFFFFFFFFF

    def below(self, n):
        return self.next() % n

    def choice(self, seq):
        return seq[self.below(len(seq))]

    def chance(self, p):
        return self.below(1_000_000) < int(p * 1_000_000)

    def range(self, lo, hi):  # inclusive
        return lo + self.below(hi - lo + 1)


R = Rng(0xD5E4_2026_0001)

EN_WORDS = """the of and to in is was that for it with as on be at by this had not are but from or
have an they which one you were her all she there would their we him been has when who will more
no if out so said what up its about into than them can only other new some could time these two
may then do first any my now such like our over man me even most made after also did many before
must through back years where much your way well down should because each just those people how
too little state good very make world still own see men work long get here between both life
being under never day same another know while last might us great old year off come since
against go came right used take three tokenizer engine inference attention latency throughput
kernel memory compressed sparse expert router gradient checkpoint weights quantized streaming
decoder encoder vocabulary merges Unicode surrogate whitespace punctuation Paris London Tokyo
Berlin Nairobi Lima Mumbai DeepSeek GPU CPU AVX-512 HTTP/2 JSON UTF-8 e.g. i.e. etc. Mr. Dr.
don't it's we're they've I'm you'll he'd can't won't O'Brien""".split()

RU_WORDS = """и в не на я быть он с что а по это она этот к но они мы как из у который то за
свой что весь год от так о для ты же все тот мочь вы человек такой его сказать только или
еще бы себя один как уже до время если сам когда другой вот говорить наш мой знать стать при
чтобы дело жизнь кто первый очень два день её новый рука даже во со раз где там под можно
ну какой после их работа без самый потом надо хотеть ли слово идти большой должен место иметь
ничто токенизатор модель внимание память Москва Санкт-Петербург Ёлка ЁЖИК съезд""".split()

UK_WORDS = "ґанок їжак європа Київ Львів щастя дякую будь ласка".split()

AR_WORDS = """في من على إلى عن مع هذا هذه الذي التي كان كانت يكون قال بين كل بعد عند لم لن
قد ما لا هو هي هم نحن أنا أنت العربية اللغة الكتاب المدرسة الحاسوب الذكاء الاصطناعي
مُحَمَّد السَّلَامُ عَلَيْكُمْ شُكْرًا القاهرة بيروت""".split()

HI_WORDS = """और के है में की को से एक यह पर कि भी नहीं तो था हैं लिए कर ही जो हो गया किया
मैं आप हम वह इस उस कुछ अपने भारत हिन्दी भाषा नमस्ते धन्यवाद क्षत्रिय ज्ञान श्री
प्रधानमंत्री विद्यालय कृष्ण""".split()

ZH_PHRASES = """你好 世界 我们 中国 北京 上海 人工智能 机器学习 深度求索 模型 推理 引擎 分词器
今天天气很好 这是一个测试 请问你叫什么名字 谢谢 没问题 自然语言处理 计算机 程序员 数据
龘 靐 齉 鬱 〇 々""".split()

JA_PHRASES = """こんにちは ありがとう ございます 日本語 東京 カタカナ ひらがな コンピューター
トークナイザー ラーメン すし さようなら おはよう 漢字 ｶﾀｶﾅ ー ヴ ゐ ゑ""".split()

KO_PHRASES = "안녕하세요 감사합니다 서울 한국어 토크나이저 컴퓨터 사랑해요".split()

GREEK = "Καλημέρα κόσμε Ελληνικά αλφάβητο ΑΒΓΔ ωμέγα ἀρχή ῥήτωρ".split()
HEBREW = "שלום עולם עִבְרִית תודה ירושלים".split()
THAI = "สวัสดี ภาษาไทย ขอบคุณ กรุงเทพ".split()
OTHER = "Ջերմուկ ქართული ሰላም ສະບາຍດີ ខ្មែរ ᠮᠣᠩᠭᠣᠯ ᏣᎳᎩ Ꭰ ⴰⵣⵓⵍ".split()

EMOJI = ["😀", "😂", "🥲", "❤️", "👍", "👍🏽", "👋🏿", "🙏", "🔥", "✨", "🌍", "🌏", "🚀",
         "👨‍👩‍👧‍👦", "👩‍💻", "👨🏻‍🔬", "🧑‍🤝‍🧑", "🏳️‍🌈", "🏴‍☠️", "❤️‍🔥",
         "👁️‍🗨️", "🇫🇷", "🇯🇵", "🇺🇸", "🇮🇳", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "1️⃣", "#️⃣", "*️⃣", "©️", "™️",
         "☺️", "✌🏼", "🤷‍♀️", "🙋🏾‍♂️", "🐈‍⬛", "🐻‍❄️", "👩‍❤️‍💋‍👨", "🧔🏻‍♀️", "🫠",
         "😶‍🌫️", "💁‍♂️"]

WHITESPACE = ["\t", "\n", "\x0b", "\x0c", "\r", " ", "\x85", "\xa0", "\u1680", "\u2000",
              "\u2001", "\u2002", "\u2003", "\u2004", "\u2005", "\u2006", "\u2007", "\u2008",
              "\u2009", "\u200a", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000", "\r\n"]
# Characters that look like whitespace but are not White_Space.
NOT_WS = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u180e", "\u00ad"]

ADDED = ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>",
         "<think>", "</think>", "｜DSML｜", "<｜tool▁calls▁begin｜>", "<|EOT|>",
         "<｜place▁holder▁no▁7｜>", "<｜fim▁hole｜>", "<｜latest_reminder｜>", "<｜query｜>",
         "<｜User", "<think", "｜DSML", "<｜tool▁call▁begin｜>"]

PUNCT = list(".,;:!?-—–()[]{}<>\"'`~@#$%^&*_=+|\\/") + ["...", "…", "«", "»", "“", "”", "‘", "’",
                                                        "¿", "¡", "§", "¶", "•", "†", "‰", "€",
                                                        "£", "¥", "₹", "°", "±", "×", "÷", "→",
                                                        "⇒", "∀", "∑", "√", "∞", "≠", "≤", "≥",
                                                        "。", "，", "、", "！", "？", "：", "；",
                                                        "「", "」", "『", "』", "（", "）", "【",
                                                        "】", "《", "》", "〜", "・"]

DIGITS_OTHER = ["٠١٢٣٤٥٦٧٨٩", "۰۱۲۳۴۵۶۷۸۹", "०१२३४५६७८९", "０１２３４５６７８９", "²³¹",
                "½¼¾", "ⅠⅡⅢⅣⅫ", "①②③", "𝟘𝟙𝟚", "๐๑๒", "〡〢〣", "߀߁߂"]

CODE_SNIPPETS = [
    """#include <vector>\n#include <cstdint>\n\nint32_t sum(const std::vector<int32_t>& v) {\n  int32_t s = 0;\n  for (size_t i = 0; i < v.size(); ++i) s += v[i];\n  return s;\n}\n""",
    """def tokenize(text: str, *, allow_special=False) -> list[int]:\n    \"\"\"Encode text.\"\"\"\n    if not text:\n        return []\n    return [ord(c) % 256 for c in text]  # toy\n\n\nprint(tokenize('héllo'))\n""",
    """const fetchData = async (url) => {\n\tconst res = await fetch(url, { method: 'GET' });\n\tif (!res.ok) throw new Error(`HTTP ${res.status}`);\n\treturn res.json();\n};\n""",
    """{\n  "model": "deepseek-v4",\n  "messages": [{"role": "user", "content": "Hi!"}],\n  "temperature": 0.7,\n  "max_tokens": 1024,\n  "stream": true\n}\n""",
    """#!/usr/bin/env bash\nset -euo pipefail\nfor f in *.txt; do\n  wc -l \"$f\" | awk '{print $1}' >> counts.log\ndone\necho \"done: $(date +%s)\"\n""",
    """<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>Test &amp; demo</title></head>\n<body class=\"main\">\n  <p id='x'>Hello&nbsp;world</p>\n</body>\n</html>\n""",
    """SELECT u.id, COUNT(*) AS n\nFROM users u\nLEFT JOIN orders o ON o.user_id = u.id\nWHERE u.created_at >= '2024-01-01'\nGROUP BY u.id\nHAVING n > 10;\n""",
    """fn main() {\n    let xs: Vec<u64> = (1..=10).map(|x| x * x).collect();\n    println!(\"{:?}\", xs);\n    let s = String::from(\"ünïcödé\");\n}\n""",
    """package main\n\nimport \"fmt\"\n\nfunc main() {\n\tm := map[string]int{\"a\": 1, \"b\": 2}\n\tfor k, v := range m {\n\t\tfmt.Printf(\"%s=%d\\n\", k, v)\n\t}\n}\n""",
    """\\documentclass{article}\n\\begin{document}\n$$\\sum_{i=1}^{n} i = \\frac{n(n+1)}{2}$$\n\\end{document}\n""",
    """# Heading\n\n* item one\n* item **two** with `code`\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n> quote\n\n```python\nx = [1, 2, 3]\n```\n""",
    """diff --git a/x.c b/x.c\n@@ -1,3 +1,4 @@\n-int a = 0;\n+int a = 1;\n+int b = a << 2;\n /* unchanged */\n""",
]


def words(lst, n, sep=" "):
    return sep.join(R.choice(lst) for _ in range(n))


def english():
    out = []
    for _ in range(R.range(1, 6)):
        w = [R.choice(EN_WORDS) for _ in range(R.range(4, 18))]
        w[0] = w[0].capitalize()
        s = " ".join(w)
        if R.chance(0.3):
            s += ", " + " ".join(R.choice(EN_WORDS) for _ in range(R.range(2, 8)))
        if R.chance(0.2):
            s += f" ({R.range(1, 2025)})"
        if R.chance(0.15):
            s = f'"{s}"'
        out.append(s + R.choice([".", ".", ".", "!", "?", "...", ":", ";"]))
    return R.choice([" ", "  ", "\n", "\n\n"]).join(out)


def digits():
    parts = []
    for _ in range(R.range(3, 12)):
        k = R.below(9)
        if k == 0:
            parts.append("".join(str(R.below(10)) for _ in range(R.range(1, 40))))
        elif k == 1:
            parts.append(f"{R.range(0, 99999)}.{R.range(0, 9999)}")
        elif k == 2:
            parts.append(f"+1-{R.range(200, 999)}-{R.range(100, 999)}-{R.range(1000, 9999)}")
        elif k == 3:
            parts.append(R.choice(DIGITS_OTHER))
        elif k == 4:
            parts.append(f"v{R.range(0, 9)}.{R.range(0, 20)}.{R.range(0, 300)}")
        elif k == 5:
            parts.append(f"0x{R.next():016X}"[: R.range(3, 18)])
        elif k == 6:
            parts.append(f"{R.range(1, 12):02d}/{R.range(1, 28):02d}/{R.range(1900, 2100)}")
        elif k == 7:
            parts.append(R.choice(EN_WORDS) + str(R.range(0, 9999)) + R.choice(EN_WORDS))
        else:
            parts.append(f"{R.range(1, 10**9):,}")
    return R.choice([" ", ", ", "\n", "\t", ""]).join(parts)


def whitespace_doc():
    out = []
    for _ in range(R.range(5, 25)):
        k = R.below(6)
        if k == 0:
            out.append("".join(R.choice(WHITESPACE) for _ in range(R.range(1, 8))))
        elif k == 1:
            out.append(R.choice(NOT_WS))
        elif k == 2:
            out.append(" " * R.range(1, 40))
        elif k == 3:
            out.append("\r\n" * R.range(1, 4))
        else:
            out.append(R.choice(EN_WORDS + RU_WORDS + ZH_PHRASES + PUNCT))
    return "".join(out)


def cjk():
    out = []
    for _ in range(R.range(3, 20)):
        k = R.below(8)
        if k < 3:
            out.append(R.choice(ZH_PHRASES))
        elif k == 3:
            out.append("".join(chr(R.range(0x4E00, 0x9FA5)) for _ in range(R.range(1, 12))))
        elif k == 4:
            out.append(R.choice(JA_PHRASES))
        elif k == 5:
            out.append(R.choice(KO_PHRASES))
        elif k == 6:
            out.append(R.choice(["。", "，", "、", "！", "？", "「", "」", "：", " ", "\n", "（", "）"]))
        else:
            out.append(str(R.range(0, 2030)) + R.choice(["年", "月", "日", "个", "円"]))
    return "".join(out)


def script_doc(lst, sep=" "):
    s = words(lst, R.range(5, 40), sep)
    if R.chance(0.4):
        s += R.choice([".", "!", "?", "،", "؟", "।", "॥"])
    if R.chance(0.3):
        s += " " + str(R.range(0, 10**6))
    return s


def emoji_doc():
    out = []
    for _ in range(R.range(3, 20)):
        k = R.below(4)
        if k < 2:
            out.append(R.choice(EMOJI))
        elif k == 2:
            out.append(" " + R.choice(EN_WORDS))
        else:
            out.append(R.choice([" ", "", "\n", "!", "!!", "..."]))
    return "".join(out)


def code_doc():
    s = R.choice(CODE_SNIPPETS)
    if R.chance(0.5):
        s = s.replace("\n", "\r\n")
    if R.chance(0.3):
        s = s.replace("  ", "\t")
    if R.chance(0.3):
        s += "\n// " + english()
    return s


# Random assigned code points (Unicode 14), from a spread of blocks.
BLOCKS = [(0x20, 0x7E), (0xA0, 0x24F), (0x250, 0x36F), (0x370, 0x3FF), (0x400, 0x52F),
          (0x530, 0x58F), (0x590, 0x5FF), (0x600, 0x6FF), (0x700, 0x74F), (0x780, 0x7BF),
          (0x900, 0x97F), (0x980, 0x9FF), (0xA00, 0xA7F), (0xB80, 0xBFF), (0xE00, 0xE7F),
          (0xF00, 0xFFF), (0x10A0, 0x10FF), (0x1100, 0x11FF), (0x1200, 0x137F),
          (0x1E00, 0x1EFF), (0x2000, 0x206F), (0x20A0, 0x20CF), (0x2100, 0x214F),
          (0x2190, 0x21FF), (0x2200, 0x22FF), (0x2300, 0x23FF), (0x2500, 0x257F),
          (0x25A0, 0x25FF), (0x2600, 0x26FF), (0x2700, 0x27BF), (0x2E80, 0x2EFF),
          (0x3000, 0x303F), (0x3040, 0x30FF), (0x3100, 0x312F), (0x3400, 0x4DBF),
          (0x4E00, 0x9FFF), (0xA000, 0xA48F), (0xAC00, 0xD7A3), (0xE000, 0xE0FF),
          (0xF900, 0xFAFF), (0xFB00, 0xFB4F), (0xFE00, 0xFE0F), (0xFE30, 0xFE6F),
          (0xFF00, 0xFFEF), (0x10000, 0x1007F), (0x10330, 0x1034F), (0x1D400, 0x1D7FF),
          (0x1F000, 0x1F0FF), (0x1F300, 0x1F64F), (0x1F680, 0x1F6FF), (0x1F900, 0x1F9FF),
          (0x20000, 0x2A6DF), (0xE0000, 0xE007F)]


def random_cp():
    while True:
        lo, hi = R.choice(BLOCKS)
        cp = R.range(lo, hi)
        cat = unicodedata.category(chr(cp))
        if cat not in ("Cn", "Cs"):
            return chr(cp)


def soup_doc():
    out = []
    for _ in range(R.range(5, 60)):
        k = R.below(5)
        if k < 3:
            out.append(random_cp())
        elif k == 3:
            out.append(R.choice(WHITESPACE + PUNCT))
        else:
            out.append(R.choice(EN_WORDS + GREEK + HEBREW + THAI + OTHER + AR_WORDS + HI_WORDS))
    return "".join(out)


def added_doc():
    out = []
    for _ in range(R.range(3, 15)):
        k = R.below(4)
        if k == 0:
            out.append(R.choice(ADDED))
        elif k == 1:
            out.append(english())
        elif k == 2:
            out.append(R.choice(["\n", "\n\n", " ", "", ">", "<", "｜"]))
        else:
            out.append(R.choice(ZH_PHRASES + RU_WORDS))
    return "".join(out)


def long_doc():
    k = R.below(7)
    if k == 0:
        return "".join(R.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(R.range(65, 600)))
    if k == 1:
        return " " * R.range(65, 400) + R.choice(EN_WORDS) + " " * R.range(0, 100)
    if k == 2:
        return "".join(str(R.below(10)) for _ in range(R.range(100, 900)))
    if k == 3:
        return R.choice(["=", "-", "*", "#", "!", "~", "/"]) * R.range(65, 300) + "\n"
    if k == 4:
        return "".join(chr(R.range(0x4E00, 0x9FA5)) for _ in range(R.range(50, 400)))
    if k == 5:
        return "\n" * R.range(10, 200) + "x" + "\t" * R.range(10, 100)
    return "".join(R.choice(RU_WORDS) for _ in range(R.range(20, 80)))


def mixed_doc():
    gens = [english, digits, whitespace_doc, cjk, emoji_doc, code_doc, soup_doc]
    return R.choice(["", " ", "\n"]).join(R.choice(gens)() for _ in range(R.range(2, 5)))


GENERATORS = [
    (english, 14), (code_doc, 10), (cjk, 9), (lambda: script_doc(RU_WORDS + UK_WORDS), 7),
    (lambda: script_doc(AR_WORDS), 6), (lambda: script_doc(HI_WORDS), 6), (emoji_doc, 7),
    (digits, 7), (whitespace_doc, 8), (soup_doc, 8), (added_doc, 5), (long_doc, 4),
    (mixed_doc, 9), (lambda: script_doc(GREEK + HEBREW + THAI + OTHER), 4),
]


def main():
    if unicodedata.unidata_version != "14.0.0":
        print(f"warning: unicodedata is {unicodedata.unidata_version}, expected 14.0.0",
              file=sys.stderr)
    out_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(__file__), "..", "tests", "data", "tokenizer", "corpus", "corpus.jsonl")
    table = [g for g, w in GENERATORS for _ in range(w)]
    docs = []
    total = 0
    target = 300_000
    while total < target:
        text = R.choice(table)()
        if not text:
            continue
        docs.append(text)
        total += len(text.encode("utf-8"))
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w", encoding="utf-8", newline="\n") as f:
        for d in docs:
            f.write(json.dumps({"text": d}, ensure_ascii=False) + "\n")
    print(f"[corpus] {len(docs)} texts, {total} bytes of text -> {out_path}")


if __name__ == "__main__":
    main()
