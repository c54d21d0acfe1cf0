#!/usr/bin/env bash
# Fetch the real Llama-2 SentencePiece vocabulary (as GGUF) and llama.cpp's reference
# tokenization vectors, for tests/test_tokenization.py (set CODELLAMA_LSP_LLAMA_VOCAB=DEST).
# Source: the llama-cpp-python sdist on PyPI (MIT); nothing is downloaded from a model hub.
# Usage: scripts/fetch_llama_vocab.sh DEST   (idempotent: does nothing if DEST has the files)
set -euo pipefail
DEST="${1:?usage: $0 DEST}"
PY="${PYTHON:-python3}"
NAME=ggml-vocab-llama-spm.gguf
FILES=("$NAME" "$NAME.inp" "$NAME.out")
have_all() { for f in "${FILES[@]}"; do [ -s "$DEST/$f" ] || return 1; done; }
if have_all; then echo "$DEST already has $NAME"; exit 0; fi
mkdir -p "$DEST"
TMP="$(mktemp -d)"; trap 'rm -rf "$TMP"' EXIT
"$PY" -m pip download --quiet --no-deps --no-binary :all: llama-cpp-python -d "$TMP"
SDIST="$(ls "$TMP"/llama_cpp_python-*.tar.gz | head -n 1)"
for f in "${FILES[@]}"; do
  member="$(tar tzf "$SDIST" | grep "/vendor/llama.cpp/models/$f\$" | head -n 1)"
  [ -n "$member" ] || { echo "missing $f in $SDIST" >&2; exit 1; }
  tar xzf "$SDIST" -O "$member" > "$DEST/$f.part" && mv "$DEST/$f.part" "$DEST/$f"
done
echo "fetched $NAME and reference vectors into $DEST"
