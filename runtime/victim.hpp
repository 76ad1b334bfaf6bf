// SPDX-License-Identifier: MIT
// weft::rt: victim selection, the policy that orders a thief's steal attempts
// (docs/policies.md).
// Owns: one worker's policy state. Touched by: that worker's steal rounds
// only (worker.cpp).
#pragma once

#include <cstdint>

namespace weft::rt {

// A victim policy is a type with these members, used by one worker (owner
// only) for its steal rounds; a round tries every other worker at most once:
//
//   P(int self, int workers, std::uint64_t seed);
//   int first() noexcept;          // worker tried first in this round
//   int next(int v) noexcept;      // worker tried after v (the round ends after
//                                  //   workers - 1 victims)
//   void on_steal(int v) noexcept; // a steal from v succeeded
//   void on_empty_round() noexcept;// the whole round found nothing
//
// worker::steal_round_with is a template over the policy, instantiated once
// per policy; a worker holds only its runtime's policy and picks the
// instantiation once, at construction, so the default costs nothing extra.

// The default: every round starts at a random worker (xorshift64*), then goes
// around. Spreads thieves evenly; no shared state.
class random_victims {
 public:
  random_victims(int /*self*/, int workers, std::uint64_t seed) noexcept : m_workers(workers), m_rng(seed | 1) {}
  int first() noexcept { return static_cast<int>(next_random() % static_cast<std::uint32_t>(m_workers)); }
  int next(int v) noexcept { return v + 1 == m_workers ? 0 : v + 1; }
  void on_steal(int) noexcept {}
  void on_empty_round() noexcept {}

 private:
  std::uint32_t next_random() noexcept {
    m_rng ^= m_rng >> 12;
    m_rng ^= m_rng << 25;
    m_rng ^= m_rng >> 27;
    return static_cast<std::uint32_t>((m_rng * 0x2545F4914F6CDD1DULL) >> 32);
  }
  int m_workers;
  std::uint64_t m_rng;
};

// Every round starts one worker further than the previous one (starting after
// itself): deterministic, cheap, but thieves can move in lock-step.
class round_robin_victims {
 public:
  round_robin_victims(int self, int workers, std::uint64_t) noexcept : m_workers(workers), m_start(self) {}
  int first() noexcept {
    m_start = m_start + 1 == m_workers ? 0 : m_start + 1;
    return m_start;
  }
  int next(int v) noexcept { return v + 1 == m_workers ? 0 : v + 1; }
  void on_steal(int) noexcept {}
  void on_empty_round() noexcept {}

 private:
  int m_workers;
  int m_start;
};

// The worker of the last successful steal first (work tends to stay where it
// was found: a big recursive computation), then the workers after it in index
// order; a random start when there is no last victim. Forgets the victim once
// a whole round found nothing.
class last_victim_first {
 public:
  last_victim_first(int self, int workers, std::uint64_t seed) noexcept
      : m_random(self, workers, seed), m_workers(workers) {}
  int first() noexcept { return m_last >= 0 ? m_last : m_random.first(); }
  int next(int v) noexcept { return v + 1 == m_workers ? 0 : v + 1; }
  void on_steal(int v) noexcept { m_last = v; }
  void on_empty_round() noexcept { m_last = -1; }

 private:
  random_victims m_random;
  int m_workers;
  int m_last = -1;
};

}  // namespace weft::rt
