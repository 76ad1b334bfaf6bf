// SPDX-License-Identifier: MIT
// weft_test::eager: a coroutine of another library's kind, for tests of
// weft's awaitables and tasks awaited from outside weft: it starts at once
// and runs to its end on whichever thread resumes it, and nobody awaits it
// (an exception in it terminates the process).
#pragma once

#include <coroutine>
#include <exception>

namespace weft_test {

struct eager {
  struct promise_type {
    eager get_return_object() noexcept { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }
  };
};

}  // namespace weft_test
