#!/usr/bin/env python3
"""Fails on an include that runs against contra's intended structure
(docs/architecture.md, "Structure"):

  config   -> SDK (and toml++) only: it reads, it loads nothing
  loader   -> SDK (and Boost.DLL)
  device   -> SDK and the bridge table (sdk/bridge)
  train    -> SDK and device
  distributed -> SDK and train (it implements the step's collectives)
  assembly -> config, loader, device, train
  graph    -> everything above but the bridge (device/ wraps it)
  python   -> everything above but the bridge (the Python module, a client as tools/contra is)
  plugins  -> the SDK alone (and files of their own under plugins/); their
              tests (test_*.cpp) also tests/support and other plugins' headers
  SDK      -> nothing of the runtime
  nothing under runtime/ includes sdk/src/

Usage: check_arrows.py [REPO_ROOT]. Prints each wrong arrow as
FILE:LINE: what it includes, and why it may not; exits 1 if there is any.
"""
import os
import re
import sys

root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", ".."))
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')
RUNTIME_PARTS = ["config", "loader", "device", "train", "distributed", "assembly", "graph", "python"]
# Which runtime parts each part may include (besides itself and the SDK).
MAY_INCLUDE = {
    "config": set(),
    "loader": set(),
    "device": {"bridge"},
    "train": {"device"},
    "distributed": {"train", "device"},
    "assembly": {"config", "loader", "device", "train"},
    "graph": {"config", "loader", "device", "train", "distributed", "assembly"},
    "python": {"config", "loader", "device", "train", "distributed", "assembly", "graph"},
}
SOURCE = (".cpp", ".hpp", ".h", ".cu", ".cuh")


def sources(folder):
    for dirpath, _, files in os.walk(os.path.join(root, folder)):
        for f in sorted(files):
            if f.endswith(SOURCE):
                yield os.path.join(dirpath, f)


def includes(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            m = INCLUDE.match(line)
            if m:
                yield n, m.group(1), m.group(2)


def runtime_part(name):
    """The runtime part an include names ("config/pipeline_spec.hpp" -> config), or None."""
    head = name.split("/")[0]
    if head in RUNTIME_PARTS and "/" in name:
        return head
    if os.path.basename(name) == "cuda_bridge.hpp":
        return "bridge"
    return None


problems = []


def wrong(path, line, text):
    problems.append(f"{os.path.relpath(path, root)}:{line}: {text}")


sdk_src = set()
for p in sources("sdk/src"):
    sdk_src.add(os.path.relpath(p, os.path.join(root, "sdk/src")))
    sdk_src.add(os.path.basename(p))

for part in RUNTIME_PARTS:
    for path in sources(os.path.join("runtime", part)):
        here = os.path.dirname(path)
        for line, kind, name in includes(path):
            if "sdk/src" in name or (kind == '"' and name in sdk_src and not os.path.exists(os.path.join(here, name))):
                wrong(path, line, f'includes "{name}" from sdk/src/: the SDK\'s private sources are not the runtime\'s')
                continue
            target = runtime_part(name)
            if kind == '"' and target is None and not os.path.exists(os.path.join(here, name)):
                wrong(path, line, f'includes "{name}", which is not in runtime/{part}/')
                continue
            if target and target != part and target not in MAY_INCLUDE[part]:
                allowed = ", ".join(sorted(MAY_INCLUDE[part])) or "no other part"
                wrong(path, line, f"{part} -> {target}: runtime/{part} may include the SDK and {allowed}")

with open(os.path.join(root, "runtime", "CMakeLists.txt"), encoding="utf-8") as f:
    for n, line in enumerate(f, 1):
        if "sdk/src" in line and not line.lstrip().startswith("#"):
            wrong(os.path.join(root, "runtime", "CMakeLists.txt"), n, "adds sdk/src/ to the runtime's include path")

plugin_headers = {os.path.basename(p) for p in sources("plugins")}
test_support = {os.path.basename(p) for p in sources("tests/support")}

for path in sources("plugins"):
    here = os.path.dirname(path)
    # A plugin's tests (test_*.cpp beside it) may also use the test support
    # headers and other plugins' headers (as oracles), never the runtime's.
    is_test = os.path.basename(path).startswith("test_")
    for line, kind, name in includes(path):
        if kind == '"':
            resolved = os.path.normpath(os.path.join(here, name))
            if resolved.startswith(os.path.join(root, "plugins") + os.sep) and os.path.exists(resolved):
                continue
            if is_test and "/" not in name and (name in test_support or name in plugin_headers):
                continue
            if is_test:
                wrong(path, line, f'includes "{name}": a plugin\'s test includes the SDK, tests/support and plugins only')
            else:
                wrong(path, line, f'includes "{name}": a plugin includes the SDK (<contra/...>) and files under plugins/ only')
        elif runtime_part(name) or name.startswith(("runtime/", "sdk/")):
            wrong(path, line, f"includes <{name}>: a plugin includes the SDK (<contra/...>) only")

for folder in ("sdk/include", "sdk/src"):
    for path in sources(folder):
        for line, kind, name in includes(path):
            target = runtime_part(name)
            if target and target != "bridge":
                wrong(path, line, f"includes {name}: the SDK knows nothing of the runtime")

if problems:
    print("wrong arrows (docs/architecture.md, Structure):")
    print("\n".join(problems))
    sys.exit(1)
print("check_arrows: every include follows the structure")
