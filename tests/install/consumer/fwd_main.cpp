// Consumer of the installed pagepool::fwd: two sim devices, the built-in
// "redirect" program, ~0.2 s of forwarding, then stop() and check that
// frames were forwarded, the accounting holds and every pool is back at
// inflight 0.
#include <pagepool/devices/sim.hpp>
#include <pagepool/fwd/forwarder.hpp>
#include <pagepool/fwd/program.hpp>

#include <chrono>
#include <cstdio>
#include <thread>
#include <utility>

int main() {
  using namespace pagepool::fwd;
  SimOptions sim;
  sim.devices = 2;
  sim.max_frames = 2'000'000;  // per port: a bound on the run whatever the machine
  ForwarderOptions opt;
  opt.threads = 1;
  opt.drain_timeout = std::chrono::milliseconds(2000);
  Forwarder f(open_sim_devices(sim), make_builtin("redirect", sim.devices), opt);
  f.start();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const Report r = f.stop();

  int rc = 0;
  for (const auto& e : accounting_errors(r, /*wire=*/true)) {
    std::fprintf(stderr, "fwd consumer: %s\n", e.c_str());
    rc = 1;
  }
  if (r.packets.tx == 0 || r.packets.redirect == 0) {
    std::fprintf(stderr, "fwd consumer: nothing forwarded (rx %llu)\n",
                 static_cast<unsigned long long>(r.packets.rx));
    rc = 1;
  }
  if (r.inflight_at_exit != 0 || r.pools.size() != 2) rc = 1;
  for (const auto& p : r.pools) {
    if (p.levels.inflight != 0) {
      std::fprintf(stderr, "fwd consumer: pool %s inflight %llu\n", p.name.c_str(),
                   static_cast<unsigned long long>(p.levels.inflight));
      rc = 1;
    }
  }
  std::printf("fwd consumer %s: rx=%llu tx=%llu redirect=%llu inflight=%llu\n", rc ? "FAILED" : "ok",
              static_cast<unsigned long long>(r.packets.rx),
              static_cast<unsigned long long>(r.packets.tx),
              static_cast<unsigned long long>(r.packets.redirect),
              static_cast<unsigned long long>(r.inflight_at_exit));
  return rc;
}
