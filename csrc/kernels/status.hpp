// Status: how a kernel reports a bad input without exceptions crossing OpenMP regions.
#pragma once
#include <string>
#include <utility>

namespace scurate {

class Status {
  public:
    Status() = default;
    static Status error(std::string message) { return Status(std::move(message)); }
    bool ok() const { return message_.empty(); }
    const std::string& message() const { return message_; }

  private:
    explicit Status(std::string message) : message_(std::move(message)) {}
    std::string message_;
};

}  // namespace scurate
