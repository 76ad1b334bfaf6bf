#include "stack.hpp"

#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>

#include "fiber.hpp"
#include "worker.hpp"

#if WEFT_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace weft::rt {

// No function-local static (its guard could be held across a fork): sysconf
// is cheap enough to ask each time a stack is mapped.
std::size_t page_size() noexcept { return static_cast<std::size_t>(sysconf(_SC_PAGESIZE)); }

namespace {

// AddressSanitizer keeps the shadow of memory that is unmapped: a stack that
// was unmapped with frames on it (a fiber retired or dropped from a pool)
// leaves its redzones poisoned, and a later mapping at the same address would
// inherit them. Clear them on both ends of a stack's life.
void forget_stack_poison(void* p, std::size_t n) noexcept {
#if WEFT_ASAN
  __asan_unpoison_memory_region(p, n);
#else
  (void)p;
  (void)n;
#endif
}

std::size_t round_to_page(std::size_t n) noexcept {
  const std::size_t p = page_size();
  return (n + p - 1) / p * p;
}

}  // namespace

stack_memory allocate_stack(std::size_t usable, std::size_t header) {
  const std::size_t guard = round_to_page(k_guard_size);
  const std::size_t body = round_to_page(usable + header);
  const std::size_t total = guard + body;
  void* map =
      mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (map == MAP_FAILED) throw std::bad_alloc();
  if (mprotect(map, guard, PROT_NONE) != 0) {
    munmap(map, total);
    throw std::bad_alloc();
  }
  forget_stack_poison(static_cast<char*>(map) + guard, body);
  stack_memory s;
  s.m_map = map;
  s.m_map_size = total;
  s.m_bottom = static_cast<char*>(map) + guard;
  s.m_size = body - header;
  return s;
}

void free_stack(stack_memory& s) noexcept {
  if (s.m_bottom != nullptr)
    forget_stack_poison(s.m_bottom, s.m_map_size - static_cast<std::size_t>(s.m_bottom - static_cast<char*>(s.m_map)));
  if (s.m_map != nullptr) munmap(s.m_map, s.m_map_size);
  s = stack_memory{};
}

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
  if (w != nullptr && w->m_current != nullptr && w->m_current->m_stack.m_map != nullptr) {
    const fiber* f = w->m_current;
    const char* addr = static_cast<const char*>(info->si_addr);
    const char* guard_lo = static_cast<const char*>(f->m_stack.m_map);
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

}  // namespace weft::rt
