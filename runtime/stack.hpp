// weft::rt: fiber stacks with guard regions, and the stack-overflow report.
#pragma once

#include <cstddef>

namespace weft::rt {

// Bytes of inaccessible memory below every fiber stack. Larger than one page
// so that a frame with a big local array still lands in it.
inline constexpr std::size_t k_guard_size = 64 * 1024;

// A mapping [m_map, m_map + m_map_size): the guard region at the bottom, then
// m_size usable bytes from m_bottom, then the caller's header bytes.
struct stack_memory {
  void* m_map = nullptr;
  std::size_t m_map_size = 0;
  char* m_bottom = nullptr;
  std::size_t m_size = 0;
  char* top() const noexcept { return m_bottom + m_size; }
};

std::size_t page_size() noexcept;

// Maps a stack of at least `usable` bytes with `header` bytes above it.
// Throws std::bad_alloc when the memory cannot be mapped.
stack_memory allocate_stack(std::size_t usable, std::size_t header);
void free_stack(stack_memory& s) noexcept;

// An alternate signal stack for the calling thread, so that the overflow
// report can run when the fiber stack is exhausted.
class signal_stack {
 public:
  signal_stack() = default;
  signal_stack(const signal_stack&) = delete;
  signal_stack& operator=(const signal_stack&) = delete;
  ~signal_stack() { leave(); }
  void enter() noexcept;  // calling thread; failure leaves the thread without one
  void leave() noexcept;  // calling thread (the one that entered)

 private:
  void* m_memory = nullptr;
  std::size_t m_size = 0;
};

// Installs (once per process) a SIGSEGV handler that recognises a fault in the
// guard region of the running fiber, prints one line naming the fiber stack
// overflow and the setting that raises the stack size, and aborts. Faults it
// does not recognise go to the handler that was installed before.
void install_overflow_handler() noexcept;

}  // namespace weft::rt
