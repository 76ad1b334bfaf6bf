// SPDX-License-Identifier: MIT
// Beyond one machine: MPI between processes, weft inside each. Every rank
// reduces its slice of a global range with weft::parallel_reduce on a runtime
// sized to its share of the node's cores, then the main thread combines the
// partial results with MPI_Allreduce. Meanwhile, when the MPI library allows
// MPI calls from any thread (MPI_THREAD_MULTIPLE), a task of each rank passes
// a value around a ring of ranks and waits for its message with MPI_Test and
// weft::yield(), holding its worker only while it polls. Every rank checks
// the global results against a closed form (integers) and a serial sum
// (floating point), and the value it received against the one its neighbour
// sent; the program exits 1 on a mismatch.
//
//   mpirun -np 4 ./mpi_reduce [n [workers]]
//
// n: the size of the global range (default 4 000 000); workers: weft workers
// per rank (default: the node's hardware threads divided among the ranks on
// it). The test suite runs 4 ranks x 2 workers (tests/interop/run_mpi.sh: more
// ranks than cores needs --oversubscribe, and as root --allow-run-as-root).
//
// The rules (docs/guide.md, "When one machine is not enough"):
//  - With MPI_THREAD_FUNNELED, MPI is called only from the main thread, which
//    is never a weft worker: weft's tasks make no MPI call. A task may resume
//    on another worker thread after any weft call, so MPI calls inside tasks
//    need MPI_THREAD_MULTIPLE (SERIALIZED is not enough). This program asks
//    for MULTIPLE, needs FUNNELED, and makes MPI calls in tasks only when it
//    got MULTIPLE.
//  - A task that waits for a message polls it (MPI_Test) and lets its worker
//    run other work in between (weft::yield()), instead of blocking the
//    worker thread in MPI_Wait.
//  - weft calls made by the main thread block it until they return, so an MPI
//    call comes after the weft call whose result it sends.
//  - One process per node, one weft worker per core: ranks that share a node
//    split its cores between their runtimes.
#include <mpi.h>
#include <weft/weft.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <thread>

namespace {

double term(std::int64_t i) { return 1.0 / (1.0 + static_cast<double>(i) * 1e-6); }

// This rank's share of the node's hardware threads, at least one.
int workers_for_this_rank() {
  MPI_Comm node;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  int ranks_on_node = 1;
  MPI_Comm_size(node, &ranks_on_node);
  MPI_Comm_free(&node);
  const int hardware = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::max(1, hardware / ranks_on_node);
}

// Waits for request inside a weft task without blocking the worker for long:
// polls it, and between polls lets this worker run its other ready work.
// Needs MPI_THREAD_MULTIPLE (the task may run on any worker thread).
void wait_polling(MPI_Request& request) {
  int done = 0;
  MPI_Test(&request, &done, MPI_STATUS_IGNORE);
  while (!done) {
    weft::yield();  // returns at once when this worker has nothing else to run
    MPI_Test(&request, &done, MPI_STATUS_IGNORE);
  }
}

// Sends value to the next rank of the ring and returns what the previous rank
// sent, from inside a weft task.
std::int64_t pass_around_ring(std::int64_t value, int rank, int size) {
  std::int64_t received = -1;
  MPI_Request requests[2];
  MPI_Irecv(&received, 1, MPI_INT64_T, (rank + size - 1) % size, 0, MPI_COMM_WORLD, &requests[0]);
  MPI_Isend(&value, 1, MPI_INT64_T, (rank + 1) % size, 0, MPI_COMM_WORLD, &requests[1]);
  wait_polling(requests[1]);
  wait_polling(requests[0]);
  return received;
}

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  if (provided < MPI_THREAD_FUNNELED) {
    std::fprintf(stderr, "mpi_reduce: the MPI library does not provide MPI_THREAD_FUNNELED\n");
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  int rank = 0;
  int size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);

  const std::int64_t n = argc > 1 ? std::atoll(argv[1]) : 4'000'000;
  const int workers = argc > 2 ? std::atoi(argv[2]) : workers_for_this_rank();
  if (n < 1 || workers < 1) {
    if (rank == 0) std::fprintf(stderr, "usage: mpi_reduce [n >= 1 [workers >= 1]]\n");
    MPI_Finalize();
    return 2;
  }
  // This rank's slice of [0, n).
  const std::int64_t first = n * rank / size;
  const std::int64_t last = n * (rank + 1) / size;

  // weft inside the process: a runtime of our own, so that ranks sharing a
  // node do not each start one worker per core.
  weft::runtime rt{{.workers = workers}};
  const bool mpi_in_tasks = provided >= MPI_THREAD_MULTIPLE;
  std::int64_t from_previous = -1;  // what the ring brought: the previous rank's first
  const auto [local_count, local_sum] = rt.run([&] {
    auto [sums, ring] = weft::join(
        [&] {
          return weft::join(
              [&] {
                return weft::parallel_reduce(
                    first, last, std::int64_t{0}, [](std::int64_t i) { return i; }, std::plus<>{});
              },
              [&] { return weft::parallel_reduce(first, last, 0.0, term, std::plus<>{}); });
        },
        [&] { return mpi_in_tasks ? pass_around_ring(first, rank, size) : std::int64_t{-1}; });
    from_previous = ring;
    return sums;
  });

  // Back on the main thread: combine across ranks.
  std::int64_t count = 0;
  double sum = 0.0;
  MPI_Allreduce(&local_count, &count, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
  MPI_Allreduce(&local_sum, &sum, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);

  // Every rank checks the global results.
  double serial = 0.0;
  for (std::int64_t i = 0; i < n; ++i) serial += term(i);
  const std::int64_t expected = n * (n - 1) / 2;
  int ok = count == expected && std::fabs(sum - serial) <= 1e-9 * serial ? 1 : 0;
  if (!ok) {
    std::fprintf(stderr, "mpi_reduce rank %d: count %lld (expected %lld), sum %.17g (serial %.17g)\n", rank,
                 static_cast<long long>(count), static_cast<long long>(expected), sum, serial);
  }
  const int previous = (rank + size - 1) % size;
  const std::int64_t expected_from_previous = n * previous / size;
  if (mpi_in_tasks && from_previous != expected_from_previous) {
    std::fprintf(stderr, "mpi_reduce rank %d: received %lld from rank %d, which sent %lld\n", rank,
                 static_cast<long long>(from_previous), previous, static_cast<long long>(expected_from_previous));
    ok = 0;
  }
  int all_ok = 0;
  MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (rank == 0 && all_ok) {
    std::printf("mpi_reduce: %d ranks x %d weft workers, n = %lld, sum of i = %lld, sum of terms = %.15g; %s: OK\n",
                size, rt.num_workers(), static_cast<long long>(n), static_cast<long long>(count), sum,
                mpi_in_tasks ? "ring exchange inside tasks (MPI_THREAD_MULTIPLE, MPI_Test + weft::yield)"
                             : "no MPI calls inside tasks (MPI_THREAD_MULTIPLE not provided)");
  }
  MPI_Finalize();
  return all_ok ? 0 : 1;
}
