#!/usr/bin/env bash
# Installs what building and testing alloy needs, from Debian/Ubuntu packages: cmake, g++, make,
# doctest-dev (the test framework) and fortunes-min (the demo's text corpus). Does nothing when they are all present. Never installs
# CUDA: with nvcc on PATH (or in /usr/local/cuda/bin) the build also compiles the CUDA tests and
# examples for sm_90; without it the build is host-only.
set -euo pipefail

packages=(cmake g++ make doctest-dev fortunes-min)

if dpkg -s "${packages[@]}" >/dev/null 2>&1; then
  echo "install-deps: ${packages[*]} already installed"
else
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "install-deps: need root or sudo to install: ${packages[*]}" >&2
      exit 1
    fi
    sudo=(sudo)
  fi
  echo "install-deps: installing ${packages[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${packages[@]}" >/dev/null
fi

if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
  nvcc_path=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
  echo "install-deps: nvcc found ($nvcc_path): CUDA tests and examples are built for sm_90"
else
  echo "install-deps: nvcc not found: host-only build (CUDA tests and examples are not built)"
fi
