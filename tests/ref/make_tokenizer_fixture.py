#!/usr/bin/env python3
"""Golden fixtures for the byte-level BPE tokenizer (model/tokenizer*.c) and chat formats.

Run from the repository root:

    python3 tests/ref/make_tokenizer_fixture.py            # (re)write the fixtures
    python3 tests/ref/make_tokenizer_fixture.py --check DIR

Writes, under tests/fixtures/tokenizer/:
  corpus.jsonl     the deterministic training corpus ({"text": ...} per line; English, code, CJK,
                   emoji, digits, other scripts, whitespace runs)
  tokenizer.json   a ByteLevel BPE (vocab 2000) trained by `tokenizers` on that corpus with
                   DeepSeek-V3's pre-tokenizer (three Split regexes, then ByteLevel with
                   add_prefix_space=false, use_regex=false), DeepSeek's special tokens, a
                   TemplateProcessing post-processor that adds BOS, an empty normalizer Sequence,
                   the ByteLevel decoder, plus non-special, lstrip, rstrip, single_word and
                   normalized added tokens
  cases.json       for every sample string: the ids `tokenizers` gives (with and without special
                   tokens), its decode (with and without special tokens); the same for pre-tokenizer
                   variants (GPT-2 ByteLevel regex with prefix space, every Split behaviour, invert,
                   Digits, ignore_merges); chat renders of a few conversations by the real Jinja
                   templates through transformers' apply_chat_template, with their token ids
  tokenizer_config.json  what transformers reads beside tokenizer.json (bos/eos, chat template)

--check DIR verifies a tokenizer trained and saved by posttrain: DIR holds tokenizer.json and
tokenizer_config.json written by the C code and c_ids.json ({"cases": [{"text", "ids"}],
"chat": [...]}) with the ids posttrain produced; `tokenizers` and transformers must load the
folder and give the same ids and the same chat render. The C test tokenizer/train_matches_tokenizers
writes such a folder when PT_TOKENIZER_EXPORT=DIR is set.

Requires: tokenizers, transformers (jinja2). Nothing here is needed to run the C tests.
"""
import json
import os
import random
import sys

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "tokenizer")

# DeepSeek-V3's pre_tokenizer: Sequence[Split x3 (Isolated, invert false), ByteLevel(add_prefix_space
# false, use_regex false)]; the regexes are the ones in deepseek-ai/DeepSeek-V3's tokenizer.json.
SPLIT_DIGITS = "\\p{N}{1,3}"
SPLIT_CJK = "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+"
SPLIT_MAIN = ("[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+"
              "|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+"
              "| ?[\\p{P}\\p{S}]+[\r\n]*"
              "|\\s*[\r\n]+"
              "|\\s+(?!\\S)"
              "|\\s+")

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
SPECIALS = [BOS, EOS, "<｜▁pad▁｜>", "<｜User｜>", "<｜Assistant｜>", "<｜fim▁hole｜>", "<｜fim▁begin｜>",
            "<｜fim▁end｜>", "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>", "<｜tool▁call▁begin｜>",
            "<｜tool▁call▁end｜>", "<｜tool▁outputs▁begin｜>", "<｜tool▁outputs▁end｜>",
            "<｜tool▁output▁begin｜>", "<｜tool▁output▁end｜>", "<｜tool▁sep｜>"]
VOCAB_SIZE = 2000

# The chat templates, character for character as the Hugging Face repositories store them
# (deepseek-ai/DeepSeek-V3 and deepseek-ai/DeepSeek-R1 tokenizer_config.json, Dec 2024 / Jan 2025).
# model/chat_template.c records the same strings; the C test checks they are identical.
TEMPLATE_V3 = (
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    "{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='', is_first_sp=true) %}"
    "{%- for message in messages %}{%- if message['role'] == 'system' %}{%- if ns.is_first_sp %}"
    "{% set ns.system_prompt = ns.system_prompt + message['content'] %}{% set ns.is_first_sp = false %}"
    "{%- else %}{% set ns.system_prompt = ns.system_prompt + '\\n\\n' + message['content'] %}{%- endif %}"
    "{%- endif %}{%- endfor %}{{bos_token}}{{ns.system_prompt}}{%- for message in messages %}"
    "{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}{%- endif %}"
    "{%- if message['role'] == 'assistant' and message['content'] is none %}{%- set ns.is_tool = false -%}"
    "{%- for tool in message['tool_calls']%}{%- if not ns.is_first %}"
    "{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\\n' + '```json' + '\\n' + tool['function']['arguments'] + '\\n' + '```' + '<｜tool▁call▁end｜>'}}"
    "{%- set ns.is_first = true -%}{%- else %}"
    "{{'\\n' + '<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\\n' + '```json' + '\\n' + tool['function']['arguments'] + '\\n' + '```' + '<｜tool▁call▁end｜>'}}"
    "{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}{%- endif %}{%- endfor %}{%- endif %}"
    "{%- if message['role'] == 'assistant' and message['content'] is not none %}{%- if ns.is_tool %}"
    "{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- set ns.is_tool = false -%}"
    "{%- else %}{{'<｜Assistant｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif %}"
    "{%- if message['role'] == 'tool' %}{%- set ns.is_tool = true -%}{%- if ns.is_output_first %}"
    "{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}"
    "{%- set ns.is_output_first = false %}{%- else %}"
    "{{'\\n<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- endif %}{%- endif %}"
    "{%- endfor -%}{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %}"
    "{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜>'}}{% endif %}")

TEMPLATE_R1 = (
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    "{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='') %}"
    "{%- for message in messages %}{%- if message['role'] == 'system' %}{% set ns.system_prompt = message['content'] %}"
    "{%- endif %}{%- endfor %}{{bos_token}}{{ns.system_prompt}}{%- for message in messages %}"
    "{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}{%- endif %}"
    "{%- if message['role'] == 'assistant' and message['content'] is none %}{%- set ns.is_tool = false -%}"
    "{%- for tool in message['tool_calls']%}{%- if not ns.is_first %}"
    "{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\\n' + '```json' + '\\n' + tool['function']['arguments'] + '\\n' + '```' + '<｜tool▁call▁end｜>'}}"
    "{%- set ns.is_first = true -%}{%- else %}"
    "{{'\\n' + '<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\\n' + '```json' + '\\n' + tool['function']['arguments'] + '\\n' + '```' + '<｜tool▁call▁end｜>'}}"
    "{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}{%- endif %}{%- endfor %}{%- endif %}"
    "{%- if message['role'] == 'assistant' and message['content'] is not none %}{%- if ns.is_tool %}"
    "{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- set ns.is_tool = false -%}"
    "{%- else %}{% set content = message['content'] %}{% if '</think>' in content %}"
    "{% set content = content.split('</think>')[-1] %}{% endif %}"
    "{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif %}"
    "{%- if message['role'] == 'tool' %}{%- set ns.is_tool = true -%}{%- if ns.is_output_first %}"
    "{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}"
    "{%- set ns.is_output_first = false %}{%- else %}"
    "{{'\\n<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- endif %}{%- endif %}"
    "{%- endfor -%}{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %}"
    "{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜><think>\\n'}}{% endif %}")

# posttrain's own format for base models: BOS, every non-assistant message followed by a blank
# line, every assistant message followed by EOS.
TEMPLATE_PLAIN = (
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'assistant' %}"
    "{{ message['content'] + eos_token }}{% else %}{{ message['content'] + '\\n\\n' }}{% endif %}{% endfor %}")

TEMPLATES = {"deepseek-v3": TEMPLATE_V3, "deepseek-r1": TEMPLATE_R1, "plain": TEMPLATE_PLAIN}


# ----------------------------------------------------------------------------------- the corpus
WORDS = ("the of and to in is was he for it with as his on be at by had are but from or have an they "
         "which one you were her all she there would their we him been has when who will more no if out "
         "so said what up its about into than them can only other new some could time these two may then "
         "do first any my now such like our over man me even most made after also did many before must "
         "through back years where much your way well down should because each just those people how too "
         "little state good very make world still own see men work long get here between both life being "
         "under never day same another know while last might us great old year off come since against go "
         "came right used take three model token gradient expert latent reward policy sample group batch "
         "learning rate optimizer training tokenizer merge vocabulary byte encode decode").split()
CAPS = "Hello World Paris London Tokyo Alice Bob DeepSeek Python Linux Monday January".split()
CONTRACTIONS = ["don't", "it's", "we'll", "I'm", "you're", "they've", "she'd", "can't", "won't", "O'Neil"]
CJK = "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车白应路期叫死常提感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物台象记边共风战干接它许八特觉望直服毛林题建南度统色字请交爱让认算论百吃义科怎元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权往展该领传近留红治决周保达办运武半候七必城父强步完革深区即求品士转量空甚众技轻程告江语英基派满式李息写呢识极令黑断线造复视类"
KANA = "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをんアイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワヲンー"
HANGUL = "가나다라마바사아자차카타파하고노도로모보소오조초코토포호구누두루무부수우주추쿠투푸후한국어텍스트입니다"
EMOJI = ["😀", "😃", "🎉", "👍", "👍🏽", "❤️", "🔥", "🚀", "👨‍👩‍👧", "🇫🇷", "🇯🇵", "✌🏿", "🤖", "🧠", "✅"]
OTHER = ["Привет мир", "спасибо большое", "Γειά σου Κόσμε", "καλημέρα", "مرحبا بالعالم", "شكرا",
         "नमस्ते दुनिया", "धन्यवाद", "שלום עולם", "café naïve résumé", "Ærøskøbing Straße", "Ünïcödé façade",
         "e\u0301te\u0301", "ṩ ᾇ", "ก่อน ภาษาไทย", "Tiếng Việt có dấu"]
CODE = [
    "def {f}({a}, {b}):\n    return {a} * {b} + {n}\n",
    "int {f}(int {a}) {{\n\tif ({a} > {n}) return {a} - 1;\n\treturn {f}({a} + 1);\n}}\n",
    "for (let {a} = 0; {a} < {n}; {a}++) {{ console.log({a}); }}\n",
    "{a}->{b} = {f}(&{a}[{n}]) && !{b} || {a} != {b};\n",
    "SELECT {a}, {b} FROM {f} WHERE id = {n};\n",
    "<div class=\"{a}\">{b}</div>\n",
    "https://example.com/{a}/{b}?q={n}&r={f}#top\n",
    "    x += {n}; y -= {n}; z *= 2.5e-3;  # {f}\n",
    "import {a}\nfrom {b} import {f}\n\n\nclass {f}:\n    pass\n",
    "if {a} == {b}:\r\n    print(f\"{{{a}}} {n}\")\r\n",
]


def sentence(r):
    n = r.randint(4, 14)
    ws = []
    for i in range(n):
        w = r.choice(WORDS)
        k = r.random()
        if i == 0 or k < 0.08:
            w = r.choice(CAPS) if k < 0.04 else w.capitalize()
        elif k < 0.14:
            w = r.choice(CONTRACTIONS)
        elif k < 0.2:
            w = str(r.choice([r.randint(0, 9), r.randint(10, 999), r.randint(1000, 10 ** 7)]))
        ws.append(w)
        if r.random() < 0.07:
            ws[-1] += r.choice([",", ";", ":", " -", " (see)", "'s"])
    return " ".join(ws) + r.choice([".", ".", ".", "!", "?", "...", ":"])


def doc(r):
    kind = r.random()
    if kind < 0.35:
        return " ".join(sentence(r) for _ in range(r.randint(1, 4))) + r.choice(["", "\n", "\n\n"])
    if kind < 0.55:
        t = r.choice(CODE)
        return t.format(f=r.choice(WORDS) + "_" + r.choice(WORDS), a=r.choice("abcijkxyz"),
                        b=r.choice(["val", "buf", "ptr", "n2"]), n=r.randint(0, 4096))
    if kind < 0.68:
        s = "".join(r.choice(CJK) for _ in range(r.randint(4, 20)))
        if r.random() < 0.5:
            s += r.choice(["，", "。", "！", "：", "、"]) + "".join(r.choice(CJK) for _ in range(r.randint(2, 8)))
        if r.random() < 0.3:
            s += "".join(r.choice(KANA) for _ in range(r.randint(3, 10)))
        if r.random() < 0.2:
            s += " " + "".join(r.choice(HANGUL) for _ in range(r.randint(2, 6)))
        return s + r.choice(["。", "\n", ""])
    if kind < 0.76:
        return " ".join(r.choice(EMOJI) + r.choice(["", " ", r.choice(WORDS)]) for _ in range(r.randint(1, 6)))
    if kind < 0.86:
        parts = [str(r.randint(0, 10 ** r.randint(1, 12))) for _ in range(r.randint(2, 6))]
        return r.choice([" + ", ", ", " = ", "\t", "/", "-"]).join(parts) + r.choice(["", "\n", " 3.14159", " 2024-12-26"])
    if kind < 0.94:
        return r.choice(OTHER) + r.choice([" ", ", ", "\n"]) + r.choice(OTHER)
    ws = r.choice(["  ", "\t", "\n", "\r\n", "    ", "\t\t", " \n "])
    return ws.join(r.choice(WORDS) for _ in range(r.randint(2, 6))) + r.choice(["", "  ", "\n\n\n", "\t"])


def make_corpus():
    r = random.Random(20250101)
    return [doc(r) for _ in range(1000)]


# ------------------------------------------------------------------------------- sample strings
def random_strings():
    r = random.Random(7)
    pool = (list("abcXYZ019 \t\n\r.,;'\"!?-_/\\()[]{}<>#@%^&*+=~`|") + list("中文日本語カタナ한국") +
            ["é", "e\u0301", "ß", "Ω", "п", "ع", "न", "्", "٣", "½", "²", "\u00a0", "\u3000", "\u2028", "\u0085",
             "\u200b", "\ufeff", "😀", "👍🏽", "👨‍👩‍👧", "🇫🇷", "\u0000", "\u007f", "\U0001F9E0", "\u180e",
             "<｜User｜>", "<think>", "</think>", "<|lstrip|>", "<|rstrip|>", "<|word|>", "<｜begin▁of▁sentence｜>"])
    out = []
    for _ in range(40):
        out.append("".join(r.choice(pool) for _ in range(r.randint(1, 40))))
    return out


SAMPLES = [
    "", "Hello world!", "hello  world", " leading space", "trailing space ", "tabs\tand\ttabs",
    "line1\nline2\r\nline3\n\n\n", "   \n\t  \n", "\n", " ", "  ", "a",
    "don't stop, it's fine; we'll see. I'M SHOUTING",
    "The year 2024 had 365 days; 1234567890 digits; 3.14159; -42; 1,000,000 and 007.",
    "٣٤٥ arabic-indic digits, ½ ² Ⅻ ①②③ fractions",
    "中文测试：你好，世界！", "日本語のテキスト、カタカナとひらがな", "한국어 텍스트입니다", "混合mixed中英文text测试123",
    "😀 😃 🎉", "👍🏽 thumbs", "👨‍👩‍👧‍👦 family", "🇫🇷🇯🇵 flags", "❤️ heart", "✌🏿 peace 🤖🧠",
    "e\u0301 café naïve", "Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̗͚̚o̙̔ͮ̇͐̇", "ṩ ᾇ ก่อน",
    "def f(x):\n    return x**2 + 1  # comment\n", "int main(void) { printf(\"%d\\n\", a[i]); }",
    "for (let i = 0; i < n; i++) {}", "a->b && c || !d", "x+=1;y-=2", "<div class=\"a\">text</div>",
    "SELECT * FROM t WHERE id=1;", "https://example.com/path?q=1&r=2#frag", "user@example.com",
    "<｜begin▁of▁sentence｜>Hi<｜User｜>What?<｜Assistant｜><think>\nhmm</think>Ok<｜end▁of▁sentence｜>",
    "x<｜User｜>y", "<think><think>", "<｜User", "<｜User｜", "<｜User｜><｜User｜>", "a<｜▁pad▁｜>b",
    "text   <|lstrip|> more", "a <|rstrip|>   b", "  <|lstrip|><|rstrip|>  <|lstrip|>  ",
    "<|word|> ok", "x<|word|>y", "a <|word|> b", "<|norm|>x<|norm|>", "<|norm|>!", "a|>!<|norm|>",
    "\u00a0nbsp", "\u3000ideographic\u3000space", "\u2028line sep", "\u0085nel", "\u180emongolian",
    "\ufeffbom", "zero\u200bwidth", "a\u000bb\u000cc", "\u0000\u0001\u001f\u007f",
    "Привет мир", "Γειά σου Κόσμε", "مرحبا بالعالم", "नमस्ते दुनिया", "שלום",
    "!!!???...", "—–-", "«»“”‘’", "\"quoted\"", "'single'", "(parens) [brackets] {braces}",
    "'s 're .com ,and", "..\n\n,,\r\n", "¿Qué? ¡Sí!", "$100 €50 ¥30 £20", "1+1=2 2*3=6 10/5=2 2^10",
    "\U0001F9E0\U0001FAE0 new emoji", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛",
]


def long_string():
    r = random.Random(99)
    return "".join(doc(r) for _ in range(30))[:4000]


# ---------------------------------------------------------------------------------- build it all
def build_tokenizer(corpus):
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Sequence([])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT_DIGITS), "isolated", invert=False),
        pre_tokenizers.Split(Regex(SPLIT_CJK), "isolated", invert=False),
        pre_tokenizers.Split(Regex(SPLIT_MAIN), "isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    # Added tokens past the model vocabulary, as DeepSeek has (<think> is not special there).
    tok.add_tokens([AddedToken("<think>", special=False, normalized=False),
                    AddedToken("</think>", special=False, normalized=False),
                    AddedToken("<|lstrip|>", special=False, normalized=False, lstrip=True),
                    AddedToken("<|rstrip|>", special=False, normalized=False, rstrip=True),
                    AddedToken("<|word|>", special=False, normalized=False, single_word=True),
                    AddedToken("<|norm|>", special=False, normalized=True),
                    # overlaps the end of <|norm|>: the normalized=false pass runs first and wins
                    AddedToken("|>!", special=False, normalized=False)])
    tok.post_processor = processors.TemplateProcessing(
        single=BOS + " $A", pair=BOS + " $A " + BOS + " $B", special_tokens=[(BOS, tok.token_to_id(BOS))])
    return tok


def variants():
    """Pre-tokenizer (and model-flag) variants the C test swaps into tokenizer.json."""
    seq = lambda *xs: {"type": "Sequence", "pretokenizers": list(xs)}
    split = lambda pat, beh, inv=False: {"type": "Split", "pattern": {"Regex": pat}, "behavior": beh, "invert": inv}
    bl = lambda prefix, rx: {"type": "ByteLevel", "add_prefix_space": prefix, "trim_offsets": True, "use_regex": rx}
    return {
        "gpt2_bytelevel": {"pre_tokenizer": bl(True, True)},
        "gpt2_no_prefix": {"pre_tokenizer": bl(False, True)},
        "removed": {"pre_tokenizer": seq(split("\\s+", "Removed"), bl(False, False))},
        "merged_prev": {"pre_tokenizer": seq(split("[,.;:!?]", "MergedWithPrevious"), split(" ", "MergedWithPrevious"), bl(False, False))},
        "merged_next": {"pre_tokenizer": seq(split("[ \\t]+", "MergedWithNext"), bl(False, False))},
        "contiguous": {"pre_tokenizer": seq(split("\\p{P}", "Contiguous"), bl(False, False))},
        "invert": {"pre_tokenizer": seq(split("\\p{L}+|\\p{N}+", "Isolated", True), bl(False, False))},
        "invert_removed": {"pre_tokenizer": seq(split("\\p{L}+", "Removed", True), bl(False, False))},
        "anchors": {"pre_tokenizer": seq(split("\\s+$", "Isolated"), split("^[a-z]+", "Isolated"), bl(False, False))},
        "digits": {"pre_tokenizer": seq({"type": "Digits", "individual_digits": True}, bl(False, True))},
        "digits_grouped": {"pre_tokenizer": seq({"type": "Digits", "individual_digits": False}, split(" ", "Isolated"), bl(False, False))},
        "bytelevel_only": {"pre_tokenizer": bl(False, False)},
        "string_pattern": {"pre_tokenizer": seq({"type": "Split", "pattern": {"String": ", "}, "behavior": "Isolated", "invert": False},
                                                {"type": "Split", "pattern": {"String": "."}, "behavior": "Removed", "invert": False},
                                                bl(False, False))},
        "word_class": {"pre_tokenizer": seq(split("\\w+|[^\\w\\s]+", "Isolated"), split("\\S+", "Isolated"), bl(False, False))},
        "ignore_merges": {"model.ignore_merges": True},
        "no_post": {"post_processor": None},
    }


def apply_variant(base_json, spec):
    d = json.loads(base_json)
    for k, v in spec.items():
        if k.startswith("model."):
            d["model"][k[6:]] = v
        else:
            d[k] = v
    return json.dumps(d, ensure_ascii=False)


CONVERSATIONS = [
    [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi"},
     {"role": "assistant", "content": "<think>\nThe user greets me.\n</think>\n\nHello!"},
     {"role": "user", "content": "Count to 3."},
     {"role": "assistant", "content": "<think>easy</think>1 2 3"}],
    [{"role": "system", "content": "First rule."}, {"role": "system", "content": "Second rule."},
     {"role": "user", "content": "多语言 😀 test\n  indented\tline"},
     {"role": "assistant", "content": "a</think>b</think>c"}],
    [{"role": "user", "content": ""}, {"role": "assistant", "content": ""},
     {"role": "user", "content": "<｜User｜> injected special text"}],
    [{"role": "user", "content": "Solve: 12*12"}],
]


def hf_wrapper(tok_json_path, template):
    from transformers import PreTrainedTokenizerFast
    t = PreTrainedTokenizerFast(tokenizer_file=tok_json_path, bos_token=BOS, eos_token=EOS)
    t.chat_template = template
    return t


def chat_cases(tok_json_path):
    out = []
    for name, template in TEMPLATES.items():
        t = hf_wrapper(tok_json_path, template)
        for ci, conv in enumerate(CONVERSATIONS):
            for gen in (False, True):
                text = t.apply_chat_template(conv, tokenize=False, add_generation_prompt=gen)
                ids = t.apply_chat_template(conv, tokenize=True, add_generation_prompt=gen, return_dict=False)
                if isinstance(ids, dict):
                    ids = ids["input_ids"]
                assert ids == t(text, add_special_tokens=False)["input_ids"], "apply_chat_template ids"
                out.append({"format": name, "conversation": ci, "add_generation_prompt": gen, "text": text, "ids": ids})
    return out


def encode_case(tok, s):
    e = tok.encode(s, add_special_tokens=False)
    e2 = tok.encode(s, add_special_tokens=True)
    out = {"text": s, "ids": e.ids, "ids_special": e2.ids}
    if "\0" in s:  # cJSON strings stop at NUL: the C test reads these bytes instead
        out["hex"] = s.encode("utf-8").hex()
    # decodes are stored only where they differ from the input (lstrip/rstrip eat whitespace)
    dec = tok.decode(e.ids, skip_special_tokens=False)
    if dec != s:
        out["decoded"] = dec
    out["decoded_skip"] = tok.decode(e2.ids, skip_special_tokens=True)
    if out["decoded_skip"] == s:
        out["decoded_skip"] = None
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    corpus = make_corpus()
    with open(os.path.join(OUT, "corpus.jsonl"), "w", encoding="utf-8") as f:
        for t in corpus:
            f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
    tok = build_tokenizer(corpus)
    d = json.loads(tok.to_str())
    # DeepSeek marks its added tokens normalized; make the chat specials so (the two-pass split).
    for at in d["added_tokens"]:
        if at["content"] in ("<｜User｜>", "<｜Assistant｜>", "<｜▁pad▁｜>"):
            at["normalized"] = True
    base = json.dumps(d, ensure_ascii=False)
    tok = Tokenizer.from_str(base)
    path = os.path.join(OUT, "tokenizer.json")
    with open(path, "w", encoding="utf-8") as f:
        f.write(base)
    with open(os.path.join(OUT, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"add_bos_token": True, "add_eos_token": False, "bos_token": BOS, "eos_token": EOS,
                   "pad_token": EOS, "unk_token": None, "clean_up_tokenization_spaces": False,
                   "model_max_length": 16384, "tokenizer_class": "PreTrainedTokenizerFast",
                   "chat_template": TEMPLATE_V3}, f, ensure_ascii=False, indent=2)

    samples = SAMPLES + random_strings() + [long_string()]
    cases = [encode_case(tok, s) for s in samples]
    var_out = {}
    var_samples = SAMPLES + random_strings()[:10]
    for name, spec in variants().items():
        vt = Tokenizer.from_str(apply_variant(base, spec))
        vcases = []
        for s in var_samples:
            c = {"text": s, "ids": vt.encode(s, add_special_tokens=False).ids,
                 "ids_special": vt.encode(s, add_special_tokens=True).ids}
            if "\0" in s:
                c["hex"] = s.encode("utf-8").hex()
            vcases.append(c)
        var_out[name] = {"spec": spec, "cases": vcases}
    fixture = {
        "generator": "tests/ref/make_tokenizer_fixture.py",
        "tokenizers_version": __import__("tokenizers").__version__,
        "transformers_version": __import__("transformers").__version__,
        "vocab_size": VOCAB_SIZE, "special_tokens": SPECIALS,
        "cases": cases, "variants": var_out,
        "templates": TEMPLATES, "conversations": CONVERSATIONS, "chat": chat_cases(path),
    }
    with open(os.path.join(OUT, "cases.json"), "w", encoding="utf-8") as f:
        json.dump(fixture, f, ensure_ascii=False, separators=(",", ":"))
    for fn in sorted(os.listdir(OUT)):
        print("%-24s %8d bytes" % (fn, os.path.getsize(os.path.join(OUT, fn))))


def check(folder):
    """Verify a posttrain-saved tokenizer folder against `tokenizers` and transformers."""
    from transformers import AutoTokenizer
    tok = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    got = json.load(open(os.path.join(folder, "c_ids.json"), encoding="utf-8"))
    bad = 0
    for c in got["cases"]:
        hf = tok.encode(c["text"], add_special_tokens=False).ids
        if hf != c["ids"]:
            bad += 1
            print("MISMATCH %r\n  hf %s\n  c  %s" % (c["text"], hf, c["ids"]))
    # Retrain here with the same corpus and options: vocab and merges must be identical.
    corpus = [json.loads(l)["text"] for l in open(os.path.join(OUT, "corpus.jsonl"), encoding="utf-8")]
    ref = json.loads(build_tokenizer(corpus).to_str())["model"]
    mine = json.loads(open(os.path.join(folder, "tokenizer.json"), encoding="utf-8").read())["model"]
    if ref["vocab"] != mine["vocab"] or ref["merges"] != mine["merges"]:
        bad += 1
        print("trained vocab/merges differ from tokenizers' BpeTrainer")
    at = AutoTokenizer.from_pretrained(folder)
    for c in got.get("chat", []):
        text = at.apply_chat_template(c["messages"], tokenize=False, add_generation_prompt=c["add_generation_prompt"])
        if text != c["text"]:
            bad += 1
            print("CHAT MISMATCH\n  hf %r\n  c  %r" % (text, c["text"]))
        ids = at(text, add_special_tokens=False)["input_ids"]
        if ids != c["ids"]:
            bad += 1
            print("CHAT IDS MISMATCH %r" % text)
    for c in got["cases"][:5]:
        if at(c["text"])["input_ids"] != tok.encode(c["text"]).ids:
            bad += 1
            print("transformers and tokenizers disagree on %r" % c["text"])
    print("%s: %d cases, %d chat renders, %d mismatches" % (folder, len(got["cases"]), len(got.get("chat", [])), bad))
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        sys.exit(check(sys.argv[2]))
    main()
