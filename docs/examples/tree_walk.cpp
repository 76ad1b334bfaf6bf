// SPDX-License-Identifier: MIT
// A tree walk, the same problem in both of weft's styles: the sum over a
// generated, unbalanced binary tree, with fibers (weft::join, weft::task_group)
// and with C++20 coroutines (weft::when_all over two tasks and over a vector of
// tasks), plus a coroutine walk that collects values under a weft::mutex with
// co_await weft::lock_async. A task per node, no cutoff. Every result is
// checked against the sum computed while the tree was built and the program
// exits 1 on a mismatch. Usage: tree_walk [nodes]
// (docs/guide.md, "Fibers or coroutines")
#include <weft/coroutine.hpp>  // not included by weft.hpp
#include <weft/weft.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <random>
#include <vector>

namespace {

struct node {
  std::int64_t value = 0;
  std::unique_ptr<node> left;
  std::unique_ptr<node> right;
};

// A random binary tree of `count` nodes: the left subtree gets a random share
// of the others (the shape of a random binary search tree: unbalanced, about
// 4 ln(count) deep). Adds every value to total.
std::unique_ptr<node> make_tree(std::mt19937_64& rng, std::int64_t count, std::int64_t& total) {
  if (count == 0) return nullptr;
  auto t = std::make_unique<node>();
  t->value = static_cast<std::int64_t>(rng() % 1000);
  total += t->value;
  const std::int64_t left = static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(count));
  t->left = make_tree(rng, left, total);
  t->right = make_tree(rng, count - 1 - left, total);
  return t;
}

// ---- fibers: ordinary recursive functions ----

// join: both subtrees possibly in parallel; a fiber that must wait for a
// stolen half is suspended and its worker runs other work.
std::int64_t sum_join(const node* t) {
  if (t == nullptr) return 0;
  auto [l, r] = weft::join([&] { return sum_join(t->left.get()); }, [&] { return sum_join(t->right.get()); });
  return t->value + l + r;
}

// task_group: one spawn per child (any number of children would do).
std::int64_t sum_group(const node& t) {
  std::int64_t l = 0;
  std::int64_t r = 0;
  weft::task_group g;
  if (t.left) g.spawn([&] { l = sum_group(*t.left); });
  if (t.right) g.spawn([&] { r = sum_group(*t.right); });
  g.wait();
  return t.value + l + r;
}

// ---- coroutines: every function on the path is a weft::task ----

weft::task<std::int64_t> sum_coro(const node* t) {
  if (t == nullptr) co_return 0;
  auto [l, r] = co_await weft::when_all(sum_coro(t->left.get()), sum_coro(t->right.get()));
  co_return t->value + l + r;
}

// when_all over a vector: the coroutine counterpart of a task_group.
weft::task<std::int64_t> sum_children(const node& t) {
  std::vector<weft::task<std::int64_t>> kids;
  if (t.left) kids.push_back(sum_children(*t.left));
  if (t.right) kids.push_back(sum_children(*t.right));
  std::int64_t s = t.value;
  for (std::int64_t x : co_await weft::when_all(std::move(kids))) s += x;
  co_return s;
}

// Collects the values >= threshold into out. lock_async suspends the
// coroutine (not a fiber) while another walker holds the mutex.
weft::task<void> collect(const node* t, std::int64_t threshold, weft::mutex& m, std::vector<std::int64_t>& out) {
  if (t == nullptr) co_return;
  if (t->value >= threshold) {
    co_await weft::lock_async(m);
    std::unique_lock lock(m, std::adopt_lock);  // we own m: unlock at scope exit
    out.push_back(t->value);
  }
  co_await weft::when_all(collect(t->left.get(), threshold, m, out), collect(t->right.get(), threshold, m, out));
}

void collect_serial(const node* t, std::int64_t threshold, std::vector<std::int64_t>& out) {
  if (t == nullptr) return;
  if (t->value >= threshold) out.push_back(t->value);
  collect_serial(t->left.get(), threshold, out);
  collect_serial(t->right.get(), threshold, out);
}

}  // namespace

int main(int argc, char** argv) {
  const std::int64_t count = argc > 1 ? std::atoll(argv[1]) : 200'000;
  if (count < 1) {
    std::fprintf(stderr, "usage: tree_walk [nodes], nodes >= 1\n");
    return 2;
  }
  std::mt19937_64 rng(2024);
  std::int64_t total = 0;
  const std::unique_ptr<node> tree = make_tree(rng, count, total);
  int errors = 0;
  auto check = [&](const char* what, int workers, std::int64_t got) {
    if (got != total) {
      std::fprintf(stderr, "%s on %d worker(s): sum %lld, expected %lld\n", what, workers, static_cast<long long>(got),
                   static_cast<long long>(total));
      ++errors;
    }
  };

  for (int workers : {1, 2, 4}) {
    weft::runtime rt{{.workers = workers}};
    check("fibers: join", workers, rt.run([&] { return sum_join(tree.get()); }));
    check("fibers: task_group", workers, rt.run([&] { return sum_group(*tree); }));
    check("coroutines: when_all", workers, rt.run([&] { return weft::sync_wait(sum_coro(tree.get())); }));
    check("coroutines: when_all(vector)", workers, rt.run([&] { return weft::sync_wait(sum_children(*tree)); }));
  }
  // From outside any runtime: the default runtime.
  check("coroutines: when_all (default runtime)", 0, weft::sync_wait(sum_coro(tree.get())));

  // Values >= 990, collected by coroutines under a weft::mutex.
  std::vector<std::int64_t> expected;
  collect_serial(tree.get(), 990, expected);
  weft::mutex m;
  std::vector<std::int64_t> got;
  weft::sync_wait(collect(tree.get(), 990, m, got));
  std::sort(expected.begin(), expected.end());
  std::sort(got.begin(), got.end());
  if (got != expected) {
    std::fprintf(stderr, "collect: %zu values, expected %zu\n", got.size(), expected.size());
    ++errors;
  }

  if (errors != 0) return 1;
  std::printf("tree_walk: %lld nodes, sum %lld, %zu values >= 990; fibers and coroutines agree: OK\n",
              static_cast<long long>(count), static_cast<long long>(total), got.size());
  return 0;
}
