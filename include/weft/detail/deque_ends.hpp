// SPDX-License-Identifier: MIT
// weft: the two ends of a worker's public work-stealing deque, in the layout
// that runtime/deque.hpp keeps them in and the inline push reads.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace weft::detail {

// Each end on a cache line of its own, so that a push reads both off one
// pointer (job_ring::public_empty). top only grows (thieves' CAS); bottom is
// the owner's.
struct deque_ends {
  static constexpr std::size_t k_line = 128;  // runtime/platform.hpp's k_false_sharing
  alignas(k_line) std::atomic<std::int64_t> m_top{0};
  alignas(k_line) std::atomic<std::int64_t> m_bottom{0};
};

}  // namespace weft::detail
