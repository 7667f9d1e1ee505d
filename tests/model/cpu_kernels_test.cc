// The CPU kernels against naive scalar references, at every instruction-set level this CPU has
// (portable, AVX-512, AVX-512-BF16), and the model's decode through them against the ATen path.
#include "common/model/kernels/cpu_kernels.h"

#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "common/model/ops.h"
#include "common/model/transformer.h"
#include "tests/model/kernel_test_util.h"
#include "tests/model/test_models.h"
#include "tests/util/test_util.h"

namespace icae {
namespace {

using kernels::bf16;
using kernels::Isa;

using testing::ForEachIsa;
using testing::KernelTest;
using testing::Poison;
using testing::Random;
using testing::RandomAs;
using testing::ToBf16;
using testing::Value;

TEST_F(KernelTest, Bf16ConversionRoundsAsLibTorchDoes) {
  std::vector<float> v = Random(4096, 7, 100.0f);
  v.push_back(0.0f);
  v.push_back(-0.0f);
  v.push_back(std::numeric_limits<float>::infinity());
  v.push_back(1.00390625f);  // Exactly between two bf16 values: ties to even.
  v.push_back(1.01171875f);
  at::Tensor ref = at::tensor(v).to(at::kBFloat16);
  for (size_t i = 0; i < v.size(); ++i) {
    const uint16_t bits = reinterpret_cast<const uint16_t*>(ref.data_ptr())[i];
    ASSERT_EQ(kernels::FloatToBf16(v[i]), bits) << v[i];
    EXPECT_EQ(kernels::Bf16ToFloat(bits), ref[i].item<float>());
  }
  EXPECT_TRUE(std::isnan(kernels::Bf16ToFloat(kernels::FloatToBf16(std::nanf("")))));
}

// y[m, n] = sum_k x[m, k] w[n, k] in double, and the bound on float32 rounding of that sum.
template <typename T>
void CheckLinear(int64_t rows, int64_t k, int64_t n, uint32_t seed) {
  const std::vector<float> xf = Random(rows * k, seed), wf = Random(n * k, seed + 1, 0.1f);
  std::vector<T> x(xf.size()), w(wf.size());
  if constexpr (std::is_same_v<T, float>) {
    x = xf;
    w = wf;
  } else {
    x = ToBf16(xf);
    w = ToBf16(wf);
  }
  std::vector<T> y(rows * n);
  if constexpr (std::is_same_v<T, float>) {
    kernels::SmallBatchLinearF32(x.data(), rows, k, w.data(), n, y.data());
  } else {
    kernels::SmallBatchLinearBf16(x.data(), rows, k, w.data(), n, y.data());
  }
  for (int64_t m = 0; m < rows; ++m) {
    for (int64_t j = 0; j < n; ++j) {
      double ref = 0, magnitude = 0;
      for (int64_t i = 0; i < k; ++i) {
        const double p = static_cast<double>(Value(x[m * k + i])) * Value(w[j * k + i]);
        ref += p;
        magnitude += std::fabs(p);
      }
      // Float32 accumulation in any order: k * 2^-24 of the magnitude; bf16 output: half an
      // ulp (2^-9 relative) on top.
      double tol = 1e-6 + k * 6e-8 * magnitude;
      if constexpr (!std::is_same_v<T, float>) tol += std::fabs(ref) * (1.0 / 256);
      ASSERT_NEAR(Value(y[m * n + j]), ref, tol)
          << "rows " << rows << " k " << k << " n " << n << " at [" << m << ", " << j << "]";
    }
  }
}

TEST_F(KernelTest, SmallBatchLinearMatchesTheReference) {
  ForEachIsa([&] {
    uint32_t seed = 1;
    for (int64_t rows : {1, 2, 3, 7, 8, 9, 16}) {
      for (int64_t k : {1, 15, 16, 17, 31, 32, 33, 100, 256}) {
        for (int64_t n : {1, 2, 5, 40}) {
          CheckLinear<float>(rows, k, n, seed++);
          CheckLinear<bf16>(rows, k, n, seed++);
        }
      }
    }
  });
}

// A sequence's decode must not depend on who else is in the batch: each row's result is the same
// bits alone as in a batch of 7 (and ATen's path is never mixed in under 16 rows).
TEST_F(KernelTest, SmallBatchRowsDoNotDependOnTheirBatch) {
  ForEachIsa([&] {
    for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
      at::Tensor w = at::randn({300, 200}).to(dtype), x = at::randn({7, 200}).to(dtype);
      at::Tensor batched = SmallBatchLinear(x, w);
      for (int64_t r = 0; r < 7; ++r) {
        EXPECT_TRUE(SmallBatchLinear(x.narrow(0, r, 1), w).equal(batched.narrow(0, r, 1))) << r;
      }
    }
  });
}

TEST_F(KernelTest, SmallBatchLinearSplitsLargeOutputsAcrossThreads) {
  at::set_num_threads(2);
  // The split is real: a parallel_for in the kernels' files runs on both threads (they are
  // compiled with OpenMP; without it LibTorch's backend runs every piece on the caller).
  EXPECT_EQ(kernels::ParallelThreadsSeen(8), 2);
  ForEachIsa([&] {
    CheckLinear<float>(4, 768, 2305, 11);  // Odd n: the last column pair has one row.
    CheckLinear<bf16>(16, 768, 1001, 12);
  });
}

// Attention of every query head over its sequence's key range, in double.
template <typename T>
std::vector<double> ReferenceAttention(const kernels::DecodeAttentionArgs& a,
                                       const std::vector<T>& q,
                                       const std::vector<std::vector<T>>& keys,
                                       const std::vector<std::vector<T>>& values) {
  const int64_t g = a.heads / a.kv_heads, d = a.d;
  std::vector<double> out(a.batch * a.heads * d, 0.0);
  for (int64_t b = 0; b < a.batch; ++b) {
    for (int64_t h = 0; h < a.heads; ++h) {
      const int64_t kvh = h / g;
      std::vector<double> s;
      for (int64_t t = a.begin[b]; t < a.end[b]; ++t) {
        double dot = 0;
        for (int64_t c = 0; c < d; ++c) {
          dot += static_cast<double>(Value(q[(b * a.heads + h) * d + c])) *
                 Value(keys[b][(kvh * a.capacity[b] + t) * d + c]);
        }
        s.push_back(dot * a.scale);
      }
      const double top = *std::max_element(s.begin(), s.end());
      double sum = 0;
      for (double& x : s) sum += (x = std::exp(x - top));
      for (int64_t t = a.begin[b]; t < a.end[b]; ++t) {
        for (int64_t c = 0; c < d; ++c) {
          out[(b * a.heads + h) * d + c] += s[t - a.begin[b]] / sum *
                                            Value(values[b][(kvh * a.capacity[b] + t) * d + c]);
        }
      }
    }
  }
  return out;
}

// With `split` (one entry per sequence), sequence b's positions below split[b] are handed to the
// kernel as a shared prefix and the rest as its own cache (KVCache::prefix); the reference reads
// the whole range from one array either way.
// With `run` (DecodeAttentionArgs::run), the rows after a run's first read its keys and values.
// With `block_tokens`, the same parts are also handed over in block storage (a KvBlockPool's
// layout; the first half of the blocks dealt in order, so that runs of consecutive ids are read
// as one stretch, the rest scrambled): the result must equal the contiguous one bit for bit.
template <typename T>
void CheckAttention(int64_t heads, int64_t kv_heads, int64_t d, std::vector<int64_t> begin,
                    std::vector<int64_t> end, uint32_t seed, std::vector<int64_t> split = {},
                    std::vector<int64_t> run = {}, int64_t block_tokens = 0) {
  kernels::DecodeAttentionArgs a;
  a.batch = static_cast<int64_t>(begin.size());
  a.heads = heads;
  a.kv_heads = kv_heads;
  a.d = d;
  a.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  std::vector<int64_t> capacity;
  std::vector<std::vector<T>> keys, values;
  for (int64_t b = 0; b < a.batch; ++b) {
    capacity.push_back(end[b] + 3 + b);  // Room past the end that must not be read.
    keys.push_back(RandomAs<T>(kv_heads * capacity.back() * d, seed + 10 * b, 2.0f));
    values.push_back(RandomAs<T>(kv_heads * capacity.back() * d, seed + 10 * b + 1, 1.0f));
  }
  if (!run.empty()) {
    a.run = run.data();
    for (int64_t b = 0, first = 0; b < a.batch; ++b) {
      if (run[b] > 0) {
        first = b;
        continue;
      }
      capacity[b] = capacity[first];
      keys[b] = keys[first];
      values[b] = values[first];
    }
  }
  a.capacity = capacity.data();
  a.begin = begin.data();
  a.end = end.data();
  const std::vector<T> q = RandomAs<T>(a.batch * heads * d, seed + 99);
  std::vector<const T*> kp, vp, pkp, pvp;
  for (int64_t b = 0; b < a.batch; ++b) kp.push_back(keys[b].data()), vp.push_back(values[b].data());
  // Split layout: prefix [kv_heads, split + 2, d] (room that must not be read), own
  // [kv_heads, capacity - split, d] holding positions split.. at index 0...
  std::vector<std::vector<T>> pre_k, pre_v, own_k, own_v;
  std::vector<int64_t> pre_cap, own_cap;
  if (!split.empty()) {
    for (int64_t b = 0; b < a.batch; ++b) {
      pre_cap.push_back(split[b] + 2);
      own_cap.push_back(capacity[b] - split[b]);
      auto cut = [&](const std::vector<T>& all, int64_t first, int64_t n, int64_t cap) {
        // NaN where nothing was copied: a read there would show in the output.
        std::vector<T> part(kv_heads * cap * d, Poison<T>());
        for (int64_t h = 0; h < kv_heads; ++h) {
          for (int64_t t = 0; t < n; ++t) {
            for (int64_t c = 0; c < d; ++c) {
              part[(h * cap + t) * d + c] = all[(h * capacity[b] + first + t) * d + c];
            }
          }
        }
        return part;
      };
      pre_k.push_back(cut(keys[b], 0, split[b], pre_cap[b]));
      pre_v.push_back(cut(values[b], 0, split[b], pre_cap[b]));
      own_k.push_back(cut(keys[b], split[b], own_cap[b], own_cap[b]));
      own_v.push_back(cut(values[b], split[b], own_cap[b], own_cap[b]));
      kp[b] = own_k[b].data();
      vp[b] = own_v[b].data();
      pkp.push_back(split[b] > 0 ? pre_k[b].data() : nullptr);
      pvp.push_back(split[b] > 0 ? pre_v[b].data() : nullptr);
    }
    a.capacity = own_cap.data();
    a.prefix_length = split.data();
    a.prefix_capacity = pre_cap.data();
  }
  std::vector<T> out(a.batch * heads * d);
  if constexpr (std::is_same_v<T, float>) {
    kernels::DecodeAttentionF32(a, q.data(), kp.data(), vp.data(), out.data(),
                                split.empty() ? nullptr : pkp.data(),
                                split.empty() ? nullptr : pvp.data());
  } else {
    kernels::DecodeAttentionBf16(a, q.data(), kp.data(), vp.data(), out.data(),
                                 split.empty() ? nullptr : pkp.data(),
                                 split.empty() ? nullptr : pvp.data());
  }
  if (block_tokens > 0) {
    const int64_t bt = block_tokens;
    auto blocks_of = [bt](int64_t cap) { return (cap + bt - 1) / bt; };
    int64_t total = 0;
    for (int64_t b = 0; b < a.batch; ++b) {
      total += blocks_of(a.capacity[b]);
      if (!split.empty() && split[b] > 0) total += blocks_of(a.prefix_capacity[b]);
    }
    std::vector<int32_t> order(total);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin() + total / 2, order.end(), std::mt19937(seed));
    std::vector<T> pool_k(total * kv_heads * bt * d, Poison<T>()), pool_v = pool_k;
    std::vector<std::vector<int32_t>> tables(2 * a.batch);
    int64_t next = 0;
    // Copies a contiguous part [kv_heads, cap, d] into blocks of the pool.
    auto place = [&](const T* k, const T* v, int64_t cap, std::vector<int32_t>& table) {
      for (int64_t i = 0; i < blocks_of(cap); ++i) table.push_back(order[next++]);
      for (int64_t h = 0; h < kv_heads; ++h) {
        for (int64_t t = 0; t < cap; ++t) {
          const int64_t to = ((h * total + table[t / bt]) * bt + t % bt) * d;
          std::copy_n(k + (h * cap + t) * d, d, pool_k.begin() + to);
          std::copy_n(v + (h * cap + t) * d, d, pool_v.begin() + to);
        }
      }
    };
    std::vector<const int32_t*> own_tables(a.batch), prefix_tables(a.batch, nullptr);
    std::vector<const T*> bkp(a.batch, pool_k.data()), bvp(a.batch, pool_v.data());
    std::vector<const T*> bpkp(a.batch, nullptr), bpvp(a.batch, nullptr);
    for (int64_t b = 0; b < a.batch; ++b) {
      place(kp[b], vp[b], a.capacity[b], tables[2 * b]);
      own_tables[b] = tables[2 * b].data();
      if (!split.empty() && split[b] > 0) {
        place(pkp[b], pvp[b], a.prefix_capacity[b], tables[2 * b + 1]);
        prefix_tables[b] = tables[2 * b + 1].data();
        bpkp[b] = pool_k.data();
        bpvp[b] = pool_v.data();
      }
    }
    kernels::DecodeAttentionArgs paged = a;
    paged.blocks = own_tables.data();
    paged.prefix_blocks = prefix_tables.data();
    paged.block_tokens = bt;
    paged.pool_blocks = total;
    std::vector<T> paged_out(out.size());
    const bool pre = !split.empty();
    if constexpr (std::is_same_v<T, float>) {
      kernels::DecodeAttentionF32(paged, q.data(), bkp.data(), bvp.data(), paged_out.data(),
                                  pre ? bpkp.data() : nullptr, pre ? bpvp.data() : nullptr);
    } else {
      kernels::DecodeAttentionBf16(paged, q.data(), bkp.data(), bvp.data(), paged_out.data(),
                                   pre ? bpkp.data() : nullptr, pre ? bpvp.data() : nullptr);
    }
    ASSERT_EQ(std::memcmp(paged_out.data(), out.data(), out.size() * sizeof(T)), 0)
        << "block storage (" << bt << " positions) differs from contiguous, d " << d;
  }
  a.capacity = capacity.data();  // The reference reads the whole range from one array.
  a.prefix_length = nullptr;
  const std::vector<double> ref = ReferenceAttention(a, q, keys, values);
  for (size_t i = 0; i < ref.size(); ++i) {
    double tol = 2e-5 * (1 + std::fabs(ref[i]));
    if constexpr (!std::is_same_v<T, float>) tol += std::fabs(ref[i]) * (1.0 / 256);
    ASSERT_NEAR(Value(out[i]), ref[i], tol) << "element " << i << " d " << d;
  }
}

TEST_F(KernelTest, DecodeAttentionMatchesTheReference) {
  at::set_num_threads(2);
  ForEachIsa([&] {
    // A ragged batch: one key, a block and a half (online rescaling), a sliding window that
    // starts past 0, grouped queries (4 per kv head) and plain multi-head.
    for (int64_t d : {8, 17, 64, 128, 256}) {
      CheckAttention<float>(8, 2, d, {0, 0, 40}, {1, 300, 200}, 3);
      CheckAttention<bf16>(8, 2, d, {0, 0, 40}, {1, 300, 200}, 4);
      CheckAttention<float>(3, 3, d, {5}, {133}, 5);
      // Shared prefixes: a split inside a key block, on a block edge, before a sliding window's
      // start (prefix unread), at 0 (no prefix), and one position before the end.
      CheckAttention<float>(8, 2, d, {0, 0, 40, 0, 0}, {300, 260, 200, 9, 17}, 6,
                            {77, 128, 30, 0, 16});
      CheckAttention<bf16>(8, 2, d, {0, 0, 40, 0, 0}, {300, 260, 200, 9, 17}, 7,
                           {77, 128, 30, 0, 16});
      // Runs (a prefill chunk's rows over one cache): causal ends across a block edge, beside
      // single rows; sliding windows (each row its own begin) and a shared prefix under the run.
      CheckAttention<float>(8, 2, d, {0, 0, 0, 0, 0, 0}, {7, 126, 127, 128, 129, 130}, 8, {},
                            {1, 5, 0, 0, 0, 0});
      CheckAttention<bf16>(8, 2, d, {0, 0, 0, 0, 0, 0}, {7, 126, 127, 128, 129, 130}, 9, {},
                           {1, 5, 0, 0, 0, 0});
      CheckAttention<float>(4, 4, d, {0, 90, 91, 92, 93}, {50, 190, 191, 192, 193}, 10,
                            {20, 100, 100, 100, 100}, {1, 4, 0, 0, 0});
      // Runs of kTiledRunRows query rows or more (rows x grouped heads) are scored as tiles:
      // over a prefix and sliding windows, and a long causal run across key blocks.
      CheckAttention<bf16>(8, 2, d, {0, 90, 91, 92, 93}, {50, 190, 191, 192, 193}, 14,
                           {20, 100, 100, 100, 100}, {1, 4, 0, 0, 0});
      // (The run's storage is sized by its first row: that one reads the most.)
      std::vector<int64_t> begin(70, 0), end(70), run(70, 0);
      for (int64_t i = 0; i < 70; ++i) end[i] = 60 + i;
      end[0] = 130;
      run[0] = 70;
      CheckAttention<float>(2, 2, d, begin, end, 15, {}, run);
      // Block storage (the decoder's KV pool): blocks that divide the kernel's key blocks, that
      // do not (5), and one position each; under prefixes, runs and sliding windows.
      for (int64_t bt : {16, 5, 1}) {
        SCOPED_TRACE(bt);
        CheckAttention<float>(8, 2, d, {0, 0, 40}, {1, 300, 200}, 11, {}, {}, bt);
        CheckAttention<bf16>(8, 2, d, {0, 0, 40, 0, 0}, {300, 260, 200, 9, 17}, 12,
                             {77, 128, 30, 0, 16}, {}, bt);
        CheckAttention<float>(4, 4, d, {0, 90, 91, 92, 93}, {50, 190, 191, 192, 193}, 13,
                              {20, 100, 100, 100, 100}, {1, 4, 0, 0, 0}, bt);
        CheckAttention<float>(8, 2, d, {0, 90, 91, 92, 93}, {50, 190, 191, 192, 193}, 16,
                              {20, 100, 100, 100, 100}, {1, 4, 0, 0, 0}, bt);
      }
    }
  });
}

// The model's decode with the kernels equals the ATen path (float32 within 1e-4 on the logits,
// bf16 within a bf16 step), with grouped-query attention and a sliding window (tiny-mistral).
TEST_F(KernelTest, ModelDecodeWithKernelsEqualsTheAtenPath) {
  testing::ScratchDir windowed;
  testing::WriteWindowedMistral(windowed.path(), 6);
  for (const std::string& dir : {testing::TestData("tiny-llama"), testing::TestData("tiny-mistral"),
                                 windowed.path()}) {
    for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
      SCOPED_TRACE(dir + (dtype == at::kFloat ? " float32" : " bfloat16"));
      auto model = Transformer::Load(dir, Runtime{at::kCPU, dtype});
      ASSERT_OK(model);
      c10::InferenceMode guard;
      const Transformer& m = **model;
      auto run = [&](bool kernels_on) {
        SetCpuKernelsEnabled(kernels_on);
        std::vector<KVCache> caches;
        std::vector<int64_t> prompt_lengths = {5, 23, 12};
        for (int64_t len : prompt_lengths) {
          caches.push_back(m.NewCache(len + 8));
          m.Prefill(m.Embed(at::arange(3, 3 + len, at::kLong)), caches.back());
        }
        std::vector<KVCache*> pointers;
        for (KVCache& c : caches) pointers.push_back(&c);
        // Fixed inputs, not the argmax: in bf16 the two paths may round a near-tie apart.
        std::vector<at::Tensor> logits;
        for (int64_t step = 0; step < 6; ++step) {
          at::Tensor tokens = at::tensor({7 + step, 8 + 2 * step, 9 + 3 * step}, at::kLong);
          logits.push_back(m.Logits(m.DecodeStep(m.Embed(tokens), pointers)));
        }
        return logits;
      };
      const std::vector<at::Tensor> ours = run(true), aten = run(false);
      for (size_t s = 0; s < ours.size(); ++s) {
        const double tol = dtype == at::kFloat ? 1e-4 : 0.1 * (1 + aten[s].abs().max().item<double>());
        EXPECT_LT(testing::MaxAbsDiff(ours[s], aten[s]), tol) << "step " << s;
      }
    }
  }
}

}  // namespace
}  // namespace icae
