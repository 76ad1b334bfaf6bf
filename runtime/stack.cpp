// SPDX-License-Identifier: MIT
#include "stack.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <system_error>

#include "asan.hpp"
#include "context.hpp"
#include "fiber.hpp"
#include "weft/detail/worker_view.hpp"
#include "worker.hpp"

namespace weft::rt {

// No function-local static (its guard could be held across a fork): sysconf
// is cheap enough to ask each time a stack is mapped.
std::size_t page_size() noexcept { return static_cast<std::size_t>(sysconf(_SC_PAGESIZE)); }

namespace {

// AddressSanitizer keeps the shadow of memory that is unmapped or reused: a
// stack whose fiber retired (or was dropped from a pool) with frames on it
// leaves its redzones poisoned, and the next stack carved from the same slot
// (or mapped at the same address) would inherit them. Clear them on both
// ends of a stack's life.
void forget_stack_poison(void* p, std::size_t n) noexcept { asan::unpoison(p, n); }

std::size_t round_to_page(std::size_t n) noexcept {
  const std::size_t p = page_size();
  return (n + p - 1) / p * p;
}

// madvise advice of Linux 6.13, absent from older headers: accesses to the
// range raise SIGSEGV; the markers live in the page tables, so the mapping is
// not split, and MADV_DONTNEED leaves them in place.
constexpr int k_madv_guard_install = 102;

// Slots per slab: at most 64 (one bit each in a mask), and at most
// k_slab_bytes of address space unless one slot is larger.
constexpr unsigned k_max_slots = 64;
constexpr std::size_t k_slab_bytes = std::size_t{32} << 20;

constexpr std::uint64_t bit(unsigned i) noexcept { return std::uint64_t{1} << i; }
constexpr std::uint64_t all_slots(unsigned n) noexcept { return n == 64 ? ~std::uint64_t{0} : bit(n) - 1; }

}  // namespace

// The slabs of one slot size and one kind of guard.
struct slab_class {
  // Fixed at creation (read without the lock).
  std::size_t m_guard = 0;  // guard bytes at the bottom of each slot
  std::size_t m_body = 0;   // bytes above the guard: the stack and the caller's header
  std::size_t m_slot = 0;   // m_guard + m_body
  unsigned m_slots = 0;     // slots per slab
  unsigned m_batch = 0;     // freed slots whose pages a slab gives back at once
  bool m_markers = false;   // guards are markers (MADV_GUARD_INSTALL), else mprotect
  // Guarded by g_lock.
  stack_slab* m_open = nullptr;  // slabs with a free slot, doubly linked
  // Every slab of the class, linked through m_all_next: a full slab is
  // otherwise reachable only from the fibers in its own stacks, which
  // LeakSanitizer does not scan (it would report the slab as leaked at exit).
  stack_slab* m_all = nullptr;
  unsigned m_empty = 0;          // slabs with no slot in use (one is kept for the next runtime)
  slab_class* m_next = nullptr;  // every class of the process
};

// A slot is in one of these states (bits of the masks below):
//   unguarded:       free, guard not installed (a new slab's slots);
//   free and clean:  free, guarded, pages given back (m_guarded);
//   free and dirty:  free, guarded, pages still resident (m_guarded, m_dirty):
//                    reused first (no page fault), given back in batches;
//   in use:          handed out, or its pages are being given back (m_used).
struct stack_slab {
  // Fixed at creation (read without the lock).
  char* m_base = nullptr;  // the mapping: m_class->m_slots slots of m_class->m_slot bytes
  std::size_t m_bytes = 0;
  slab_class* m_class = nullptr;
  // Guarded by g_lock.
  std::uint64_t m_used = 0;      // bit i: slot i is handed out (or being cleaned)
  std::uint64_t m_guarded = 0;   // bit i: slot i has its guard (or its taker is installing it)
  std::uint64_t m_dirty = 0;     // bit i: slot i is free with its pages resident
  stack_slab* m_prev = nullptr;  // in m_class->m_open while m_listed
  stack_slab* m_next = nullptr;
  stack_slab* m_all_next = nullptr;  // in m_class->m_all until it is unmapped
  bool m_listed = false;
};

namespace {

// Every slab of the process, shared by all runtimes: a runtime may free a
// stack another created (fibers migrate), and stacks are created and freed
// rarely (pooled fibers are reused without coming here). Constant-initialised:
// no initialisation guard, usable before any static initialiser; fork()
// holds the lock across (lock_stacks_for_fork).
constinit std::mutex g_lock;
constinit slab_class* g_classes = nullptr;  // guarded by g_lock; never freed (one per stack size and guard kind)

// Empty slabs kept mapped, in all classes (guarded by g_lock), and at most
// how many: one per class would keep up to k_slab_bytes of address space
// for every stack size a process ever used (runtimes made one after the
// other with new sizes ran out of address space under RLIMIT_AS).
constinit unsigned g_kept_empty = 0;
constexpr unsigned k_max_kept_empty = 4;

// Guard markers: -1 not known yet, 0 absent, 1 present. Relaxed, no partner:
// a fact about the kernel; threads that probe at once store the same value.
constinit std::atomic<int> g_markers{-1};

// What the last failure to map or guard a stack ran out of, until a mapping
// or guard succeeds again: 0 nothing, 1 mappings, 2 memory. Lets a burst of
// failures read /proc/self/maps once. Relaxed, no partner: a hint; a stale
// value only names the cause of the failure before.
constinit std::atomic<int> g_shortage{0};

// The message of the last shortage, for last_stack_shortage(). Guarded by
// g_lock. A plain array: no destructor, usable after exit() began.
constinit char g_last_shortage[512] = {};

// Set once the kernel refused a guard marker on a slab that it accepts
// elsewhere (EINVAL: the slab's memory is locked, by mlockall); that slot got
// an mprotect guard. For the message of a shortage of mappings. Relaxed.
constinit std::atomic<bool> g_markers_refused{false};

}  // namespace

int probe_guard_markers() noexcept {
  const std::size_t page = page_size();
  void* p = mmap(nullptr, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return -1;
  // The kernel refuses markers on locked memory (VM_LOCKED) with the EINVAL
  // of an unknown advice: under mlockall(MCL_FUTURE) the probe's mapping is
  // locked. Unlocked, it asks the kernel alone. (Failure is harmless: a
  // mapping that was not locked.)
  munlock(p, 2 * page);
  const int r = madvise(p, page, k_madv_guard_install);
  const int err = errno;
  munmap(p, 2 * page);
  if (r == 0) return 1;
  return err == EINVAL ? 0 : -1;  // EINVAL: an advice this kernel does not know
}

namespace {

// Reads a non-negative decimal number from a file of /proc; -1 on failure.
long read_proc_number(const char* path) noexcept {
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char text[32];
  const ssize_t n = read(fd, text, sizeof text - 1);
  close(fd);
  if (n <= 0) return -1;
  long v = 0;
  for (ssize_t i = 0; i < n && text[i] >= '0' && text[i] <= '9'; ++i) v = v * 10 + (text[i] - '0');
  return v;
}

// Lines of /proc/self/maps: the mappings of the process; -1 on failure. Its
// buffer is on the heap when it can be: the caller may run on a small stack.
long count_mappings() noexcept {
  const int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char small[256];
  std::size_t size = 64 * 1024;
  std::unique_ptr<char[]> big(new (std::nothrow) char[size]);
  char* buf = big ? big.get() : small;
  if (!big) size = sizeof small;
  long lines = 0;
  for (;;) {
    const ssize_t n = read(fd, buf, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (ssize_t i = 0; i < n; ++i) lines += buf[i] == '\n' ? 1 : 0;
  }
  close(fd);
  return lines;
}

void note_success() noexcept {
  if (g_shortage.load(std::memory_order_relaxed) != 0) g_shortage.store(0, std::memory_order_relaxed);
}

// Fiber stacks of class c handed out now. Takes g_lock.
std::uint64_t stacks_in_use(const slab_class& c) noexcept {
  std::lock_guard lock(g_lock);
  std::uint64_t n = 0;
  for (const stack_slab* s = c.m_all; s != nullptr; s = s->m_all_next) {
    n += static_cast<std::uint64_t>(__builtin_popcountll(s->m_used));
  }
  return n;
}

std::string mebibytes(std::uint64_t bytes) { return std::to_string((bytes + (1u << 20) - 1) >> 20) + " MiB"; }

// The message of a stack of class c that the kernel refused for want of
// memory: how many stacks of its size are in use (are waiting fibers the
// cause?), and the limits that make a mapping fail long before the machine
// runs out: the address space (RLIMIT_AS) and strict overcommit, under which
// every mapped stack counts in full (MAP_NORESERVE is ignored).
std::string out_of_memory_message(const slab_class& c) {
  const std::uint64_t in_use = stacks_in_use(c);
  std::string what = "weft: cannot create a fiber stack of " + std::to_string(c.m_body) + " bytes: out of memory (";
  what += std::to_string(in_use) + (in_use == 1 ? " stack" : " stacks") + " of that size in use; a slab of ";
  what += std::to_string(c.m_slots) + " stacks maps " + mebibytes(c.m_slot * c.m_slots);
  rlimit as{};
  const bool as_limited = getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY;
  if (as_limited) what += "; the address space is limited to " + mebibytes(as.rlim_cur) + " (RLIMIT_AS, ulimit -v)";
  const bool strict = read_proc_number("/proc/sys/vm/overcommit_memory") == 2;
  if (strict) what += "; strict overcommit (vm.overcommit_memory = 2) counts every stack mapped";
  what += "): ";
  if (as_limited) what += "raise RLIMIT_AS, ";
  // Fewer than the most a slab holds: the runtimes' own first stacks, not
  // waiting fibers.
  const bool waiting = in_use >= k_max_slots;
  if (waiting) what += "let fewer fibers wait at once, ";
  what += as_limited || waiting ? "or lower weft::config::stack_size" : "lower weft::config::stack_size";
  return what;
}

// The message of a slab of class c that mmap refused with EAGAIN: the
// process's memory is locked (mlockall with MCL_FUTURE), so the slab would be
// locked whole, and that passes RLIMIT_MEMLOCK.
std::string locked_memory_message(const slab_class& c) {
  std::string what = "weft: cannot create a fiber stack of " + std::to_string(c.m_body) +
                     " bytes: the process's memory is locked (mlockall with MCL_FUTURE), where a slab of " +
                     std::to_string(c.m_slots) + " stacks (" + mebibytes(c.m_slot * c.m_slots) +
                     ") is locked whole (and made resident, unless MCL_ONFAULT), and it would pass the limit on "
                     "locked memory";
  rlimit memlock{};
  if (getrlimit(RLIMIT_MEMLOCK, &memlock) == 0 && memlock.rlim_cur != RLIM_INFINITY) {
    const std::uint64_t limit = memlock.rlim_cur;
    what += " (" + (limit % (1u << 20) == 0 ? mebibytes(limit) : std::to_string((limit + 1023) >> 10) + " KiB") + ")";
  }
  what += ": raise RLIMIT_MEMLOCK (ulimit -l)";
  return what;
}

// Throws the error of a failed mmap, mprotect or madvise (errno err) for a
// stack of class c, naming what ran out.
[[noreturn]] void throw_shortage(int err, const char* call, const slab_class& c) {
  const long limit = read_proc_number("/proc/sys/vm/max_map_count");
  // An anonymous mapping refused with EAGAIN: locked memory, not mappings or memory.
  const bool locked = err == EAGAIN && std::strcmp(call, "mmap") == 0;
  int kind = locked ? 3 : g_shortage.load(std::memory_order_relaxed);
  if (kind == 0) {
    // Near the limit, mmap and mprotect fail with ENOMEM too: tell them apart
    // by counting (a mapping or two short of it is the limit).
    const long used = err == ENOMEM && limit > 0 ? count_mappings() : -1;
    kind = used >= 0 && used + 4 >= limit ? 1 : 2;
    g_shortage.store(kind, std::memory_order_relaxed);
  }
  std::string what;
  if (kind == 1) {
    what = "weft: cannot create a fiber stack: the process has reached its limit of memory mappings, ";
    what += "vm.max_map_count (" + std::to_string(limit) + ")";
    if (!c.m_markers) {
      what += "; stacks guarded with mprotect take two mappings each (no MADV_GUARD_INSTALL: Linux before 6.13, ";
      what += "or WEFT_STACK_GUARDS=mprotect)";
    } else if (g_markers_refused.load(std::memory_order_relaxed)) {
      what += "; stacks guarded with mprotect take two mappings each (the kernel refuses MADV_GUARD_INSTALL on ";
      what += "locked memory: mlockall)";
    }
    what += "; raise vm.max_map_count (sysctl) or let fewer fibers wait at once";
  } else if (kind == 3) {
    what = locked_memory_message(c);
  } else {
    what = out_of_memory_message(c);
  }
  what += " (";
  what += call;
  what += ")";
  {
    std::lock_guard lock(g_lock);
    const std::size_t n = std::min(what.size(), sizeof g_last_shortage - 1);
    std::memcpy(g_last_shortage, what.data(), n);
    g_last_shortage[n] = '\0';
  }
  throw std::system_error(err, std::generic_category(), what);
}

// Under g_lock: keeps s in its class's list exactly while it has a free slot.
void relist(slab_class& c, stack_slab* s) noexcept {
  const bool has_free = (~s->m_used & all_slots(c.m_slots)) != 0;
  if (has_free == s->m_listed) return;
  if (has_free) {
    s->m_prev = nullptr;
    s->m_next = c.m_open;
    if (c.m_open != nullptr) c.m_open->m_prev = s;
    c.m_open = s;
  } else {
    if (s->m_prev != nullptr) {
      s->m_prev->m_next = s->m_next;
    } else {
      c.m_open = s->m_next;
    }
    if (s->m_next != nullptr) s->m_next->m_prev = s->m_prev;
    s->m_prev = nullptr;
    s->m_next = nullptr;
  }
  s->m_listed = has_free;
}

// Under g_lock: the class of slots with `body` bytes above a `guard`, created
// on first use. Throws std::bad_alloc.
slab_class& class_of(std::size_t guard, std::size_t body, bool markers) {
  for (slab_class* c = g_classes; c != nullptr; c = c->m_next) {
    if (c->m_body == body && c->m_markers == markers) return *c;
  }
  auto* c = new slab_class;
  c->m_guard = guard;
  c->m_body = body;
  c->m_slot = guard + body;
  c->m_slots =
      static_cast<unsigned>(std::max<std::size_t>(1, std::min<std::size_t>(k_max_slots, k_slab_bytes / c->m_slot)));
  c->m_batch = std::max(1u, c->m_slots / 4);
  c->m_markers = markers;
  c->m_next = g_classes;
  g_classes = c;
  return *c;
}

// Under g_lock: takes a free slot of c: a dirty one (its pages are resident),
// else a clean one, else one without a guard. False when every slab of c is
// full. needs_guard: the caller must install the slot's guard (the slot's bit
// in m_guarded is set already).
bool take_slot(slab_class& c, stack_slab*& slab, unsigned& slot, bool& needs_guard) noexcept {
  stack_slab* s = c.m_open;
  if (s == nullptr) return false;
  const std::uint64_t free = ~s->m_used & all_slots(c.m_slots);  // not 0: s is listed
  const std::uint64_t dirty = free & s->m_dirty;
  const std::uint64_t clean = free & s->m_guarded;
  const std::uint64_t pick = dirty != 0 ? dirty : clean != 0 ? clean : free;
  const unsigned i = static_cast<unsigned>(__builtin_ctzll(pick));
  if (s->m_used == 0) {
    --c.m_empty;
    --g_kept_empty;
  }
  s->m_used |= bit(i);
  s->m_dirty &= ~bit(i);
  needs_guard = (s->m_guarded & bit(i)) == 0;
  s->m_guarded |= bit(i);
  relist(c, s);
  slab = s;
  slot = i;
  return true;
}

// What the caller of settle() does outside the lock.
struct slab_work {
  stack_slab* m_unmap = nullptr;  // unmap this slab (unmap_slab)
  stack_slab* m_clean = nullptr;  // give back the pages of this slab's slots m_cleaning
  std::uint64_t m_cleaning = 0;
};

// Under g_lock, after slots of s were freed: decides what to do outside the
// lock. A slab left empty is unmapped unless it is the one kept empty per
// class, while fewer than k_max_kept_empty are kept in all (its pages are
// given back first); a slab with a batch of dirty slots gives their pages
// back (they count as in use meanwhile).
slab_work settle(stack_slab* s) noexcept {
  slab_class& c = *s->m_class;
  slab_work w;
  if (s->m_used == 0) {
    // Another empty slab of c is kept already, or enough of all classes.
    if (c.m_empty != 0 || g_kept_empty >= k_max_kept_empty) {
      s->m_used = all_slots(c.m_slots);
      relist(c, s);
      for (stack_slab** p = &c.m_all; *p != nullptr; p = &(*p)->m_all_next) {
        if (*p == s) {
          *p = s->m_all_next;
          break;
        }
      }
      w.m_unmap = s;
      return w;
    }
    if (s->m_dirty == 0) {
      ++c.m_empty;  // kept: the next runtime (or burst) starts without a system call
      ++g_kept_empty;
      relist(c, s);
      return w;
    }
  } else if (static_cast<unsigned>(__builtin_popcountll(s->m_dirty)) < c.m_batch) {
    relist(c, s);
    return w;
  }
  w.m_clean = s;
  w.m_cleaning = s->m_dirty;
  s->m_used |= s->m_dirty;
  s->m_dirty = 0;
  relist(c, s);
  return w;
}

// Gives slot i of s back: dirty (its pages resident), or unguarded (its
// guard could not be installed). Returns the work for outside the lock.
slab_work release_slot(stack_slab* s, unsigned i, bool unguarded) noexcept {
  std::lock_guard lock(g_lock);
  s->m_used &= ~bit(i);
  if (unguarded) {
    s->m_guarded &= ~bit(i);
  } else {
    s->m_dirty |= bit(i);
  }
  return settle(s);
}

void unmap_slab(stack_slab* s) noexcept {
  munmap(s->m_base, s->m_bytes);
  delete s;
}

// Outside the lock: unmaps, or gives back the pages of the slots being
// cleaned (a run of neighbours in one call: the guards between them keep
// their markers or their mprotect) and frees them; again while settle()
// asks for more.
void do_slab_work(slab_work w) noexcept {
  for (;;) {
    if (w.m_unmap != nullptr) unmap_slab(w.m_unmap);
    stack_slab* s = w.m_clean;
    if (s == nullptr) return;
    const slab_class& c = *s->m_class;
    std::uint64_t left = w.m_cleaning;
    while (left != 0) {
      const unsigned first = static_cast<unsigned>(__builtin_ctzll(left));
      const std::uint64_t from_first = left >> first;
      const unsigned run =
          from_first == ~std::uint64_t{0} ? 64 - first : static_cast<unsigned>(__builtin_ctzll(~from_first));
      char* bottom = s->m_base + first * c.m_slot + c.m_guard;
      madvise(bottom, run * c.m_slot - c.m_guard, MADV_DONTNEED);
      left &= ~(run == 64 ? ~std::uint64_t{0} : (bit(run) - 1) << first);
    }
    std::lock_guard lock(g_lock);
    s->m_used &= ~w.m_cleaning;
    w = settle(s);
  }
}

// LeakSanitizer's check at exit (where it runs: asan::leak_check_active())
// scans the threads' stacks, the globals and the root regions, not the
// mappings that fiber stacks live in: a heap block that only a suspended
// fiber's frame points to (a fiber that std::exit left waiting) would be
// reported as leaked, and the exit status would become the sanitizer's. So
// at exit every stack in use becomes a root region, its body only (a guard
// marker faults when read), just before the check: the sanitizer installs
// that check at its start, so it runs after this handler (installed with the
// first slab). The lock is only tried for a while: a thread that holds it
// while another exits must not hang the exit (the check may then report such
// a block).
void register_stacks_for_leak_check() noexcept {
  std::unique_lock lock(g_lock, std::defer_lock);
  for (int tries = 0; !lock.try_lock(); ++tries) {
    if (tries == 1000) return;
    timespec ts{0, 100'000};
    nanosleep(&ts, nullptr);
  }
  for (const slab_class* c = g_classes; c != nullptr; c = c->m_next) {
    for (const stack_slab* s = c->m_all; s != nullptr; s = s->m_all_next) {
      for (std::uint64_t used = s->m_used; used != 0; used &= used - 1) {
        const auto i = static_cast<unsigned>(__builtin_ctzll(used));
        asan::register_root(s->m_base + i * c->m_slot + c->m_guard, c->m_body);
      }
    }
  }
}

constinit bool g_leak_check_hook = false;  // guarded by g_lock

// Caller holds g_lock: a slab was mapped.
void note_slab_mapped() noexcept {
  if (!g_leak_check_hook && asan::leak_check_active()) {
    g_leak_check_hook = true;
    std::atexit(register_stacks_for_leak_check);
  }
}

// Maps a new slab of class c, outside the lock. Throws.
stack_slab* map_slab(const slab_class& c) {
  const std::size_t bytes = c.m_slot * c.m_slots;
  void* map =
      mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (map == MAP_FAILED) throw_shortage(errno, "mmap", c);
  // A transparent huge page would back many stacks at once, most of it
  // untouched. (Failure is harmless: the kernel may lack the setting.)
  madvise(map, bytes, MADV_NOHUGEPAGE);
  auto* s = new (std::nothrow) stack_slab;
  if (s == nullptr) {
    munmap(map, bytes);
    throw std::bad_alloc();
  }
  s->m_base = static_cast<char*>(map);
  s->m_bytes = bytes;
  s->m_class = const_cast<slab_class*>(&c);
  return s;
}

}  // namespace

bool guard_markers_available() noexcept {
  int v = g_markers.load(std::memory_order_relaxed);
  if (v < 0) {
    v = probe_guard_markers();
    if (v >= 0) g_markers.store(v, std::memory_order_relaxed);
  }
  return v == 1;
}

stack_memory allocate_stack(std::size_t usable, std::size_t header, stack_guards guards) {
  const std::size_t guard = round_to_page(k_guard_size);
  const std::size_t body = round_to_page(usable + header);
  const bool markers = guards == stack_guards::automatic && guard_markers_available();
  slab_class* c = nullptr;
  stack_slab* s = nullptr;
  unsigned slot = 0;
  bool needs_guard = false;
  {
    std::lock_guard lock(g_lock);
    c = &class_of(guard, body, markers);
    take_slot(*c, s, slot, needs_guard);
  }
  if (s == nullptr) {
    // Every slab of this size is full: map one (outside the lock; another
    // thread may map one at the same time, both are used).
    stack_slab* fresh = map_slab(*c);
    std::lock_guard lock(g_lock);
    fresh->m_used = bit(0);
    fresh->m_guarded = bit(0);
    fresh->m_all_next = c->m_all;
    c->m_all = fresh;
    note_slab_mapped();
    relist(*c, fresh);
    s = fresh;
    slot = 0;
    needs_guard = true;
  }
  char* base = s->m_base + slot * c->m_slot;
  if (needs_guard) {
    // The slot is ours: its guard goes in outside the lock. A guard marker
    // leaves the slab one mapping; mprotect splits it (two more mappings).
    // Markers and mprotect guards may share a slab: nothing but the count of
    // mappings tells them apart (the overflow handler goes by address).
    const char* call = "madvise";
    int err = 0;
    if (!c->m_markers || madvise(base, guard, k_madv_guard_install) != 0) {
      if (c->m_markers && errno != EINVAL) {
        err = errno;
      } else {
        // With markers, EINVAL: the probe found them, so this slab's memory
        // is locked (mlockall with MCL_FUTURE, or MCL_CURRENT after it was
        // mapped), where the kernel refuses them; mprotect works there.
        if (c->m_markers) g_markers_refused.store(true, std::memory_order_relaxed);
        call = "mprotect";
        if (mprotect(base, guard, PROT_NONE) != 0) err = errno;
      }
    }
    if (err != 0) {
      do_slab_work(release_slot(s, slot, true));
      throw_shortage(err, call, *c);
    }
  }
  note_success();
  forget_stack_poison(base + guard, body);
  stack_memory m;
  m.m_guard = base;
  m.m_bottom = base + guard;
  m.m_size = body - header;
  m.m_slab = s;
  m.m_slot = slot;
  return m;
}

void free_stack(stack_memory& s) noexcept {
  stack_slab* slab = s.m_slab;
  if (slab == nullptr) return;
  forget_stack_poison(s.m_bottom, slab->m_class->m_body);
  // The slot stays dirty (its pages resident) until its slab gives back a
  // batch of them at once, or empties: each madvise(MADV_DONTNEED) flushes the
  // TLB, which costs as much as the page faults of a fresh stack.
  do_slab_work(release_slot(slab, s.m_slot, false));
  s = stack_memory{};
}

stack_memory map_lone_stack(std::size_t usable) noexcept {
  const std::size_t guard = page_size();
  const std::size_t body = round_to_page(usable);
  void* map = mmap(nullptr, guard + body, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (map == MAP_FAILED) return {};
  if (mprotect(map, guard, PROT_NONE) != 0) {
    const int err = errno;
    munmap(map, guard + body);
    errno = err;
    return {};
  }
  stack_memory m;
  m.m_guard = static_cast<char*>(map);
  m.m_bottom = m.m_guard + guard;
  m.m_size = body;
  return m;
}

void unmap_lone_stack(stack_memory& s) noexcept {
  if (s.m_guard == nullptr) return;
  forget_stack_poison(s.m_bottom, s.m_size);
  munmap(s.m_guard, static_cast<std::size_t>(s.m_bottom - s.m_guard) + s.m_size);
  s = stack_memory{};
}

std::string last_stack_shortage() {
  std::lock_guard lock(g_lock);
  return std::string(g_last_shortage);
}

void lock_stacks_for_fork() noexcept { g_lock.lock(); }
void unlock_stacks_after_fork() noexcept { g_lock.unlock(); }

void signal_stack::enter() noexcept {
  const std::size_t size = round_to_page(64 * 1024);
  void* mem = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return;
  stack_t ss{};
  ss.ss_sp = mem;
  ss.ss_size = size;
  ss.ss_flags = 0;
  if (sigaltstack(&ss, nullptr) != 0) {
    munmap(mem, size);
    return;
  }
  m_memory = mem;
  m_size = size;
}

void signal_stack::leave() noexcept {
  if (m_memory == nullptr) return;
  stack_t ss{};
  ss.ss_flags = SS_DISABLE;
  sigaltstack(&ss, nullptr);
  munmap(m_memory, m_size);
  m_memory = nullptr;
}

namespace {

struct sigaction g_previous_segv;  // written once, before the handler is installed
std::once_flag g_install_once;
std::atomic<bool> g_reporting{false};  // one report per process, even when fibers overflow at once

// Appends the decimal digits of v (async-signal-safe).
char* append_number(char* p, std::size_t v) noexcept {
  char digits[24];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0) *p++ = digits[--n];
  return p;
}

// The stack pointer of the code a signal interrupted, or null where unknown.
const char* interrupted_stack_pointer(void* uctx) noexcept {
  const auto* uc = static_cast<const ucontext_t*>(uctx);
#if defined(__x86_64__)
  return reinterpret_cast<const char*>(uc->uc_mcontext.gregs[REG_RSP]);
#elif defined(__aarch64__)
  return reinterpret_cast<const char*>(uc->uc_mcontext.sp);
#else
  (void)uc;
  return nullptr;
#endif
}

char* append_text(char* p, const char* s) noexcept {
  while (*s != '\0') *p++ = *s++;
  return p;
}

void on_segv(int sig, siginfo_t* info, void* uctx) {
  // Reads the worker through the thread pointer only: async-signal-safe.
  const worker* w = current_worker();
  if (w != nullptr && w->m_current != nullptr && w->m_current->m_stack.m_slab != nullptr) {
    const fiber* f = w->m_current;
    const char* addr = static_cast<const char*>(info->si_addr);
    const char* guard_lo = f->m_stack.m_guard;
    // An overflow: the access is in the guard region, or the stack pointer
    // itself went below the usable stack (a frame larger than the guard that
    // jumped over it). A fault elsewhere with the stack pointer inside the
    // stack is someone else's.
    const char* sp = interrupted_stack_pointer(uctx);
    const bool in_guard = addr >= guard_lo && addr < f->m_stack.m_bottom;
    const bool sp_below = sp != nullptr && sp < f->m_stack.m_bottom && sp >= guard_lo - k_guard_size;
    if (in_guard || sp_below) {
      if (g_reporting.exchange(true)) {
        for (;;) pause();  // another thread reports and aborts the process
      }
      char line[256];
      char* p = append_text(line, "weft: fiber stack overflow on worker ");
      p = append_number(p, static_cast<std::size_t>(w->m_index));
      p = append_text(p, " (stack size ");
      p = append_number(p, f->m_stack.m_size);
      p = append_text(p, " bytes); raise weft::config::stack_size or the environment variable WEFT_STACK_SIZE\n");
      ssize_t ignored = write(STDERR_FILENO, line, static_cast<std::size_t>(p - line));
      (void)ignored;
      std::abort();
    }
  }
  // Not ours: hand the fault to whoever handled it before.
  if ((g_previous_segv.sa_flags & SA_SIGINFO) != 0 && g_previous_segv.sa_sigaction != nullptr) {
    g_previous_segv.sa_sigaction(sig, info, uctx);
    return;
  }
  if (g_previous_segv.sa_handler == SIG_IGN) return;
  if (g_previous_segv.sa_handler != SIG_DFL && g_previous_segv.sa_handler != nullptr) {
    g_previous_segv.sa_handler(sig);
    return;
  }
  // Default action: restore it and return; the faulting access repeats and
  // terminates the process as it would have without weft.
  signal(SIGSEGV, SIG_DFL);
}

}  // namespace

void install_overflow_handler() noexcept {
  std::call_once(g_install_once, [] {
    struct sigaction sa {};
    sa.sa_sigaction = &on_segv;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigaction(SIGSEGV, &sa, &g_previous_segv);
  });
}

void unblock_overflow_signal() noexcept {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGSEGV);
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
}

// ---- a thread's own stack ----

namespace {

// The low part of the calling thread's own stack, [m_low, m_limit): nearly
// full there (stack_reserve). Empty when the bounds cannot be read: nothing
// is low then.
struct thread_stack {
  std::uintptr_t m_low = 0;
  std::uintptr_t m_limit = 0;
};

thread_stack read_thread_stack() noexcept {
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) != 0) return {};
  void* low = nullptr;
  std::size_t size = 0;
  const int rc = pthread_attr_getstack(&attr, &low, &size);
  pthread_attr_destroy(&attr);
  if (rc != 0 || low == nullptr) return {};
  const auto base = reinterpret_cast<std::uintptr_t>(low);
  return {base, base + stack_reserve(size)};
}

// read_thread_stack() on a stack of its own: this may be a thread's first
// weft call, made where its stack is nearly full, and pthread_getattr_np
// allocates (libc's realloc, which the dynamic linker binds there the first
// time: more than 3 KiB of stack) and, for the main thread, reads
// /proc/self/maps. Here only mmap and mprotect run (bound at load).
thread_stack read_thread_stack_with_room() noexcept {
  stack_memory room = map_lone_stack(64 * 1024);
  if (room.m_bottom == nullptr) return read_thread_stack();
  thread_stack out;
  call_on_stack(
      room.m_bottom, room.m_size, [](void* p) noexcept { *static_cast<thread_stack*>(p) = read_thread_stack(); }, &out);
  unmap_lone_stack(room);
  return out;
}

// Read on the thread's first question (m_low 1: not read yet).
constinit thread_local thread_stack t_thread_stack{1, 0};

const thread_stack& this_thread_stack() noexcept {
  if (t_thread_stack.m_low == 1) t_thread_stack = read_thread_stack_with_room();
  return t_thread_stack;
}

}  // namespace

std::uintptr_t own_stack_limit() noexcept { return this_thread_stack().m_limit; }

bool own_stack_left_below(std::size_t bytes) noexcept {
  const thread_stack& own = this_thread_stack();
  const std::uintptr_t sp = detail::stack_pointer_here();
  return own.m_low != 0 && sp >= own.m_low && sp - own.m_low < bytes;
}

}  // namespace weft::rt

namespace weft::detail {

// Only on the thread's own stack: code running on another stack (another
// library's fibers or coroutine stacks, an alternate signal stack) is never
// low here, and goes on where it is.
WEFT_NOINLINE bool thread_stack_low() noexcept {
  const rt::thread_stack& own = rt::this_thread_stack();
  const std::uintptr_t sp = stack_pointer_here();
  return sp >= own.m_low && sp < own.m_limit;
}

}  // namespace weft::detail
