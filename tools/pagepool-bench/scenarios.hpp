// pagepool-bench: the scenarios, as templates over an allocator adapter
// (adapters.hpp) so each hot loop calls the adapter directly.
//
// Every case warms up first (untimed: up to 1/8 of its operations or half
// its time budget), so caches, rings and the allocator's own state are at
// steady state when the clock starts; the warm-up's speed also sets how many
// buffers the timed run gets (RunCfg::budget_ns). Single-thread cases are
// timed with the TSC around the loop; threaded ones from the release of all
// threads to the last return.
#pragma once

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common.hpp"
#include "spsc.hpp"

namespace ppb {
namespace scen {

// Buffers the S4/S6 loop prefetches ahead (the tag line only, see fifo()).
inline constexpr std::size_t kPrefetchAhead = 16;

inline Outcome timed_result(std::uint64_t cycles, std::uint64_t n) {
  const double ns = to_ns(static_cast<double>(cycles)) / static_cast<double>(n);
  return {Outcome::ok, ns, 1000.0 / ns, {}, n};
}

// The warm-up. `run(n)` does n buffers and returns the TSC cycles it took
// (0: it failed). Runs chunks of ops/64 until ops/8 are done or half the
// budget is spent; returns the buffer count for the timed run (0: failed).
template <class Run>
std::uint64_t warm_up(const RunCfg& c, Run&& run) {
  const std::uint64_t chunk = std::max<std::uint64_t>(c.ops / 64, 1);
  const double budget = c.budget_ns * tsc_ghz();
  std::uint64_t done = 0;
  double cycles = 0;
  while (done <= c.ops / 8 && cycles < budget / 2) {
    const std::uint64_t t = run(chunk);
    if (!t) return 0;
    done += chunk;
    cycles += static_cast<double>(t);
  }
  const double fit = budget / (cycles / static_cast<double>(done));
  const std::uint64_t lo = std::max<std::uint64_t>(c.ops / 32, 1);
  return fit >= static_cast<double>(c.ops) ? c.ops : std::max(lo, static_cast<std::uint64_t>(fit));
}

// Times a single-thread loop(n) -> bool after its warm-up.
template <class F>
Outcome warm_then_time(const RunCfg& c, F&& loop) {
  auto run = [&](std::uint64_t n) -> std::uint64_t {
    const std::uint64_t t0 = now();
    if (!loop(n)) return 0;
    return std::max<std::uint64_t>(now() - t0, 1);
  };
  const std::uint64_t n = warm_up(c, run);
  if (!n) return Outcome::failed("get returned no buffer (warm-up)");
  const std::uint64_t t = run(n);
  if (!t) return Outcome::failed("get returned no buffer");
  return timed_result(t, n);
}

// A get that waits a little for buffers parked elsewhere (another thread's
// cache) instead of failing at once; nullptr after ~1 s or on abort.
template <class A>
typename A::Buf get_wait(A& a, typename A::Local& l, const std::atomic<bool>& abort) {
  if (auto b = a.get(l)) [[likely]]
    return b;
  const std::uint64_t deadline = now() + static_cast<std::uint64_t>(tsc_ghz() * 1e9);
  Backoff bo;
  while (now() < deadline && !abort.load(std::memory_order_relaxed)) {
    bo.wait();
    if (auto b = a.get(l)) return b;
  }
  return nullptr;
}

template <class F>
Outcome warm_then_time(std::uint64_t ops, F&& loop) {
  if (!loop(ops / 8 + 1)) return Outcome::failed("get returned no buffer (warm-up)");
  const std::uint64_t t0 = now();
  const bool ok = loop(ops);
  const std::uint64_t t1 = now();
  if (!ok) return Outcome::failed("get returned no buffer");
  return timed_result(t1 - t0, ops);
}

// S1: get, write, check, return at once, on one thread.
template <class A, std::uintptr_t kCol>
Outcome s1(A& a, const RunCfg& c) {
  auto l = a.local();
  Outcome o = warm_then_time(c, [&](std::uint64_t n) {
    for (std::uint64_t i = 0; i < n; ++i) {
      auto b = a.get(l);
      if (!b) [[unlikely]]
        return false;
      std::byte* d = tag_at(A::data(b), kCol);
      tag_write(d, tag_of(i));
      tag_check(d, tag_of(i));
      a.put_owner(l, b);
    }
    return true;
  });
  a.release(l);
  return o;
}

// S2: a NAPI poll's worth: get 64 (writing each), then check and return 64.
// S2b: the same with the bulk API, 32 at a time.
template <class A, bool kBulkApi, std::uintptr_t kCol>
Outcome batch(A& a, const RunCfg& c) {
  constexpr std::size_t n_per = kBulkApi ? kBulkN : kBatch;
  auto l = a.local();
  typename A::Buf bufs[n_per];
  std::byte* ds[n_per];
  // loop(n): n buffers, in whole rounds (n is a multiple of n_per below).
  auto loop = [&](std::uint64_t n) {
    const std::uint64_t nrounds = std::max<std::uint64_t>(1, n / n_per);
    std::uint64_t seq = 0;
    for (std::uint64_t r = 0; r < nrounds; ++r, seq += n_per) {
      if constexpr (kBulkApi) {
        std::size_t got = 0;
        while (got < n_per) {
          const std::size_t k = a.get_bulk(l, bufs + got, n_per - got);
          if (k == 0) [[unlikely]] {
            a.put_bulk(l, bufs, got);
            return false;
          }
          got += k;
        }
        for (std::size_t k = 0; k < n_per; ++k) {
          ds[k] = tag_at(A::data(bufs[k]), kCol);
          tag_write(ds[k], tag_of(seq + k));
        }
        for (std::size_t k = 0; k < n_per; ++k) tag_check(ds[k], tag_of(seq + k));
        a.put_bulk(l, bufs, n_per);
      } else {
        for (std::size_t k = 0; k < n_per; ++k) {
          bufs[k] = a.get(l);
          if (!bufs[k]) [[unlikely]] {
            while (k) a.put(l, bufs[--k]);
            return false;
          }
          ds[k] = tag_at(A::data(bufs[k]), kCol);
          tag_write(ds[k], tag_of(seq + k));
        }
        for (std::size_t k = 0; k < n_per; ++k) {
          tag_check(ds[k], tag_of(seq + k));
          a.put(l, bufs[k]);
        }
      }
    }
    return true;
  };
  RunCfg cr = c;
  cr.ops = std::max<std::uint64_t>(c.ops / n_per, 1) * n_per;
  Outcome o = warm_then_time(cr, [&](std::uint64_t n) { return loop(std::max<std::uint64_t>(n / n_per, 1) * n_per); });
  if (o.st == Outcome::ok) {  // the loop ran whole rounds
    const std::uint64_t done = std::max<std::uint64_t>(o.ops / n_per, 1) * n_per;
    o.ns *= static_cast<double>(o.ops) / static_cast<double>(done);
    o.mops = 1000.0 / o.ns;
    o.ops = done;
  }
  a.release(l);
  return o;
}

// Releases `n` threads at once and returns the TSC at the release.
class StartGate {
 public:
  explicit StartGate(unsigned n) : n_(n) {}
  void arrive_and_wait() {
    ready_.fetch_add(1, std::memory_order_acq_rel);
    while (!go_.load(std::memory_order_acquire)) _mm_pause();
  }
  std::uint64_t open() {
    while (ready_.load(std::memory_order_acquire) != n_) std::this_thread::yield();
    const std::uint64_t t0 = now();
    go_.store(true, std::memory_order_release);
    return t0;
  }

 private:
  const unsigned n_;
  std::atomic<unsigned> ready_{0};
  std::atomic<bool> go_{false};
};

// S3 (returners = 1, pinned to two CPUs) and S5 (N returners): the owner
// gets buffers, writes them and deals them round-robin into one SPSC queue
// per returner; each returner checks and returns them. Returners time their
// put loop over each popped batch (after checking the batch), so a per-page
// return cost excludes waiting on an empty queue and the benchmark's check.
struct Handover {
  double wall_cycles;      // release to last return
  double owner_cycles;     // release to the owner's last handover
  double return_cycles;    // summed over returners: the put loops only (tags checked untimed before)
  std::uint64_t returned;
  bool ok;
};

template <class A, std::uintptr_t kCol>
Handover handover(A& a, unsigned nret, std::uint64_t ops, bool pin) {
  using Buf = typename A::Buf;
  std::vector<std::unique_ptr<Spsc<Buf>>> qs;
  for (unsigned j = 0; j < nret; ++j) qs.push_back(std::make_unique<Spsc<Buf>>(kQueueCap));
  struct alignas(64) Ret {
    std::uint64_t cycles = 0, pages = 0, end = 0;
  };
  std::vector<Ret> rs(nret);
  std::atomic<bool> abort{false};
  std::uint64_t owner_end = 0;
  StartGate gate(nret + 1);
  const unsigned ncpu = cpu_count();

  std::thread owner([&] {
    if (pin) pin_to(0);
    a.bind_owner();
    auto l = a.local();
    gate.arrive_and_wait();
    unsigned j = 0;
    for (std::uint64_t i = 0; i < ops; ++i) {
      Buf b = get_wait(a, l, abort);
      if (!b) {
        abort.store(true);
        break;
      }
      tag_write(tag_at(A::data(b), kCol), tag_of(i));
      Backoff bo;
      while (!qs[j]->push(b)) bo.wait();
      if (++j == nret) j = 0;
    }
    owner_end = now();
    a.release(l);
  });
  std::vector<std::thread> rets;
  for (unsigned j = 0; j < nret; ++j) {
    rets.emplace_back([&, j] {
      if (pin) pin_to(static_cast<int>((1 + j) % ncpu));
      auto l = a.local();
      const std::uint64_t expect = ops / nret + (j < ops % nret ? 1 : 0);
      Ret r;
      Buf in[kBulkN];
      Backoff bo;
      gate.arrive_and_wait();
      while (r.pages < expect) {
        const std::size_t n = qs[j]->pop(in, kBulkN);
        if (n == 0) {
          if (abort.load(std::memory_order_relaxed)) break;
          bo.wait();
          continue;
        }
        bo.reset();
        // Checked first, untimed: the tag line comes from the owner's CPU for
        // every allocator alike; the timed part is the return itself.
        for (std::size_t k = 0; k < n; ++k) tag_check(tag_at(A::data(in[k]), kCol), tag_of((r.pages + k) * nret + j));
        const std::uint64_t t = now();
        for (std::size_t k = 0; k < n; ++k) a.put(l, in[k]);
        r.cycles += now() - t;
        r.pages += n;
      }
      r.end = now();
      rs[j] = r;
      a.release(l);
    });
  }
  const std::uint64_t t0 = gate.open();
  owner.join();
  for (auto& t : rets) t.join();
  a.bind_owner();  // back to this thread, which tears the adapter down

  Handover h{0, static_cast<double>(owner_end - t0), 0, 0, !abort.load()};
  std::uint64_t end = owner_end;
  for (const Ret& r : rs) {
    h.return_cycles += static_cast<double>(r.cycles);
    h.returned += r.pages;
    end = std::max(end, r.end);
  }
  h.wall_cycles = static_cast<double>(end - t0);
  if (!h.ok) {  // hand back whatever is still queued
    auto l = a.local();
    Buf in[kBulkN];
    for (auto& q : qs)
      while (std::size_t n = q->pop(in, kBulkN))
        for (std::size_t k = 0; k < n; ++k) a.put(l, in[k]);
    a.release(l);
  }
  return h;
}

// S3: per-buffer cost of the two-CPU pipeline, and its throughput.
template <class A, std::uintptr_t kCol>
Outcome s3(A& a, const RunCfg& c) {
  const bool pin = cpu_count() >= 2;
  const std::uint64_t n = warm_up(c, [&](std::uint64_t k) -> std::uint64_t {
    const Handover h = handover<A, kCol>(a, 1, k, pin);
    return h.ok ? std::max<std::uint64_t>(static_cast<std::uint64_t>(h.wall_cycles), 1) : 0;
  });
  if (!n) return Outcome::failed("get returned no buffer (warm-up)");
  const Handover h = handover<A, kCol>(a, 1, n, pin);
  if (!h.ok) return Outcome::failed("get returned no buffer");
  Outcome o = timed_result(static_cast<std::uint64_t>(h.wall_cycles), n);
  if (!pin) o.note = "one CPU: threads share it";
  return o;
}

// S5: per-page return cost on the returners, and the owner's rate.
template <class A, std::uintptr_t kCol>
Outcome s5(A& a, unsigned nret, const RunCfg& c) {
  const unsigned ncpu = cpu_count();
  const bool oversub = nret + 1 > ncpu;
  const std::uint64_t n = warm_up(c, [&](std::uint64_t k) -> std::uint64_t {
    const Handover h = handover<A, kCol>(a, nret, k, !oversub);
    return h.ok ? std::max<std::uint64_t>(static_cast<std::uint64_t>(h.wall_cycles), 1) : 0;
  });
  if (!n) return Outcome::failed("get returned no buffer (warm-up)");
  const Handover h = handover<A, kCol>(a, nret, n, !oversub);
  if (!h.ok) return Outcome::failed("get returned no buffer");
  Outcome o;
  o.ns = to_ns(h.return_cycles) / static_cast<double>(h.returned);
  o.mops = static_cast<double>(n) / (to_ns(h.owner_cycles) / 1000.0);
  o.ops = n;
  if (oversub)
    o.note = "oversubscribed: " + std::to_string(nret + 1) + " threads on " + std::to_string(ncpu) +
             " CPUs";
  return o;
}

// S4 / S6: `inflight` buffers out, the oldest returned and a new one got at
// each step (FIFO). One cache line (the tag) is touched per buffer. With
// prefetch on, the tag line of the buffer kPrefetchAhead steps ahead is
// prefetched: that read is the benchmark's own, the same for everyone, and
// without it every allocator's S6 figure is mostly one DRAM miss of ours.
// The allocator's own metadata is never prefetched for it.
template <class A, std::uintptr_t kCol>
Outcome fifo(A& a, std::uint64_t inflight, const RunCfg& c) {
  struct Slot {
    typename A::Buf b;
    std::byte* d;
  };
  const std::uint64_t w = inflight;
  std::vector<Slot> f(w);
  auto l = a.local();
  for (std::uint64_t i = 0; i < w; ++i) {
    auto b = a.get(l);
    if (!b) {
      while (i) a.put(l, f[--i].b);
      a.release(l);
      return Outcome::failed("get returned no buffer at " + std::to_string(i) + " in flight");
    }
    f[i] = {b, tag_at(A::data(b), kCol)};
    tag_write(f[i].d, tag_of(i));
  }
  // Slot idx holds the buffer got at step seq; its replacement is seq + w.
  std::uint64_t seq = 0, idx = 0, pf = kPrefetchAhead % w;
  auto steps = [&](std::uint64_t n) {
    for (std::uint64_t i = 0; i < n; ++i) {
      if (c.prefetch) __builtin_prefetch(f[pf].d, 1, 3);
      Slot& s = f[idx];
      tag_check(s.d, tag_of(seq));
      a.put(l, s.b);
      auto b = a.get(l);
      if (!b) [[unlikely]] {
        s.b = nullptr;
        return false;
      }
      s = {b, tag_at(A::data(b), kCol)};
      tag_write(s.d, tag_of(seq + w));
      ++seq;
      if (++idx == w) idx = 0;
      if (++pf == w) pf = 0;
    }
    return true;
  };
  const Outcome o = warm_then_time(c, steps);
  for (std::uint64_t k = 0; k < w; ++k) {  // oldest first, each checked
    Slot& s = f[(idx + k) % w];
    if (!s.b) continue;
    tag_check(s.d, tag_of(seq + k));
    a.put(l, s.b);
  }
  a.release(l);
  return o;
}

// An adapter that serves one thread only (kOneThread) has no cross-thread
// scenarios.
template <class A>
constexpr bool one_thread() {
  if constexpr (requires { A::kOneThread; }) return A::kOneThread;
  else return false;
}

// The tag's place (tag_at's colours) is a template argument, so the loops
// of a default run add nothing for it: computed at run time, the offset cost
// the cheapest loops 10-28 % (S1 on pagepool, tcmalloc and the floor, S2b
// on DPDK).
template <class A, std::uintptr_t kCol>
Outcome run_case_at(A& a, const CaseSpec& cs, const RunCfg& c) {
  switch (cs.s) {
    case Scen::S1: return s1<A, kCol>(a, c);
    case Scen::S2: return batch<A, false, kCol>(a, c);
    case Scen::S2b:
      if constexpr (A::kBulk) return batch<A, true, kCol>(a, c);
      else return Outcome::not_applicable("no bulk API");
    case Scen::S3:
    case Scen::S5:
      if constexpr (one_thread<A>()) return Outcome::not_applicable("one thread only");
      else if (cs.s == Scen::S3) return s3<A, kCol>(a, c);
      else return s5<A, kCol>(a, cs.param, c);
    case Scen::S4:
    case Scen::S6: return fifo<A, kCol>(a, cs.param, c);
  }
  return Outcome::failed("unknown scenario");
}

template <class A>
Outcome run_case(A& a, const CaseSpec& cs, const RunCfg& c) {
  return c.tag_colour ? run_case_at<A, kTagColours>(a, cs, c) : run_case_at<A, 0>(a, cs, c);
}

// ---- adapter self-test (tests/bench) ------------------------------------------------
// Whole-buffer pattern: every 8-byte word of buffer i gets its own value.
inline void fill(std::byte* d, std::uint64_t i) {
  for (std::size_t w = 0; w < 4096 / 8; ++w) tag_write(d + w * 8, tag_of(i * 512 + w));
}
inline bool filled(const std::byte* d, std::uint64_t i) {
  for (std::size_t w = 0; w < 4096 / 8; ++w) {
    std::uint64_t v;
    std::memcpy(&v, d + w * 8, 8);
    if (v != tag_of(i * 512 + w)) return false;
  }
  return true;
}

// Round trips on the owner (64 out at once, written whole, then checked:
// catches overlapping or short buffers), with the bulk API if any, and with
// the returns made on another thread. "" if all held.
template <class A>
std::string selftest(A& a) {
  using Buf = typename A::Buf;
  auto l = a.local();
  std::string err;
  std::vector<Buf> bs;
  for (std::uint64_t i = 0; i < 64 && err.empty(); ++i) {
    Buf b = a.get(l);
    if (!b) err = "get failed";
    else {
      fill(A::data(b), i);
      bs.push_back(b);
    }
  }
  for (std::size_t i = 0; i < bs.size(); ++i)
    if (err.empty() && !filled(A::data(bs[i]), i)) err = "buffer " + std::to_string(i) + " overwritten";
  for (std::size_t i = 0; i < bs.size(); ++i) (i % 2 ? a.put(l, bs[i]) : a.put_owner(l, bs[i]));
  if constexpr (A::kBulk) {
    Buf arr[kBulkN];
    const std::size_t n = a.get_bulk(l, arr, kBulkN);
    if (err.empty() && n != kBulkN) err = "get_bulk returned " + std::to_string(n);
    for (std::size_t i = 0; i < n; ++i) fill(A::data(arr[i]), 100 + i);
    for (std::size_t i = 0; i < n; ++i)
      if (err.empty() && !filled(A::data(arr[i]), 100 + i)) err = "bulk buffer overwritten";
    a.put_bulk(l, arr, n);
  }
  bs.clear();
  for (std::uint64_t i = 0; i < 64 && err.empty(); ++i) {
    Buf b = a.get(l);
    if (!b) err = "get failed (cross-thread round)";
    else {
      fill(A::data(b), 200 + i);
      bs.push_back(b);
    }
  }
  std::thread([&] {
    auto lr = a.local();
    for (std::size_t i = 0; i < bs.size(); ++i) {
      if (err.empty() && !filled(A::data(bs[i]), 200 + i)) err = "buffer seen wrong on another thread";
      a.put(lr, bs[i]);
    }
    a.release(lr);
  }).join();
  // The owner gets again after remote returns (pagepool: from its ring).
  for (int i = 0; i < 256 && err.empty(); ++i) {
    Buf b = a.get(l);
    if (!b) err = "get failed after remote returns";
    else {
      fill(A::data(b), 300);
      if (!filled(A::data(b), 300)) err = "buffer overwritten after remote returns";
      a.put(l, b);
    }
  }
  a.release(l);
  return err;
}

}  // namespace scen

// Wraps a concrete adapter into the driver's type-erased Allocator.
// `make(const Setup&)` returns a std::unique_ptr<A> for one case.
template <class A, class Make>
Allocator make_allocator(std::string name, std::string detail, Make make) {
  Allocator al;
  al.name = std::move(name);
  al.present = true;
  al.detail = std::move(detail);
  al.bulk = A::kBulk;
  al.one_thread = scen::one_thread<A>();
  al.run = [make](const CaseSpec& cs, const RunCfg& c) {
    auto a = make(setup_of(cs));
    return scen::run_case(*a, cs, c);
  };
  al.selftest = [make] {
    auto a = make(Setup{128, 2});
    return scen::selftest(*a);
  };
  return al;
}

}  // namespace ppb
