#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets, tests/fuzz/corpus/<target>/:
small valid inputs of each format, made here (PNG and JPEG encoded by hand,
IDX, CIFAR, .npy, safetensors, plugin manifests, word lists) or taken from the
pipelines and run-folder fixtures. Python's standard library only, but for
the SentencePiece models, which spm_train trains (Debian: apt-get install
sentencepiece); without it their seeds are kept as they are.

Usage: tests/fuzz/make_corpus.py  (rewrites the seed-* files; inputs added
to the corpus by hand, such as crash regressions, are kept)."""

import gzip
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CORPUS = HERE / "corpus"


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / ("seed-" + name)).write_bytes(data)


def clean(keep=()):
    """Removes the seed-* files of every target but those in `keep`."""
    for f in CORPUS.glob("*/seed-*"):
        if f.parent.name not in keep:
            f.unlink()


def pattern(n, k=7):
    return bytes((i * k + 13) & 0xFF for i in range(n))


# --------------------------------------------------------------------------
# IDX (MNIST): big-endian magic, counts, then u8 data.

def idx():
    images = struct.pack(">IIII", 0x803, 2, 28, 28) + pattern(2 * 28 * 28)
    labels = struct.pack(">II", 0x801, 2) + bytes([3, 9])
    write("fuzz_idx", "images-2x28x28", images)
    write("fuzz_idx", "images-2x28x28.gz", gzip.compress(images, mtime=0))
    write("fuzz_idx", "labels-2", labels)
    write("fuzz_idx", "labels-2.gz", gzip.compress(labels, mtime=0))
    write("fuzz_idx", "images-1x1x1", struct.pack(">IIII", 0x803, 1, 1, 1) + b"\x80")
    write("fuzz_idx", "images-3x2x5", struct.pack(">IIII", 0x803, 3, 2, 5) + pattern(30))


# --------------------------------------------------------------------------
# CIFAR: records of label byte(s) + 3072 planar RGB bytes.

def cifar():
    px = pattern(3072, 5)
    write("fuzz_cifar", "cifar10-1", bytes([7]) + px)
    write("fuzz_cifar", "cifar10-2", bytes([0]) + px + bytes([9]) + px[::-1])
    write("fuzz_cifar", "cifar100-1", bytes([19, 99]) + px)


# --------------------------------------------------------------------------
# .npy: magic, version, header length, a Python dict padded to 64 bytes.

def npy(descr, shape, data, version=1):
    dims = ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "")
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (descr, dims)
    pre = 10 if version == 1 else 12
    total = (pre + len(header) + 1 + 63) // 64 * 64
    header = header.ljust(total - pre - 1) + "\n"
    size = struct.pack("<H", len(header)) if version == 1 else struct.pack("<I", len(header))
    return b"\x93NUMPY" + bytes([version, 0]) + size + header.encode() + data


def npys():
    write("fuzz_npy", "images-2x4x4.npy", npy("|u1", (2, 4, 4), pattern(32)))
    write("fuzz_npy", "images-2x3x3x3.npy", npy("|u1", (2, 3, 3, 3), pattern(54)))
    write("fuzz_npy", "images-1x3x2x2-v2.npy", npy("|u1", (1, 3, 2, 2), pattern(12), version=2))
    write("fuzz_npy", "labels-i8.npy", npy("<i8", (2,), struct.pack("<qq", 1, 4)))
    write("fuzz_npy", "labels-u1.npy", npy("|u1", (2,), bytes([0, 2])))
    write("fuzz_npy", "labels-i4.npy", npy("<i4", (2,), struct.pack("<ii", 5, 0)))


# --------------------------------------------------------------------------
# PNG, encoded here: chunks with CRCs around zlib-compressed filtered rows.

def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def png(width, height, color, depth, sample, interlace=False, palette=None, trns=None):
    """sample(x, y) -> tuple of channel values for the colour type."""
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color]
    bpp = max(1, channels * depth // 8)

    def row(xs, y):
        if depth < 8:
            bits, out = "", bytearray()
            for x in xs:
                bits += format(sample(x, y)[0], "0%db" % depth)
            bits = bits.ljust((len(bits) + 7) // 8 * 8, "0")
            return bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8))
        out = bytearray()
        for x in xs:
            for v in sample(x, y):
                out += v.to_bytes(depth // 8, "big")
        return bytes(out)

    def filtered(lines):
        # Alternate None and Sub so that both kinds of rows appear.
        out, prev = bytearray(), None
        for i, line in enumerate(lines):
            if i % 2 == 0:
                out += b"\x00" + line
            else:
                out += b"\x01" + bytes((line[k] - (line[k - bpp] if k >= bpp else 0)) & 0xFF
                                       for k in range(len(line)))
        return bytes(out)

    if interlace:
        raw = b""
        for x0, y0, dx, dy in ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4),
                               (1, 0, 2, 2), (0, 1, 1, 2)):
            xs = list(range(x0, width, dx))
            if not xs:
                continue
            raw += filtered([row(xs, y) for y in range(y0, height, dy)])
    else:
        raw = filtered([row(range(width), y) for y in range(height)])
    out = b"\x89PNG\r\n\x1a\n"
    out += chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 1 if interlace else 0))
    if palette:
        out += chunk(b"PLTE", bytes(v for rgb in palette for v in rgb))
    if trns:
        out += chunk(b"tRNS", trns)
    out += chunk(b"IDAT", zlib.compress(raw, 9))
    out += chunk(b"IEND", b"")
    return out


# --------------------------------------------------------------------------
# JPEG, baseline, encoded here: DCT, one quantization table, and canonical
# Huffman tables of equal-length codes (valid, if not small).

ZIGZAG = [0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7,
          14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46,
          53, 60, 61, 54, 47, 55, 62, 63]
DC_SYMBOLS = list(range(12))
AC_SYMBOLS = [0x00, 0xF0] + [(r << 4) | s for r in range(16) for s in range(1, 11)]


def huffman_table(symbols, length):
    bits = [0] * 16
    bits[length - 1] = len(symbols)
    codes = {s: (i, length) for i, s in enumerate(symbols)}
    return bytes(bits) + bytes(symbols), codes


DC_TABLE, DC_CODES = huffman_table(DC_SYMBOLS, 4)
AC_TABLE, AC_CODES = huffman_table(AC_SYMBOLS, 8)


class BitWriter:
    def __init__(self):
        self.out, self.acc, self.n = bytearray(), 0, 0

    def put(self, value, length):
        for i in range(length - 1, -1, -1):
            self.acc = (self.acc << 1) | ((value >> i) & 1)
            self.n += 1
            if self.n == 8:
                self.out.append(self.acc)
                if self.acc == 0xFF:
                    self.out.append(0)
                self.acc, self.n = 0, 0

    def flush(self):
        if self.n:
            self.put((1 << (8 - self.n)) - 1, 8 - self.n)
        return bytes(self.out)


def magnitude(v):
    size = abs(v).bit_length()
    return size, (v if v >= 0 else v + (1 << size) - 1)


def encode_block(w, block, quant, prev_dc):
    coef = []
    for v in range(8):
        for u in range(8):
            cu = 1 / math.sqrt(2) if u == 0 else 1
            cv = 1 / math.sqrt(2) if v == 0 else 1
            s = sum(block[y * 8 + x] * math.cos((2 * x + 1) * u * math.pi / 16) * math.cos((2 * y + 1) * v * math.pi / 16)
                    for y in range(8) for x in range(8))
            coef.append(int(round(cu * cv * s / 4 / quant)))
    zz = [coef[i] for i in ZIGZAG]
    size, bits = magnitude(zz[0] - prev_dc)
    w.put(*DC_CODES[size])
    w.put(bits, size)
    run = 0
    for v in zz[1:]:
        if v == 0:
            run += 1
            continue
        while run > 15:
            w.put(*AC_CODES[0xF0])
            run -= 16
        size, bits = magnitude(v)
        w.put(*AC_CODES[(run << 4) | size])
        w.put(bits, size)
        run = 0
    if run:
        w.put(*AC_CODES[0x00])
    return zz[0]


def jpeg(width, height, planes, sampling=None, adobe=None, quant=4):
    """planes: one function (x, y) -> 0..255 per component, at full size;
    sampling: (h, v) per component (default 1x1 each); adobe: APP14
    transform (0 plain, 1 YCbCr, 2 YCCK) or None for a JFIF file."""
    n = len(planes)
    sampling = sampling or [(1, 1)] * n
    hmax, vmax = max(s[0] for s in sampling), max(s[1] for s in sampling)
    mcux, mcuy = -(-width // (8 * hmax)), -(-height // (8 * vmax))

    def sample(c, x, y):
        # Component c at its own resolution: the mean of the pixels it covers.
        h, v = sampling[c]
        fx, fy = hmax // h, vmax // v
        vals = [planes[c](min(x * fx + i, width - 1), min(y * fy + j, height - 1)) for j in range(fy) for i in range(fx)]
        return sum(vals) / len(vals) - 128

    w = BitWriter()
    prev = [0] * n
    for my in range(mcuy):
        for mx in range(mcux):
            for c in range(n):
                h, v = sampling[c]
                for by in range(v):
                    for bx in range(h):
                        x0, y0 = (mx * h + bx) * 8, (my * v + by) * 8
                        block = [sample(c, x0 + x, y0 + y) for y in range(8) for x in range(8)]
                        prev[c] = encode_block(w, block, quant, prev[c])
    data = w.flush()

    def marker(code, body):
        return b"\xff" + bytes([code]) + struct.pack(">H", len(body) + 2) + body

    out = b"\xff\xd8"
    if adobe is None:
        out += marker(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    else:
        out += marker(0xEE, b"Adobe\x00\x64\x00\x00\x00\x00" + bytes([adobe]))
    out += marker(0xDB, b"\x00" + bytes([quant]) * 64)
    sof = struct.pack(">BHHB", 8, height, width, n)
    for c in range(n):
        sof += bytes([c + 1, (sampling[c][0] << 4) | sampling[c][1], 0])
    out += marker(0xC0, sof)
    out += marker(0xC4, b"\x00" + DC_TABLE)
    out += marker(0xC4, b"\x10" + AC_TABLE)
    sos = bytes([n]) + b"".join(bytes([c + 1, 0x00]) for c in range(n)) + b"\x00\x3f\x00"
    out += marker(0xDA, sos) + data + b"\xff\xd9"
    return out


def images():
    t = "fuzz_image"
    gray = lambda x, y: ((x * 37 + y * 11) & 0xFF,)
    rgb = lambda x, y: ((x * 40) & 0xFF, (y * 50) & 0xFF, ((x + y) * 20) & 0xFF)
    write(t, "gray-4x4.png", png(4, 4, 0, 8, gray))
    write(t, "rgb-5x3.png", png(5, 3, 2, 8, rgb))
    write(t, "rgba-3x3.png", png(3, 3, 6, 8, lambda x, y: rgb(x, y) + (200,)))
    write(t, "gray-alpha-2x3.png", png(2, 3, 4, 8, lambda x, y: gray(x, y) + (90,)))
    write(t, "gray16-3x2.png", png(3, 2, 0, 16, lambda x, y: ((x * 9000 + y * 20000) & 0xFFFF,)))
    write(t, "gray1-9x2.png", png(9, 2, 0, 1, lambda x, y: ((x + y) & 1,)))
    write(t, "palette-4x2.png", png(4, 2, 3, 8, lambda x, y: ((x + y) % 3,),
                                    palette=[(255, 0, 0), (0, 255, 0), (0, 0, 255)], trns=b"\x80"))
    write(t, "rgb-interlaced-9x9.png", png(9, 9, 2, 8, rgb, interlace=True))
    y = lambda x, yy: (x * 30 + yy * 10) & 0xFF
    cb = lambda x, yy: (128 + x * 5) & 0xFF
    cr = lambda x, yy: (128 - yy * 6) & 0xFF
    write(t, "gray-8x8.jpg", jpeg(8, 8, [y]))
    write(t, "ycbcr-12x10.jpg", jpeg(12, 10, [y, cb, cr]))
    write(t, "ycbcr-420-16x16.jpg", jpeg(16, 16, [y, cb, cr], sampling=[(2, 2), (1, 1), (1, 1)]))
    write(t, "cmyk-adobe-8x8.jpg", jpeg(8, 8, [y, cb, cr, lambda x, yy: 40], adobe=0))


# --------------------------------------------------------------------------
# safetensors: u64 header length, JSON header, data.

def safetensors(tensors, metadata=None):
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def checkpoints():
    t = "fuzz_safetensors"
    f32 = lambda *v: struct.pack("<%df" % len(v), *v)
    meta = {"step": "5", "format": "contra checkpoint", "sdk_version": "0.3.0"}
    mlp = {"encoder.fc0.weight": ("F32", [2, 3], f32(0.1, -0.2, 0.3, 0.4, 0.5, -0.6)),
           "encoder.fc0.bias": ("F32", [2], f32(0.0, 1.0))}
    write(t, "checkpoint.safetensors", safetensors(mlp, meta))
    write(t, "every-dtype.safetensors", safetensors({
        "u8": ("U8", [3], b"\x01\x02\x03"), "i32": ("I32", [1, 2], struct.pack("<ii", -1, 7)),
        "i64": ("I64", [], struct.pack("<q", 42)), "empty": ("F32", [0, 4], b"")}, {"step": "0"}))
    write(t, "no-metadata.safetensors", safetensors({"x": ("F32", [1], f32(2.5))}))
    write(t, "empty.safetensors", safetensors({}))


# --------------------------------------------------------------------------
# Run folders: run.json NUL summary.json NUL metrics.jsonl NUL checkpoints/latest.

def runs():
    t = "fuzz_run_json"
    base = ROOT / "tests" / "fixtures" / "runs"
    for d in [base / "hcl" / "fixture-loss.beta=0-seed0", base / "malformed" / "bad-metrics",
              base / "malformed" / "bad-summary"]:
        parts = []
        for name in ["run.json", "summary.json", "metrics.jsonl"]:
            f = d / name
            parts.append(f.read_bytes() if f.exists() else b"")
        parts.append(b"step-00000006.safetensors\n")
        write(t, "run-" + d.name, b"\0".join(parts))
    write(t, "metrics-lines", b'{"type": "step", "step": 1, "loss": 0.5}\nnot json\n{"type": "eval", "step": 2, '
                              b'"figures": {"knn.top1": 0.9}}\n')
    write(t, "run-resumed", b'{"pipeline": "p", "steps_from": 1, "seed": 3, "overrides": ["a=1"]}\0'
                            b'{"error": "stopped", "steps": 2}\0{"type": "step", "step": 3}\n{"type": "st\0../x\n')


# --------------------------------------------------------------------------
# Plugin manifests, in the layout fuzz_manifest.cpp describes.

def s8(text):
    text = text.encode()
    return bytes([len(text)]) + text


def manifests():
    t = "fuzz_manifest"

    def entry(kind, device, name, params, flags=0):
        out = bytes([kind, device, flags]) + s8(name) + s8("a plugin for the fuzzer") + bytes([len(params)])
        for p in params:
            out += p
        return out

    def param(type_, name, default, modifiers=b"\x00", required=0):
        return bytes([type_, required]) + s8(name) + s8("help text") + default + modifiers

    f64 = lambda v: struct.pack("<d", v)
    i64 = lambda v: struct.pack("<q", v)
    temperature = param(2, "temperature", f64(0.5), b"\x01" + f64(0.01) + f64(10.0))
    mode = param(3, "mode", s8("a"), b"\x04\x02" + s8("a") + s8("b"))
    sizes = param(4, "sizes", b"\x02" + i64(1) + i64(2), b"\x08" + i64(1) + i64(4))
    path = param(3, "path", s8(""), required=1)
    raw = bytes([2]) + s8("temperature") + bytes([2]) + f64(0.2) + s8("mode") + bytes([3]) + s8("c")
    header = b"\x10" + s8("0.3.0") + s8("avx2,fma")
    write(t, "one-loss", header + bytes([1]) + entry(6, 0, "loss_a", [temperature, mode]) + raw)
    write(t, "two-plugins", header + bytes([2]) + entry(1, 0, "src", [path, sizes]) +
          entry(6, 1, "loss_b", [temperature]) + b"\x00")
    write(t, "other-abi", b"\x02" + struct.pack("<I", 99) + s8("9.9.9") + s8("sdk=9.9.9") + b"\x00")
    write(t, "bad-magic", b"\x01" + struct.pack("<I", 0x12345678) + s8("0.3.0") + s8("x") + b"\x00")
    write(t, "throwing-schema", header + bytes([1]) + entry(2, 0, "aug", [], flags=1))
    write(t, "null-strings", b"\x0c" + s8("") + s8("") + b"\x00")


# --------------------------------------------------------------------------
# Word lists (rendered_words' `words`): lines as /usr/share/dict/words has
# them, and the line forms the reader must take apart.

DICT_WORDS = ("A AA AAA Asunci\u00f3n Asunci\u00f3n's Atat\u00fcrk Bart\u00f3k Wm Wm's Wobegon Wodehouse "
              "Wodehouse's Wolf Wolfe Wolfe's Wolff Wolfgang Wolf's Wollongong Wollstonecraft Wonder "
              "Wonderbra Wong Wood Woodard Woodhull jalopy jalopy's jalousie jalousies jam jamb jamboree "
              "jamborees jamb's jambs jammed jamming jams jangle jangled jangles janitor janitorial "
              "janitors").split()


def word_lists():
    t = "fuzz_word_list"
    write(t, "dict-words", "\n".join(DICT_WORDS) + "\n")
    # A byte order mark, CRLF line ends, blanks around words, one word in
    # two spellings, and no line end after the last word.
    write(t, "bom-crlf-blanks", b"\xef\xbb\xbf" + "\r\n".join(
        ["apple", "  banana", "cherry\t", "\tdate \r", "Apple", "APPLE", "elderberry", "fig"]).encode())
    # Lines that are no word: too short, too long (13 and 65 letters),
    # digits, hyphens, inner blanks, a NUL, Latin-1 and UTF-8 letters, blank lines.
    lines = [b"ab", b"abc", b"abcdefghijklm", b"a" * 65, b"route66", b"well-known", b"two words", b"nul\0byte",
             b"caf\xe9", b"", b"   ", "na\u00efve".encode(), b"twelveletter", b"ok"]
    write(t, "line-forms", b"\n".join(lines) + b"\n\n")
    write(t, "one-word", "word")


# --------------------------------------------------------------------------
# SentencePiece models, trained by spm_train on a tiny text: unigram, BPE
# and char models; small normalization and denormalization maps of their own
# (the built-in nmt_nfkc map alone is 240 KB), so that the seeds hold the
# tries model_check walks; a model with pad, bos and eos of its own.

SPM_TEXT = ("the quick brown fox jumps over the lazy dog\n"
            "a cat sat on the mat under the old tree\n"
            "birds sing and the river flows slowly past the mill\n"
            "contrastive learning of image text pairs\n"
            "The Quick Brown Fox, a CAF\u00c9 and a Na\u00efve \ufb01ne \uff21\uff42 text\n") * 40

# Hex code points, tab, hex code points: upper case to lower case, the fi
# ligature to f i, fullwidth A and b to ASCII.
SPM_NORMALIZATION = "".join("%X\t%X\n" % (c, c + 32) for c in range(ord("A"), ord("Z") + 1)) + \
    "FB01\t66 69\nFF21\t61\nFF42\t62\n"
SPM_DENORMALIZATION = "66 69\tFB01\n"


def sentencepiece_models(spm_train):
    t = "fuzz_sentencepiece_model"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "text.txt").write_text(SPM_TEXT, encoding="utf-8")
        (tmp / "norm.tsv").write_text(SPM_NORMALIZATION)
        (tmp / "denorm.tsv").write_text(SPM_DENORMALIZATION)
        # Paths relative to the folder spm_train runs in: a model records
        # them, and the seeds should not change from one run to the next.
        own_normalization = ["--normalization_rule_tsv=norm.tsv"]
        models = {
            "unigram-identity.model": ["--model_type=unigram", "--vocab_size=60", "--normalization_rule_name=identity"],
            "bpe-own-maps.model": ["--model_type=bpe", "--vocab_size=60",
                                   "--denormalization_rule_tsv=denorm.tsv"] + own_normalization,
            "char-special-ids.model": ["--model_type=char", "--pad_id=0", "--unk_id=1", "--bos_id=2", "--eos_id=3",
                                       "--user_defined_symbols=<sep>"] + own_normalization,
        }
        for name, options in models.items():
            subprocess.run([spm_train, "--input=text.txt", "--model_prefix=m", "--num_threads=1", "--minloglevel=2",
                            "--hard_vocab_limit=false"] + options,
                           cwd=tmp, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            write(t, name, (tmp / "m.model").read_bytes())


# --------------------------------------------------------------------------
# Pipelines: every file of pipelines/ and of the invalid fixtures; a few with
# --set overrides after a NUL.

def pipelines():
    t = "fuzz_pipeline"
    for f in sorted((ROOT / "pipelines").glob("*.toml")):
        write(t, f.name, f.read_bytes())
    for f in sorted((ROOT / "tests" / "fixtures" / "pipelines" / "invalid").glob("*.toml")):
        write(t, "invalid-" + f.name, f.read_bytes())
    quick = (ROOT / "pipelines" / "quickstart.toml").read_bytes()
    write(t, "quickstart-set.toml", quick + b"\0train.max_steps=3\nloss.temperature=0.2\naugment.chain.1.p=1\n"
                                           b"source.images=/tmp/x.gz")
    write(t, "views-set.toml", b'[source]\nplugin = "synthetic"\n[encoder]\nplugin = "mlp"\n[loss]\n'
                               b'plugin = "info_nce"\n[optimizer]\nplugin = "sgd"\n[[augment.view]]\ncount = 2\n'
                               b'[[augment.view.chain]]\nplugin = "horizontal_flip"\n'
                               b'\0augment.view.0.count=1\neval.test.plugin="synthetic"\ntrain.device=cuda')


def main():
    spm_train = shutil.which("spm_train")
    if not spm_train:
        print("make_corpus.py: spm_train not found: the fuzz_sentencepiece_model seeds are kept as they are")
    clean(keep=() if spm_train else ("fuzz_sentencepiece_model",))
    idx()
    cifar()
    npys()
    images()
    checkpoints()
    runs()
    manifests()
    word_lists()
    if spm_train:
        sentencepiece_models(spm_train)
    pipelines()
    for d in sorted(CORPUS.iterdir()):
        files = list(d.iterdir())
        print("%-24s %3d files %7d bytes" % (d.name, len(files), sum(f.stat().st_size for f in files)))


if __name__ == "__main__":
    sys.exit(main())
