// pagepool: libbpf's messages kept for error reports instead of printed.
// Shared by the xsk device (src/devices/xsk.cpp) and the AF_XDP tools
// (tools/xsk). Internal.
#pragma once

#include <bpf/libbpf.h>

#include <cstddef>
#include <string>

namespace pagepool::fwd::detail {

// While alive, libbpf's messages (not its debug level) go to a buffer that
// keeps the last 4 KiB; the previous printer comes back at the end.
// libbpf's printer is process-wide: one capture at a time, on one thread.
class LibbpfCapture {
 public:
  LibbpfCapture();
  ~LibbpfCapture();
  LibbpfCapture(const LibbpfCapture&) = delete;
  LibbpfCapture& operator=(const LibbpfCapture&) = delete;

 private:
  libbpf_print_fn_t prev_;
};

// The buffered messages on one line, "" if none; longer than max: "..."
// and the last max characters (the cause is at the end). Empties the buffer.
std::string take_libbpf_log(std::size_t max);

}  // namespace pagepool::fwd::detail
