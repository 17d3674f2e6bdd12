// pagepool-bench: pagepool against its peers, scenario by scenario, in one
// run. Within each repetition every case runs for every allocator in turn
// (the starting allocator rotates per repetition), so drift in the machine
// hits all of them alike; min / median / max are over the repetitions.
//
//   pagepool-bench [--reps N] [--scenarios S1,S3] [--allocators pagepool,dpdk]
//                  [--ops N] [--out DIR] [--quick] [--no-prefetch] [--tag-colour]
//
// "mapping" (--scenarios mapping) is not per allocator: it compares a
// UringProvider pool with per-buffer io_uring registration and mmap (mapping.hpp).
#include <CLI/CLI.hpp>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>

#include "common.hpp"
#include "line_probe.hpp"
#include "mapping.hpp"
#include "report.hpp"

namespace {

using namespace ppb;

// jemalloc needs more static TLS than glibc keeps spare for dlopen (see
// dl_alloc.cpp); the tunable only works from process start, so run again
// with it. Returns only if the re-exec is not needed or failed.
void reexec_for_jemalloc(char** argv) {
  const char* t = std::getenv("GLIBC_TUNABLES");
  if (std::getenv("PPB_REEXEC") || (t && std::string(t).find("optional_static_tls") != std::string::npos))
    return;
  std::string v = t ? std::string(t) + ":" : "";
  v += "glibc.rtld.optional_static_tls=16384";
  setenv("GLIBC_TUNABLES", v.c_str(), 1);
  setenv("PPB_REEXEC", "1", 1);
  execv("/proc/self/exe", argv);
  std::fprintf(stderr, "pagepool-bench: re-exec for jemalloc failed; jemalloc may be absent\n");
}

std::string timestamp() {
  char b[32];
  const std::time_t t = std::time(nullptr);
  std::strftime(b, sizeof b, "%Y%m%d-%H%M%S", std::localtime(&t));
  return b;
}

bool write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
  return static_cast<bool>(f);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"pagepool-bench: pagepool against peer allocators, interleaved, in one run"};
  unsigned reps = 5;
  std::vector<std::string> scen_names, alloc_names;
  std::uint64_t ops = 0;
  std::string out;
  bool quick = false, no_prefetch = false, tag_colour = false;
  const std::vector<std::string> all_scen{"S1", "S2", "S2b", "S3", "S4", "S5", "S6", "mapping"};
  app.add_option("--reps", reps, "Repetitions; min/median/max are over them (default 5)")
      ->check(CLI::Range(1u, 1000u));
  app.add_option("--scenarios", scen_names, "Subset of S1,S2,S2b,S3,S4,S5,S6,mapping (default all)")
      ->delimiter(',')
      ->check(CLI::IsMember(all_scen, CLI::ignore_case));
  std::string all_alloc;
  for (const std::string& a : all_allocator_names()) all_alloc += (all_alloc.empty() ? "" : ",") + a;
  app.add_option("--allocators", alloc_names, "Subset of " + all_alloc + " (default all built in)")
      ->delimiter(',')
      ->check(CLI::IsMember(all_allocator_names()));
  app.add_option("--ops", ops, "Buffers per case (default 2000000; --quick 20000; mmap runs ops/64, mapping's system-call methods ops/256)")
      ->check(CLI::Range(std::uint64_t{64}, std::uint64_t{10'000'000'000}));
  app.add_option("--out", out, "Results folder (default results/<timestamp>)");
  app.add_flag("--quick", quick, "Tiny counts for smoke tests: 2 reps, S5 up to 2 returners, S6 up to 16K");
  app.add_flag("--no-prefetch", no_prefetch, "S4/S6: do not prefetch the tag line of upcoming buffers");
  app.add_flag("--tag-colour", tag_colour,
               "Write each buffer's tag 64 x (address / 4096 mod 16) bytes into it, not at its start "
               "(page-aligned tags share one L1 set)");
  CLI11_PARSE(app, argc, argv);

  // Canonical spelling (the check above accepts any case).
  for (std::string& n : scen_names)
    for (const std::string& c : all_scen)
      if (n.size() == c.size() && std::equal(n.begin(), n.end(), c.begin(), [](char a, char b) {
            return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
          }))
        n = c;
  if (scen_names.empty()) scen_names = all_scen;
  if (alloc_names.empty()) alloc_names = all_allocator_names();
  if (quick && !app.count("--reps")) reps = 2;
  if (!ops) ops = quick ? 20'000 : 2'000'000;
  if (out.empty()) out = "results/" + timestamp();
  for (const std::string& a : alloc_names)
    if (a == "jemalloc") reexec_for_jemalloc(argv);

  // Cases in table order.
  auto wanted = [&](const char* s) {
    for (const std::string& n : scen_names)
      if (n == s) return true;
    return false;
  };
  std::vector<CaseSpec> cases;
  if (wanted("S1")) cases.push_back({Scen::S1});
  if (wanted("S2")) cases.push_back({Scen::S2});
  if (wanted("S2b")) cases.push_back({Scen::S2b});
  if (wanted("S3")) cases.push_back({Scen::S3});
  if (wanted("S4")) cases.push_back({Scen::S4, 1024});
  if (wanted("S5"))
    for (std::uint32_t n : quick ? std::vector<std::uint32_t>{1, 2} : std::vector<std::uint32_t>{1, 2, 4, 8})
      cases.push_back({Scen::S5, n});
  if (wanted("S6"))
    for (std::uint32_t n : quick ? std::vector<std::uint32_t>{1u << 10, 1u << 14}
                                 : std::vector<std::uint32_t>{1u << 10, 1u << 14, 1u << 18, 1u << 20})
      cases.push_back({Scen::S6, n});

  std::fprintf(stderr, "pagepool-bench: TSC %.3f GHz\n", calibrate_tsc());
  // Reads the allowed CPU set now, before the DPDK EAL briefly pins this
  // thread or any benchmark thread is pinned (common.hpp).
  cpu_count();
  Results r;
  r.cases = cases;
  // Only "mapping" selected: no allocator is loaded (no DPDK EAL, no dlopen).
  if (!cases.empty()) r.allocs = make_allocators(alloc_names, cases);
  std::unique_ptr<MappingBench> mapping;
  if (wanted("mapping")) {
    mapping = std::make_unique<MappingBench>();
    r.mapping = true;
    r.mapping_skip = mapping->skipped();
    r.mapping_v.assign(kMappingMethods, {});
    if (!r.mapping_skip.empty())
      std::fprintf(stderr, "  %-20s skipped: %s\n", "mapping", r.mapping_skip.c_str());
  }
  r.reps = reps;
  r.ops = ops;
  r.prefetch = !no_prefetch;
  r.tag_colour = tag_colour;
  // Every timed run's configuration: its buffer count and the flags above.
  const auto cfg_for = [&](std::uint64_t n) { return RunCfg{n, !no_prefetch, tag_colour}; };
  for (int i = 0; i < argc; ++i) r.command += (i ? " " : "") + std::string(i ? argv[i] : "pagepool-bench");
  r.v.assign(cases.size(), std::vector<std::vector<Outcome>>(r.allocs.size()));
  for (const Allocator& a : r.allocs)
    std::fprintf(stderr, "  %-20s %s%s\n", a.name.c_str(), a.present ? "" : "absent: ", a.detail.c_str());

  // One untimed S1 pass per allocator first: the first case of a run must not
  // pay for the process's own start (faults, lazy binding, frequency).
  for (Allocator& a : r.allocs)
    if (a.present) {
      try {
        a.run(CaseSpec{Scen::S1}, cfg_for(std::max<std::uint64_t>(ops / a.ops_div / 8, 64)));
      } catch (const std::exception&) {
      }
      a.trim();
    }
  {
    std::ifstream la("/proc/loadavg");
    std::getline(la, r.load_start);
  }
  const std::size_t na = r.allocs.size();
  for (unsigned rep = 0; rep < reps; ++rep) {
    for (std::size_t c = 0; c < cases.size(); ++c) {
      // The 4 GiB S6 case is slow to fill; three repetitions give a median.
      if (cases[c].s == Scen::S6 && cases[c].param >= (1u << 18) && rep >= 3) continue;
      std::string line = "rep " + std::to_string(rep + 1) + "/" + std::to_string(reps) + "  " + cases[c].label();
      line.resize(std::max<std::size_t>(line.size(), 20), ' ');
      double case_s = 0;  // setup, fill and teardown included
      for (std::size_t k = 0; k < na; ++k) {
        const std::size_t ai = (k + rep) % na;
        Allocator& a = r.allocs[ai];
        if (!a.present) continue;
        const RunCfg cfg = cfg_for(std::max<std::uint64_t>(ops / a.ops_div, 256));
        const auto t0 = std::chrono::steady_clock::now();
        // S3/S5 run on two CPUs (owner on 0, returners from 1): how far
        // apart the host has put them right now, for the report.
        const bool probe = (cases[c].s == Scen::S3 || cases[c].s == Scen::S5) && !a.one_thread && cpu_count() >= 2;
        const double rt = probe ? pagepool_tools::line_round_trip(cpu_id(0), cpu_id(1)) : 0;
        Outcome o;
        try {
          o = a.run(cases[c], cfg);
        } catch (const std::exception& e) {
          o = Outcome::failed(e.what());
        }
        o.line_rt = rt;
        a.trim();
        r.v[c][ai].push_back(o);
        case_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        char b[96];
        if (o.st == Outcome::ok) std::snprintf(b, sizeof b, "  %s %.2f", a.name.c_str(), o.ns);
        else std::snprintf(b, sizeof b, "  %s %s", a.name.c_str(), o.st == Outcome::na ? "n/a" : "FAIL");
        line += b;
      }
      std::fprintf(stderr, "%s  (%.1f s)\n", line.c_str(), case_s);
    }
    if (mapping) {  // the three methods, the first rotating with the repetition
      std::string line = "rep " + std::to_string(rep + 1) + "/" + std::to_string(reps) + "  mapping";
      line.resize(std::max<std::size_t>(line.size(), 20), ' ');
      const auto t0 = std::chrono::steady_clock::now();
      for (int k = 0; k < kMappingMethods; ++k) {
        const int m = static_cast<int>((k + rep) % kMappingMethods);
        const std::uint64_t div = m == 0 ? 1 : kMappingSyscallDiv;
        const RunCfg cfg = cfg_for(std::max<std::uint64_t>(ops / div, 256));
        Outcome o;
        try {
          o = mapping->run(m, cfg);
        } catch (const std::exception& e) {
          o = Outcome::failed(e.what());
        }
        r.mapping_v[m].push_back(o);
        char b[96];
        if (o.st == Outcome::ok) std::snprintf(b, sizeof b, "  %s %.2f", mapping_name(m), o.ns);
        else std::snprintf(b, sizeof b, "  %s %s", mapping_name(m), o.st == Outcome::na ? "n/a" : "FAIL");
        line += b;
      }
      std::fprintf(stderr, "%s  (%.1f s)\n", line.c_str(),
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
  }

  std::error_code ec;
  std::filesystem::create_directories(out, ec);
  if (ec) {
    std::fprintf(stderr, "pagepool-bench: cannot create %s: %s\n", out.c_str(), ec.message().c_str());
    return 1;
  }
  const Machine m = describe_machine();
  const std::vector<Target> t = targets(r);
  const std::string chart_note = write_chart(r, out);
  const std::string md = markdown(r, m, t, chart_note.empty() ? "" : chart_note);
  bool ok = write_file(out + "/results.md", md + (chart_note.empty() ? "\n![chart](chart.png)\n" : ""));
  ok &= write_file(out + "/results.csv", csv_summary(r));
  ok &= write_file(out + "/raw.csv", csv_raw(r));
  std::cout << md << std::flush;
  std::fprintf(stderr, "pagepool-bench: results in %s (results.md, results.csv, raw.csv%s)\n", out.c_str(),
               chart_note.empty() ? ", chart.png" : "");
  if (!ok) {
    std::fprintf(stderr, "pagepool-bench: could not write the results in %s\n", out.c_str());
    return 1;
  }
  // A failed case is reported in the table; the run itself succeeded.
  return 0;
}
