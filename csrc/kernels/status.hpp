// Status: how a kernel reports a bad input without exceptions crossing OpenMP regions.
#pragma once
#include <string>
#include <utility>

namespace scurate {

class Status {
  public:
    Status() = default;
    static Status error(std::string message) { return Status(std::move(message)); }
    // The caller's Interrupt asked the kernel to stop; outputs are incomplete.
    static Status interrupted() {
        Status st("interrupted");
        st.interrupted_ = true;
        return st;
    }
    bool ok() const { return message_.empty(); }
    bool is_interrupted() const { return interrupted_; }
    const std::string& message() const { return message_; }

  private:
    explicit Status(std::string message) : message_(std::move(message)) {}
    std::string message_;
    bool interrupted_ = false;
};

}  // namespace scurate
