# SPDX-License-Identifier: MIT
# Shared by the tools (demo, test, bench, lint, instructions): install what is missing, configure, build.
# Sourced, not run. Works on a fresh Debian 12 machine as root or with sudo.

WEFT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Debian packages the build needs; WEFT_EXTRA_PACKAGES adds more. dpkg-dev
# gives Meson dpkg-architecture, without which it installs into lib64, a
# directory Debian's loader, pkg-config and CMake do not search.
WEFT_PACKAGES="meson ninja-build g++ pkg-config dpkg-dev libboost-context-dev libgtest-dev libgmock-dev libbenchmark-dev"
# What the whole test suite needs beyond the build, so that no test or example
# is skipped for a missing package (tools/test): oneTBB and OpenMP (libgomp
# comes with g++) for the interop tests and the benchmark peers, Open MPI and
# its launcher for the MPI example, Boost.Fiber for a benchmark peer, CMake
# for the CMake package test, nlohmann-json for the tests that read JSON.
WEFT_TEST_PACKAGES="libtbb-dev libopenmpi-dev openmpi-bin libboost-fiber-dev cmake nlohmann-json3-dev"

weft_install_missing() {
  local missing=""
  for p in $WEFT_PACKAGES ${WEFT_EXTRA_PACKAGES:-}; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
  done
  [ -z "$missing" ] && return 0
  echo "Installing:$missing"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
  WEFT_INSTALLED=1
}

# weft_build DIR [meson options...]: configure (once) and build.
weft_build() {
  local dir=$1
  shift
  if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" "$WEFT_ROOT" --wrap-mode=nodownload "$@"
  elif [ "${WEFT_INSTALLED:-0}" = 1 ]; then
    # Packages were installed since the build was configured: look again
    # for the optional ones (oneTBB, MPI, ...).
    meson setup --reconfigure "$dir" "$WEFT_ROOT" --wrap-mode=nodownload "$@"
  fi
  ninja -C "$dir"
}
