#include "shim/runtime/fault.h"

#include <cstring>

namespace evshim::shim {

std::string Fault::Describe() const {
  std::string s = detail;
  s += ": ";
  s += operation;
  s += " failed: ";
  s += std::strerror(error);
  if (error == EPERM && std::strncmp(operation, "process_vm_", 11) == 0) {
    s += " (Yama's ptrace_scope, or the program made itself undumpable)";
  }
  return s;
}

}  // namespace evshim::shim
