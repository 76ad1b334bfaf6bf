// SPDX-License-Identifier: MIT
// weft: the calling fiber and worker.
#pragma once

#include "weft/detail/cxx20.hpp"

#include "weft/detail/export.hpp"

namespace weft {

// Lets other ready work of this worker run; the calling fiber resumes on this
// worker once that work has had its turn (a yielded fiber is never taken by
// another worker, so a poll waits behind a long task that it let run).
// Returns at once when this worker has nothing else to run. Outside a worker
// it is std::this_thread::yield().
WEFT_API void yield();

// True when called on a worker thread of some runtime.
WEFT_API bool on_worker() noexcept;

// The index of the calling worker in its runtime (0 .. num_workers-1), or -1
// outside any worker. A fiber may move to another worker whenever it suspends,
// so the value may differ before and after a weft call.
WEFT_API int worker_index() noexcept;

}  // namespace weft
