#!/usr/bin/env bash
# pipelines/clip_image_text.toml and clip_webdataset.toml on data this test
# writes as their users' data comes: PNG images it draws (a coloured square
# in one of four places) with their captions ("a red square at the top
# left"), as an open_clip CSV manifest and as WebDataset tar shards. Each
# pipeline trains a few steps with smaller towers (--set) and records its run.
# Usage: clip_pipelines.sh CONTRA REPO_ROOT WORK_DIR
set -euo pipefail
contra=$1 repo=$2 work=$3
rm -rf "$work"
mkdir -p "$work/img" "$work/shards"

python3 - "$work" <<'PY'
import io, struct, sys, tarfile, zlib

work = sys.argv[1]

def png(width, height, rgb):
    """8-bit RGB PNG bytes of rows of (r, g, b) pixels."""
    raw = b"".join(b"\x00" + bytes(v for px in row for v in px) for row in rgb)
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))

colours = {"red": (220, 30, 30), "green": (30, 200, 60), "blue": (40, 60, 220)}
places = {"top left": (0, 0), "top right": (0, 1), "bottom left": (1, 0), "bottom right": (1, 1)}
samples = []
for i, (colour, place) in enumerate((c, p) for c in colours for p in places for _ in range(3)):
    size = 32
    y0, x0 = (v * size // 2 for v in places[place])
    rows = [[colours[colour] if y0 <= y < y0 + size // 2 and x0 <= x < x0 + size // 2 else (235, 235, 235)
             for x in range(size)] for y in range(size)]
    samples.append((f"{i:04d}", png(size, size, rows), f"a {colour} square at the {place}, drawing {i}"))

# The manifest: a header, quoted captions (they hold commas).
with open(f"{work}/train.csv", "w") as f:
    f.write("filepath,title\n")
    for key, data, caption in samples:
        open(f"{work}/img/{key}.png", "wb").write(data)
        f.write(f'img/{key}.png,"{caption}"\n')

# Two shards of KEY.png + KEY.txt members.
for shard in range(2):
    with tarfile.open(f"{work}/shards/part-{shard:02d}.tar", "w", format=tarfile.USTAR_FORMAT) as tar:
        for key, data, caption in samples[shard::2]:
            for name, payload in ((f"{key}.png", data), (f"{key}.txt", caption.encode())):
                info = tarfile.TarInfo(name)
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
PY

# Small towers and batches: the pipelines' wiring, not their scale.
small=(--set train.max_steps=6 --set train.epochs=3 --set train.log_every=2 --set sampler.batch_size=12
       --set source.height=32 --set source.width=32
       --set encoder.width=8 --set head.output=32
       --set tower.text.encoder.width=32 --set tower.text.encoder.layers=1 --set tower.text.encoder.output=32)

run() {  # NAME PIPELINE SETTINGS...
  local name=$1 pipeline=$2
  shift 2
  "$contra" run "$repo/pipelines/$pipeline" --run-dir "$work/$name" "${small[@]}" "$@" > "$work/$name.log" 2>&1 || {
    cat "$work/$name.log"; echo "$pipeline did not run"; exit 1; }
  grep -q "^loss: mean of the first" "$work/$name.log" || { cat "$work/$name.log"; echo "$pipeline: no loss line"; exit 1; }
  grep -q '"steps": 6' "$work/$name/summary.json" || { cat "$work/$name/summary.json"; echo "$pipeline: not 6 steps"; exit 1; }
  echo "$pipeline: $(grep '^loss:' "$work/$name.log")"
}
run image_text clip_image_text.toml --set source.manifest="$work/train.csv"
run webdataset clip_webdataset.toml --set "source.shards=[\"$work/shards/part-{00..01}.tar\"]"
