"""A second, independent forward pass of sentence-transformers' all-MiniLM-L6-v2.

The Rust embedder is checked against this: a bug in its tokenizer setup, weight loading or
pooling would show up as vectors that disagree. So nothing here comes from the libraries the
Rust side mirrors (no tokenizers, no transformers, no torch): the tokenizer is rewritten from
vocab.txt and the rules tokenizer.json names, the weights are read straight out of the
safetensors file, and the network is plain numpy.

    python minilm_reference.py MODEL_DIR < sentences.json > out.json

stdin: a JSON array of strings. stdout: {"token_ids": [[int, ...], ...], "vectors": [[float,
...], ...]}, one entry per sentence, vectors L2-normalised.

The arithmetic is float64 throughout, weights widened from their stored float32, so that the
reference's own rounding stays far below what the comparison with the float32 Rust side
tolerates.
"""

import json
import math
import os
import re
import struct
import sys
import unicodedata

import numpy as np

# --- tokenizer -------------------------------------------------------------------------
#
# tokenizer.json names BertNormalizer, BertPreTokenizer and WordPiece; the Rust side runs them
# through the `tokenizers` crate, so its exact behaviour is what is copied here, including
# where it differs from the Python BertTokenizer of `transformers`: accents are stripped
# before lowercasing, lowercasing is char by char (no final sigma), "control" means the Cc,
# Cf and Co categories, and whitespace is Rust's char::is_whitespace.

# Rust's char::is_whitespace is the Unicode White_Space property, which Python does not
# expose; str.isspace() differs from it (it includes U+001C..U+001F, for one).
WHITE_SPACE = frozenset(
    "\u0009\u000a\u000b\u000c\u000d\u0020\u0085\u00a0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)

# Copied from the tokenizers crate's is_chinese_char, 0x2B920 included: transformers says
# 0x2B820, but matching the Rust side is the point.
CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B920, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)


def is_whitespace(c):
    return c in WHITE_SPACE


def is_control(c):
    if c in "\t\n\r":
        return False
    return unicodedata.category(c) in ("Cc", "Cf", "Co")


def is_cjk(c):
    cp = ord(c)
    return any(lo <= cp <= hi for lo, hi in CJK_RANGES)


def is_punctuation(c):
    cp = ord(c)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(c).startswith("P")


class Tokenizer:
    def __init__(self, model_dir, max_len):
        with open(os.path.join(model_dir, "tokenizer.json"), encoding="utf-8") as f:
            spec = json.load(f)
        # A model whose tokenizer is built differently would be tokenized wrongly here
        # without a word: refuse it instead.
        norm, pre, model = spec["normalizer"], spec["pre_tokenizer"], spec["model"]
        if norm.get("type") != "BertNormalizer" or pre.get("type") != "BertPreTokenizer":
            raise SystemExit(f"unsupported tokenizer pipeline: {norm.get('type')}, {pre.get('type')}")
        if model.get("type") != "WordPiece":
            raise SystemExit(f"unsupported tokenizer model: {model.get('type')}")
        self.clean_text = norm["clean_text"]
        self.handle_cjk = norm["handle_chinese_chars"]
        self.lowercase = norm["lowercase"]
        strip = norm.get("strip_accents")
        self.strip_accents = self.lowercase if strip is None else strip
        self.unk = model["unk_token"]
        self.prefix = model["continuing_subword_prefix"]
        self.max_word_chars = model["max_input_chars_per_word"]

        self.vocab = {}
        with open(os.path.join(model_dir, "vocab.txt"), encoding="utf-8") as f:
            for i, line in enumerate(f):
                # tokenizers reads each line with trim_end().
                self.vocab[line.rstrip()] = i
        for name in (self.unk, "[CLS]", "[SEP]"):
            if name not in self.vocab:
                raise SystemExit(f"{name} is not in vocab.txt")
        self.cls_id, self.sep_id = self.vocab["[CLS]"], self.vocab["[SEP]"]

        # tokenizers cuts special tokens out of the raw text before normalising, so a
        # literal "[MASK]" in a message becomes that one token, not "[", "mask", "]".
        specials = [t["content"] for t in spec.get("added_tokens", []) if not t.get("normalized", True)]
        self.special_ids = {t: self.vocab[t] for t in specials if t in self.vocab}
        alternatives = sorted(self.special_ids, key=len, reverse=True)
        self.special_re = re.compile("|".join(map(re.escape, alternatives))) if alternatives else None
        self.max_len = max_len

    def normalize(self, text):
        if self.clean_text:
            text = "".join(
                " " if is_whitespace(c) else c
                for c in text
                if not (c == "\0" or c == "\ufffd" or is_control(c))
            )
        if self.handle_cjk:
            text = "".join(f" {c} " if is_cjk(c) else c for c in text)
        if self.strip_accents:
            text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
        if self.lowercase:
            # Char by char, as Rust's char::to_lowercase: str.lower() would apply the
            # final-sigma rule.
            text = "".join(c.lower() for c in text)
        return text

    @staticmethod
    def pre_tokenize(text):
        words, current = [], []
        for c in text:
            if is_whitespace(c):
                if current:
                    words.append("".join(current))
                    current = []
            elif is_punctuation(c):
                if current:
                    words.append("".join(current))
                    current = []
                words.append(c)
            else:
                current.append(c)
        if current:
            words.append("".join(current))
        return words

    def wordpiece(self, word):
        if len(word) > self.max_word_chars:
            return [self.vocab[self.unk]]
        ids, start = [], 0
        while start < len(word):
            end, found = len(word), None
            while start < end:
                piece = word[start:end] if start == 0 else self.prefix + word[start:end]
                if piece in self.vocab:
                    found = self.vocab[piece]
                    break
                end -= 1
            if found is None:
                return [self.vocab[self.unk]]
            ids.append(found)
            start = end
        return ids

    def encode(self, text):
        ids, pos = [], 0
        pieces = []
        if self.special_re is not None:
            for m in self.special_re.finditer(text):
                pieces.append((text[pos : m.start()], None))
                pieces.append((None, self.special_ids[m.group()]))
                pos = m.end()
        pieces.append((text[pos:], None))
        for segment, special in pieces:
            if special is not None:
                ids.append(special)
                continue
            for word in self.pre_tokenize(self.normalize(segment)):
                ids.extend(self.wordpiece(word))
        ids = ids[: self.max_len - 2]
        return [self.cls_id] + ids + [self.sep_id]


# --- weights ---------------------------------------------------------------------------

DTYPES = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "BF16": "<u2"}


def load_safetensors(path):
    """All tensors of a safetensors file, as float64 arrays, by name."""
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    (header_len,) = struct.unpack("<Q", bytes(raw[:8]))
    header = json.loads(bytes(raw[8 : 8 + header_len]))
    base = 8 + header_len
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = info["dtype"]
        begin, end = info["data_offsets"]
        if dtype not in DTYPES:
            # position_ids (I64) and the like: the forward pass does not read them.
            continue
        arr = np.frombuffer(raw[base + begin : base + end], dtype=DTYPES[dtype])
        if dtype == "BF16":
            arr = (arr.astype(np.uint32) << 16).view("<f4")
        tensors[name] = arr.reshape(info["shape"])
    return tensors


class Model:
    def __init__(self, model_dir):
        with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as f:
            config = json.load(f)
        if config.get("hidden_act") != "gelu" or config.get("position_embedding_type", "absolute") != "absolute":
            raise SystemExit("unsupported config: needs hidden_act gelu and absolute positions")
        self.heads = config["num_attention_heads"]
        self.hidden = config["hidden_size"]
        self.eps = config["layer_norm_eps"]
        self.max_positions = config["max_position_embeddings"]

        tensors = load_safetensors(os.path.join(model_dir, "model.safetensors"))
        # Checkpoints saved from BertModel have bare names, ones saved from a task model
        # carry "bert.".
        prefix = "bert." if "bert.embeddings.word_embeddings.weight" in tensors else ""

        def get(name):
            return tensors[prefix + name]

        def linear(name):
            # Stored as [out, in] (torch's layout); kept transposed so that x @ w works.
            return (
                np.ascontiguousarray(get(name + ".weight").astype(np.float64).T),
                get(name + ".bias").astype(np.float64),
            )

        def norm(name):
            return get(name + ".weight").astype(np.float64), get(name + ".bias").astype(np.float64)

        # Left float32 and memory-mapped: only the rows of the tokens met are widened.
        self.word = get("embeddings.word_embeddings.weight")
        self.position = get("embeddings.position_embeddings.weight").astype(np.float64)
        self.token_type = get("embeddings.token_type_embeddings.weight").astype(np.float64)
        self.embed_norm = norm("embeddings.LayerNorm")
        self.layers = []
        for i in range(config["num_hidden_layers"]):
            p = f"encoder.layer.{i}."
            self.layers.append(
                {
                    "q": linear(p + "attention.self.query"),
                    "k": linear(p + "attention.self.key"),
                    "v": linear(p + "attention.self.value"),
                    "attn_out": linear(p + "attention.output.dense"),
                    "attn_norm": norm(p + "attention.output.LayerNorm"),
                    "inter": linear(p + "intermediate.dense"),
                    "out": linear(p + "output.dense"),
                    "out_norm": norm(p + "output.LayerNorm"),
                }
            )

    def layer_norm(self, x, params):
        gamma, beta = params
        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        return (x - mean) / np.sqrt(var + self.eps) * gamma + beta

    def embed(self, ids):
        """Mean-pooled, L2-normalised sentence vector of one token sequence."""
        n = len(ids)
        if n > self.max_positions:
            raise SystemExit(f"{n} tokens, the model has {self.max_positions} positions")
        h = self.word[np.asarray(ids)].astype(np.float64) + self.position[:n] + self.token_type[0]
        h = self.layer_norm(h, self.embed_norm)
        head_dim = self.hidden // self.heads
        scale = 1.0 / math.sqrt(head_dim)
        for layer in self.layers:
            q, k, v = (
                (h @ w + b).reshape(n, self.heads, head_dim).transpose(1, 0, 2)
                for w, b in (layer["q"], layer["k"], layer["v"])
            )
            scores = (q @ k.transpose(0, 2, 1)) * scale
            scores -= scores.max(axis=-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(axis=-1, keepdims=True)
            context = (probs @ v).transpose(1, 0, 2).reshape(n, self.hidden)
            w, b = layer["attn_out"]
            h = self.layer_norm(context @ w + b + h, layer["attn_norm"])
            w, b = layer["inter"]
            inter = gelu(h @ w + b)
            w, b = layer["out"]
            h = self.layer_norm(inter @ w + b + h, layer["out_norm"])
        # One sentence at a time, so there is no padding to mask out of the mean.
        pooled = h.mean(axis=0)
        return pooled / max(np.linalg.norm(pooled), 1e-12)


_erf = np.frompyfunc(math.erf, 1, 1)


def gelu(x):
    # BERT's "gelu" is the exact erf form, not the tanh approximation.
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)).astype(np.float64))


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: minilm_reference.py MODEL_DIR < sentences.json")
    model_dir = sys.argv[1]
    sentences = json.load(sys.stdin)
    if not isinstance(sentences, list) or not all(isinstance(s, str) for s in sentences):
        raise SystemExit("stdin must be a JSON array of strings")
    with open(os.path.join(model_dir, "sentence_bert_config.json"), encoding="utf-8") as f:
        # sentence-transformers truncates at this length, not at the 128 that
        # tokenizer.json's own truncation section says.
        max_len = json.load(f)["max_seq_length"]
    tokenizer = Tokenizer(model_dir, max_len)
    model = Model(model_dir)
    token_ids = [tokenizer.encode(s) for s in sentences]
    vectors = [[float(x) for x in model.embed(ids)] for ids in token_ids]
    json.dump({"token_ids": token_ids, "vectors": vectors}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
