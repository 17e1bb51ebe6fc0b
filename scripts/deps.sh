#!/usr/bin/env bash
# deps.sh — find posttrain's libraries, install the missing Debian packages, print one line each.
#
# Each feature is a pkg-config module and the Debian package that provides it. A module that
# pkg-config cannot find is installed with apt-get (through sudo when not root), after an
# `apt-get update`, since a fresh machine's package lists may be empty or stale. The script
# prints ✓/✗ per feature and exits non-zero when a required one is still missing.
# Set POSTTRAIN_NO_INSTALL=1 to only report.
set -u

# feature        pkg-config module   Debian package          required
features=(
  "cJSON         libcjson            libcjson-dev            yes"
  "PCRE2         libpcre2-8          libpcre2-dev            yes"
  "SQLite        sqlite3             libsqlite3-dev          yes"
  "libcurl       libcurl             libcurl4-openssl-dev    yes"
  "OpenBLAS      openblas            libopenblas-dev         yes"
  "Criterion     criterion           libcriterion-dev        yes"
  "microhttpd    libmicrohttpd       libmicrohttpd-dev       yes"
)

have() { pkg-config --exists "$1" 2>/dev/null; }

missing=()
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
for f in "${features[@]}"; do
  read -r name mod pkg req <<<"$f"
  command -v pkg-config >/dev/null 2>&1 && have "$mod" || missing+=("$pkg")
done

if [ ${#missing[@]} -gt 0 ] && [ "${POSTTRAIN_NO_INSTALL:-0}" != 1 ]; then
  echo "deps: installing ${missing[*]}" >&2
  sudo=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      echo "deps: not root and no sudo; install as root: apt-get install ${missing[*]}" >&2; fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq >&2 || echo "deps: apt-get update failed" >&2
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 ||
    echo "deps: apt-get install failed for: ${missing[*]}" >&2
fi

status=0
for f in "${features[@]}"; do
  read -r name mod pkg req <<<"$f"
  if have "$mod"; then
    printf '  ✓ %-10s %s\n' "$name" "$(pkg-config --modversion "$mod")"
  else
    printf '  ✗ %-10s missing (Debian package %s)\n' "$name" "$pkg"
    [ "$req" = yes ] && status=1
  fi
done
exit $status
