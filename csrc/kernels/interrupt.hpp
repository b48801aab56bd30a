// Interrupt: how a long kernel asks its caller, now and then, whether to stop.
#pragma once
#include <chrono>

namespace scurate {

// Kernels call requested() between units of work (a pick, a bisection step), never inside an
// OpenMP region, and return Status::interrupted() when it says yes. The caller's poll function
// runs at most every `interval` (default 50 ms), on the thread that called the kernel; the
// bindings use it to take the GIL and run Python's signal handlers, so Ctrl-C stops a kernel
// within a poll interval plus one unit of work. A default Interrupt never asks anyone.
class Interrupt {
  public:
    using Poll = bool (*)(void* context);
    Interrupt() = default;
    Interrupt(Poll poll, void* context,
              std::chrono::steady_clock::duration interval = std::chrono::milliseconds(50))
        : poll_(poll), context_(context), interval_(interval), last_(Clock::now()) {}

    bool requested() {
        if (poll_ == nullptr) return false;
        if (stopped_) return true;
        const Clock::time_point now = Clock::now();
        if (now - last_ < interval_) return false;
        last_ = now;
        stopped_ = poll_(context_);
        return stopped_;
    }

  private:
    using Clock = std::chrono::steady_clock;
    Poll poll_ = nullptr;
    void* context_ = nullptr;
    Clock::duration interval_{};
    Clock::time_point last_{};
    bool stopped_ = false;
};

}  // namespace scurate
