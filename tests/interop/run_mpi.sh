#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs an MPI program on RANKS ranks of this machine:
#   run_mpi.sh RANKS PROGRAM [ARGS...]
# Exits 77 (Meson's skip) when mpirun is missing. With Open MPI it passes
# --oversubscribe (more ranks than cores is fine for a test), the isolated
# launcher (no ssh needed on one machine) and, as root, --allow-run-as-root
# (the same as OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1).
set -euo pipefail
ranks=$1
program=$2
shift 2
mpirun=$(command -v mpirun || true)
if [ -z "$mpirun" ]; then
  echo "SKIP: mpirun not found; the MPI example needs an MPI launcher (Debian: apt-get install openmpi-bin)"
  exit 77
fi
args=(-np "$ranks")
if "$mpirun" --version 2>&1 | grep -q "Open MPI"; then
  args+=(--oversubscribe --mca plm isolated)
  [ "$(id -u)" -eq 0 ] && args+=(--allow-run-as-root)
fi
echo "+ $mpirun ${args[*]} $program $*"
exec "$mpirun" "${args[@]}" "$program" "$@"
