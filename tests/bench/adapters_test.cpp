// pagepool-bench adapters: every allocator's get/put round trip writes and
// verifies its buffers (on the owner, in bulk, across threads), every
// scenario runs on every adapter with tiny counts, and the adapters built
// on a pagepool Pool hand every page back.
#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "adapters.hpp"
#include "locked_ring.hpp"
#include "report.hpp"
#include "scenarios.hpp"

namespace {

using namespace ppb;

class Adapters : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() { calibrate_tsc(); }
  // One allocator; skips the test if its package is not installed.
  Allocator load(const std::vector<CaseSpec>& cases) {
    std::vector<Allocator> v = make_allocators({GetParam()}, cases);
    return std::move(v.at(0));
  }
};

TEST_P(Adapters, RoundTripWritesAndVerifies) {
  Allocator a = load({});
  if (!a.present) GTEST_SKIP() << a.name << " absent: " << a.detail;
  EXPECT_EQ(a.selftest(), "");
}

TEST_P(Adapters, EveryScenarioRuns) {
  const std::vector<CaseSpec> cases{{Scen::S1},    {Scen::S2},    {Scen::S2b},      {Scen::S3},
                                    {Scen::S4, 1024}, {Scen::S5, 1}, {Scen::S5, 3}, {Scen::S6, 4096}};
  Allocator a = load(cases);
  if (!a.present) GTEST_SKIP() << a.name << " absent: " << a.detail;
  // Tags at the buffers' starts, then coloured (--tag-colour).
  for (const bool colour : {false, true})
    for (const CaseSpec& c : cases) {
      const Outcome o = a.run(c, RunCfg{2048, true, colour});
      a.trim();
      const std::string what = c.label() + (colour ? " (tag colour)" : "");
      if ((c.s == Scen::S2b && !a.bulk) || ((c.s == Scen::S3 || c.s == Scen::S5) && a.one_thread)) {
        EXPECT_EQ(o.st, Outcome::na) << what;
        continue;
      }
      EXPECT_EQ(o.st, Outcome::ok) << what << ": " << o.note;
      EXPECT_GT(o.ns, 0) << what;
      EXPECT_GT(o.mops, 0) << what;
    }
}

// --tag-colour: 16 pages in a row put their tags on 16 different lines of a
// 4 KiB stride (so on 16 L1 sets), every tag within the buffer's first KiB and
// 8-byte aligned; without colours the tag is at the start.
TEST(TagColour, SpreadsPageAlignedTagsInsideTheBuffer) {
  alignas(4096) static std::byte mem[17 * 4096];
  std::vector<bool> seen(16);
  for (std::size_t i = 0; i < 17; ++i) {
    std::byte* d = mem + i * 4096;
    EXPECT_EQ(tag_at(d, 0), d);
    const std::ptrdiff_t off = tag_at(d, kTagColours) - d;
    ASSERT_GE(off, 0);
    ASSERT_LE(off + 8, 1024);
    ASSERT_EQ(off % 64, 0);
    if (i < 16) {
      EXPECT_FALSE(seen[static_cast<std::size_t>(off / 64)]) << "page " << i;
      seen[static_cast<std::size_t>(off / 64)] = true;
    } else {
      EXPECT_EQ(off, tag_at(mem, kTagColours) - mem);  // the colours repeat every 16 pages
    }
  }
  // A buffer that is not page-aligned (DPDK's objects, 4160 bytes apart) stays inside too.
  std::byte* odd = mem + 4160 + 64;
  EXPECT_LE(tag_at(odd, kTagColours) - odd + 8, 1024);
}

INSTANTIATE_TEST_SUITE_P(All, Adapters, ::testing::ValuesIn(all_allocator_names()),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& ch : n)
                             if (ch == '-') ch = '_';
                           return n;
                         });

TEST(PagePoolAdapter, ScenariosReturnEveryPage) {
  calibrate_tsc();
  PagePool a(ppb::Setup{1 << 14, 3});
  for (const CaseSpec& c : {CaseSpec{Scen::S1}, CaseSpec{Scen::S2}, CaseSpec{Scen::S2b}, CaseSpec{Scen::S3},
                            CaseSpec{Scen::S5, 2}, CaseSpec{Scen::S6, 4096}}) {
    const Outcome o = scen::run_case(a, c, RunCfg{4096, true});
    EXPECT_EQ(o.st, Outcome::ok) << c.label() << ": " << o.note;
    EXPECT_EQ(a.pool().inflight(), 0u) << c.label();
  }
  EXPECT_NO_THROW(a.pool().check());
}

TEST(LockedRing, ReturnsEveryPage) {
  LockedRing a(ppb::Setup{1024, 2});  // a 1024-entry ring
  LockedRing::Local l = a.local();
  // More pages than the ring holds, returned from another thread: the ring
  // fills and the rest are released to the pool, as in the kernel.
  std::vector<pagepool::Page*> out;
  for (int i = 0; i < 1300; ++i) {
    pagepool::Page* p = a.get(l);
    ASSERT_NE(p, nullptr);
    tag_write(LockedRing::data(p), tag_of(i));
    out.push_back(p);
  }
  std::thread([&] {
    LockedRing::Local lr = a.local();
    for (std::size_t i = 0; i < out.size(); ++i) {
      tag_check(LockedRing::data(out[i]), tag_of(i));
      a.put(lr, out[i]);
    }
  }).join();
  EXPECT_EQ(a.released(), 1300u - 1024u);
  // The owner refills from the ring, recycles directly, and bulk-returns.
  out.clear();
  for (int i = 0; i < 500; ++i) out.push_back(a.get(l));
  for (int i = 0; i < 200; ++i) a.put_owner(l, out[i]);
  a.put_bulk(l, out.data() + 200, 300);
  pagepool::Page* bulk[32];
  ASSERT_EQ(a.get_bulk(l, bulk, 32), 32u);
  a.put_bulk(l, bulk, 32);
  EXPECT_GT(a.pool().inflight(), 0u);  // cache and ring still hold pages
  a.drain();
  EXPECT_EQ(a.pool().inflight(), 0u);
  EXPECT_NO_THROW(a.pool().check());
}

// The report says how far apart S3/S5's CPUs were before each run and
// names the runs whose probe was far (above 3x the lowest); raw.csv has it.
TEST(Report, NamesRunsAfterAFarProbe) {
  Results r;
  r.cases = {CaseSpec{Scen::S3}};
  Allocator a;
  a.name = "pagepool";
  a.present = true;
  r.allocs = {a};
  auto ok = [](double ns, double rt) {
    Outcome o;
    o.ns = ns;
    o.mops = 1e3 / ns;
    o.ops = 1000;
    o.line_rt = rt;
    return o;
  };
  r.v = {{{ok(13.1, 160), ok(52.5, 1040), ok(13.4, 170)}}};
  r.reps = 3;
  const std::string md = markdown(r, Machine{}, {}, "");
  EXPECT_NE(md.find("median 170 [160–1040] over 3 runs"), std::string::npos) << md;
  EXPECT_NE(md.find("1 run had its probe above 3x the lowest"), std::string::npos) << md;
  EXPECT_NE(md.find("S3 pagepool rep 2 52.5 (1040)"), std::string::npos) << md;
  EXPECT_EQ(md.find("rep 1 13.1"), std::string::npos) << md;
  const std::string raw = csv_raw(r);
  EXPECT_EQ(raw.rfind("case,allocator,rep,status,ns,mops,ops,line_rt_cycles,note\n", 0), 0u) << raw;
  EXPECT_NE(raw.find("S3,pagepool,2,ok,52.5,"), std::string::npos) << raw;
  EXPECT_NE(raw.find(",1040,"), std::string::npos) << raw;

  // All near: said so. Not measured (one CPU): no note at all.
  r.v = {{{ok(13.1, 160), ok(13.4, 170)}}};
  EXPECT_NE(markdown(r, Machine{}, {}, "").find("No probe was above 3x the lowest."), std::string::npos);
  r.v = {{{ok(13.1, 0), ok(13.4, 0)}}};
  EXPECT_EQ(markdown(r, Machine{}, {}, "").find("round trip"), std::string::npos);
}

}  // namespace
