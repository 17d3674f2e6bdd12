#include "devices/libbpf_log.hpp"

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <mutex>

namespace pagepool::fwd::detail {
namespace {

constexpr std::size_t kKeep = 4096;
std::mutex g_mu;
std::string g_log;  // under g_mu

int capture(libbpf_print_level level, const char* fmt, va_list ap) {
  if (level == LIBBPF_DEBUG) return 0;
  char buf[512];
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  const char* msg = std::strncmp(buf, "libbpf: ", 8) == 0 ? buf + 8 : buf;
  std::lock_guard lock(g_mu);
  g_log += msg;
  if (g_log.size() > kKeep) g_log.erase(0, g_log.size() - kKeep);
  return 0;
}

}  // namespace

LibbpfCapture::LibbpfCapture() : prev_(libbpf_set_print(capture)) {
  std::lock_guard lock(g_mu);
  g_log.clear();
}

LibbpfCapture::~LibbpfCapture() { libbpf_set_print(prev_); }

std::string take_libbpf_log(std::size_t max) {
  std::lock_guard lock(g_mu);
  std::string s = std::move(g_log);
  g_log.clear();
  for (char& c : s)
    if (c == '\n') c = ' ';
  while (!s.empty() && s.back() == ' ') s.pop_back();
  if (s.size() > max) s = "..." + s.substr(s.size() - max);
  return s;
}

}  // namespace pagepool::fwd::detail
