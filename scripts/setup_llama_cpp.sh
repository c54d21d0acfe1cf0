#!/usr/bin/env bash
# Build llama.cpp's OpenAI-compatible server (llama-cpp-python, from its PyPI sdist) into its own
# venv, and convert the demo model to GGUF with the converter that ships in the same sdist; for
# tests/test_llama_cpp.py (set CODELLAMA_LSP_LLAMA_CPP=DEST).
# Usage: scripts/setup_llama_cpp.sh DEST
#   Idempotent: DEST is a cache (keep it between runs; CI keeps it under ~/.cache). The build
#   happens once per llama-cpp-python version; the GGUF is remade only when the demo model changes.
#   PYTHON: the project's interpreter (the converter needs torch and transformers from it);
#   nothing is installed into it.
set -euo pipefail
DEST="${1:?usage: $0 DEST}"
VERSION=0.3.36
PY="${PYTHON:-python3}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$DEST"
DEST="$(cd "$DEST" && pwd)"
SRC="$DEST/llama_cpp_python-$VERSION"

if [ ! -f "$SRC/.unpacked" ]; then
  "$PY" -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$DEST"
  rm -rf "$SRC"
  tar xzf "$DEST/llama_cpp_python-$VERSION.tar.gz" -C "$DEST"
  rm "$DEST/llama_cpp_python-$VERSION.tar.gz"
  touch "$SRC/.unpacked"
fi

if [ ! -f "$DEST/venv/.installed-$VERSION" ]; then
  # The Python package only loads libllama and libggml*: skip llama.cpp's "common" library
  # (chat templates, HTTP client: half the compile time), which its CMakeLists forces on,
  # the multimodal library, tools, examples and tests. CPU only.
  sed -i 's/set(LLAMA_BUILD_COMMON ON CACHE BOOL "Build llama.cpp common library" FORCE)/set(LLAMA_BUILD_COMMON OFF CACHE BOOL "" FORCE)/' \
    "$SRC/CMakeLists.txt"
  export CMAKE_ARGS="-DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DGGML_OPENMP=OFF -DGGML_CUDA=OFF \
-DGGML_VULKAN=OFF -DGGML_METAL=OFF -DGGML_BLAS=OFF"
  export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
  rm -rf "$DEST/venv" "$DEST/wheels"
  "$PY" -m venv "$DEST/venv"
  "$DEST/venv/bin/python" -m pip install --quiet --upgrade pip
  "$DEST/venv/bin/python" -m pip wheel --no-deps -w "$DEST/wheels" "$SRC"
  "$DEST/venv/bin/python" -m pip install --quiet --find-links "$DEST/wheels" \
    --only-binary llama-cpp-python "llama-cpp-python[server]==$VERSION"
  touch "$DEST/venv/.installed-$VERSION"
fi

# llama.cpp's own C++ server (`llama-server`: token-id prompts, /infill, /props, its KV cache
# reused between requests) from the same source, the sdist's vendor/llama.cpp, for
# tests/test_llama_server.py and benchmarks/peer_llama_vim.py. Its own folder, keyed by version,
# so the Python server's build above stays valid. Only the llama-server target and what it links
# (llama, ggml, common, mtmd, cpp-httplib), static, CPU only, no web UI (no download, no npm),
# no OpenSSL. The first build takes ~12 CPU-minutes.
SERVER="$DEST/llama-server-$VERSION"
if [ ! -x "$SERVER/bin/llama-server" ]; then
  rm -rf "$SERVER"
  cmake -S "$SRC/vendor/llama.cpp" -B "$SERVER/build" -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF \
    -DGGML_OPENMP=OFF -DGGML_CUDA=OFF -DGGML_VULKAN=OFF -DGGML_METAL=OFF -DGGML_BLAS=OFF \
    >"$DEST/llama-server-$VERSION.configure.log"
  cmake --build "$SERVER/build" --target llama-server \
    -j "${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
  mkdir -p "$SERVER/bin"
  cp "$SERVER/build/bin/llama-server" "$SERVER/bin/llama-server.part"
  mv "$SERVER/bin/llama-server.part" "$SERVER/bin/llama-server"
  rm -rf "$SERVER/build"  # ~200 MB of objects; the binary is all the tests run
fi

# The converter runs on the project's interpreter (torch, transformers, numpy) with the sdist's
# own gguf-py; it also imports sentencepiece (and protobuf, to write a tokenizer.model), kept
# here rather than in the project's venv.
if [ ! -d "$DEST/converter-packages/google/protobuf" ]; then
  "$PY" -m pip install --quiet --target "$DEST/converter-packages" sentencepiece protobuf
fi
PYTHONPATH="$ROOT" "$PY" "$ROOT/scripts/demo_gguf.py" "$DEST"
