#!/usr/bin/env bash
# Installs the Debian packages the test suite uses when they are missing: PostgreSQL for
# throwaway clusters, librdkafka's mock broker (and gcc to build its launcher), kcat as a
# second Kafka client, Chromium to render Swagger UI, nginx for compose:local's gateway, strace to
# see the fsyncs behind an answer. Extra package names may be passed.
set -euo pipefail
packages=(postgresql librdkafka-dev kcat gcc libc6-dev chromium nginx strace "$@")
if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "test prerequisites: not a Debian system; make sure these are installed: ${packages[*]}" >&2
  exit 0
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "the test suite needs: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "installing test prerequisites: ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
