// The tiled prefill attention kernel (kernels::PrefillAttention*) against a naive double reference
// at every instruction-set level this CPU has, and Transformer::Forward through it against the
// ATen path (padding, kept rows, grouped queries, sliding windows).
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "common/model/kernels/cpu_kernels.h"
#include "common/model/ops.h"
#include "common/model/transformer.h"
#include "tests/model/kernel_test_util.h"
#include "tests/model/test_models.h"
#include "tests/util/test_util.h"

namespace icae {
namespace {

using kernels::bf16;
using testing::ForEachIsa;
using testing::KernelTest;
using testing::Poison;
using testing::RandomAs;
using testing::Value;

struct Case {
  int64_t batch, heads, kv_heads, rows, keys, d;
  int64_t window = 0;
  bool positions = false;  // Scattered query rows (as compression's kept rows), else the last rows.
  bool padding = false;    // Some keys invalid.
};

// Inputs stored as [batch, rows|keys, heads, d] with two spare heads and a spare row in every
// sequence (NaN, never to be read), handed to the kernel through strides; the output likewise,
// whose spare places must stay NaN.
template <typename T>
void Check(const Case& c, uint32_t seed) {
  SCOPED_TRACE(::testing::Message()
               << "batch " << c.batch << " heads " << c.heads << "/" << c.kv_heads << " rows "
               << c.rows << " keys " << c.keys << " d " << c.d << " window " << c.window
               << " positions " << c.positions << " padding " << c.padding);
  const int64_t d = c.d, qh = c.heads + 2, kh = c.kv_heads + 2;
  const int64_t q_seq = (c.rows + 1) * qh * d, k_seq = (c.keys + 1) * kh * d;
  std::vector<T> q = RandomAs<T>(c.batch * q_seq, seed, 1.0f);
  std::vector<T> k = RandomAs<T>(c.batch * k_seq, seed + 1, 2.0f);
  std::vector<T> v = RandomAs<T>(c.batch * k_seq, seed + 2, 1.0f);
  for (int64_t b = 0; b < c.batch; ++b) {
    for (int64_t i = 0; i < c.keys + 1; ++i) {
      for (int64_t h = 0; h < kh; ++h) {
        if (h < c.kv_heads && i < c.keys) continue;
        std::fill_n(k.begin() + b * k_seq + (i * kh + h) * d, d, Poison<T>());
        std::fill_n(v.begin() + b * k_seq + (i * kh + h) * d, d, Poison<T>());
      }
    }
  }
  std::vector<int64_t> positions(c.batch * c.rows);
  std::vector<uint8_t> valid(c.batch * c.keys, 1);
  for (int64_t b = 0; b < c.batch; ++b) {
    for (int64_t r = 0; r < c.rows; ++r) {
      // Scattered: rows in a stride through the keys, last one first.
      positions[b * c.rows + r] =
          c.positions ? (c.keys - 1 - (r * 7 + b) % c.keys) : c.keys - c.rows + r;
    }
    // Padding: every fifth key of sequence b > 0, and its first b keys.
    for (int64_t j = 0; j < c.keys; ++j) {
      if (c.padding && b > 0 && (j % 5 == 3 || j < b)) valid[b * c.keys + j] = 0;
    }
  }
  kernels::PrefillAttentionArgs a;
  a.batch = c.batch;
  a.heads = c.heads;
  a.kv_heads = c.kv_heads;
  a.rows = c.rows;
  a.keys = c.keys;
  a.d = d;
  a.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  const int64_t qs[3] = {q_seq, d, qh * d}, ks[3] = {k_seq, d, kh * d};
  std::copy_n(qs, 3, a.q_stride);
  std::copy_n(qs, 3, a.out_stride);
  std::copy_n(ks, 3, a.k_stride);
  std::copy_n(ks, 3, a.v_stride);
  a.positions = c.positions ? positions.data() : nullptr;
  a.window = c.window;
  a.key_valid = c.padding ? valid.data() : nullptr;
  std::vector<T> out(q.size(), Poison<T>());
  if constexpr (std::is_same_v<T, float>) {
    kernels::PrefillAttentionF32(a, q.data(), k.data(), v.data(), out.data());
  } else {
    kernels::PrefillAttentionBf16(a, q.data(), k.data(), v.data(), out.data());
  }
  const int64_t group = c.heads / c.kv_heads;
  for (int64_t b = 0; b < c.batch; ++b) {
    for (int64_t r = 0; r < c.rows + 1; ++r) {
      for (int64_t h = 0; h < qh; ++h) {
        const T* o = out.data() + b * q_seq + (r * qh + h) * d;
        if (r == c.rows || h >= c.heads) {
          for (int64_t i = 0; i < d; ++i) ASSERT_TRUE(std::isnan(Value(o[i]))) << "wrote a gap";
          continue;
        }
        const int64_t p = positions[b * c.rows + r], kvh = h / group;
        std::vector<double> s(c.keys, -INFINITY);
        double top = -INFINITY;
        for (int64_t j = 0; j < c.keys; ++j) {
          const bool seen = j <= p && (c.window == 0 || p - j < c.window) &&
                            (valid[b * c.keys + j] != 0 || !c.padding || j == p);
          if (!seen) continue;
          double dot = 0;
          for (int64_t i = 0; i < d; ++i) {
            dot += static_cast<double>(Value(q[b * q_seq + (r * qh + h) * d + i])) *
                   Value(k[b * k_seq + (j * kh + kvh) * d + i]);
          }
          s[j] = dot * a.scale;
          top = std::max(top, s[j]);
        }
        double sum = 0;
        for (double& x : s) sum += (x = std::exp(x - top));
        for (int64_t i = 0; i < d; ++i) {
          double ref = 0;
          for (int64_t j = 0; j < c.keys; ++j) {
            if (s[j] > 0) ref += s[j] / sum * Value(v[b * k_seq + (j * kh + kvh) * d + i]);
          }
          double tol = 2e-5 * (1 + std::fabs(ref));
          if constexpr (!std::is_same_v<T, float>) tol += std::fabs(ref) * (1.0 / 256);
          ASSERT_NEAR(Value(o[i]), ref, tol) << "row " << r << " head " << h << " column " << i;
        }
      }
    }
  }
}

TEST_F(KernelTest, PrefillAttentionMatchesTheReference) {
  at::set_num_threads(2);
  ForEachIsa([&] {
    for (int64_t d : {8, 17, 64, 80, 128}) {
      // One position; a square of several row and key blocks with tails; grouped queries.
      Check<float>({1, 2, 1, 1, 1, d}, 1);
      Check<float>({2, 8, 2, 150, 150, d}, 2);
      Check<bf16>({2, 8, 2, 150, 150, d}, 3);
      // A chunk after a past (rows < keys), plain multi-head, keys on a block edge.
      Check<float>({1, 3, 3, 37, 128, d}, 4);
      Check<bf16>({1, 3, 3, 64, 193, d}, 5);
      // A sliding window that starts inside, and past, the first key blocks.
      Check<float>({1, 4, 2, 130, 130, d, 50}, 6);
      Check<bf16>({2, 4, 2, 70, 200, d, 65}, 7);
      // Padding keys (the compressor's batches) and scattered query rows (its kept rows).
      Check<float>({3, 4, 4, 100, 100, d, 0, false, true}, 8);
      Check<float>({2, 4, 2, 20, 160, d, 0, true, false}, 9);
      Check<bf16>({3, 8, 2, 33, 90, d, 40, true, true}, 10);
    }
  });
}

// The keys and values the kernel transposes and widens stay with the calling thread for the next
// call (every layer of a pass) up to 16 MiB, and are released after a call that needed more.
TEST_F(KernelTest, PrefillAttentionReleasesLargeScratch) {
  // 2 kv heads x 64 x 320 transposed keys (300 rounded up to key blocks) + 300 x 64 values each.
  const size_t need = (2 * 64 * 320 + 2 * 300 * 64) * sizeof(float);
  Check<float>({1, 4, 2, 64, 300, 64}, 11);
  EXPECT_GE(kernels::PrefillAttentionRetainedBytes(), need);
  EXPECT_LE(kernels::PrefillAttentionRetainedBytes(), size_t{16} << 20);
  // 8 kv heads x 128 x 2,112 transposed keys + as many values: about 17 MB.
  Check<float>({1, 8, 8, 2, 2100, 128}, 12);
  EXPECT_EQ(kernels::PrefillAttentionRetainedBytes(), 0u);
  Check<bf16>({1, 4, 2, 64, 300, 64}, 13);  // Grown again from nothing, still right.
  EXPECT_EQ(kernels::PrefillAttentionRetainedBytes(), need);
}

// Forward through the kernels (the tiled attention and ForwardFused's element-wise kernels)
// equals the ATen path: float32 within 1e-5 of the hidden states' scale, bf16 within a few bf16
// steps; with padding, kept rows, grouped queries and a window; every layer's keys and values
// too (what KV-slot compression returns).
TEST_F(KernelTest, ForwardWithPrefillKernelEqualsTheAtenPath) {
  testing::ScratchDir windowed;
  testing::WriteWindowedMistral(windowed.path(), 6);
  for (const std::string& dir :
       {testing::TestData("tiny-llama"), testing::TestData("tiny-mistral"), windowed.path()}) {
    for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
      SCOPED_TRACE(dir + (dtype == at::kFloat ? " float32" : " bfloat16"));
      auto model = Transformer::Load(dir, Runtime{at::kCPU, dtype});
      ASSERT_OK(model);
      c10::InferenceMode guard;
      const Transformer& m = **model;
      const int64_t seq = 90;
      at::Tensor ids = at::arange(3, 3 + 2 * seq, at::kLong).remainder(50).add(3).view({2, seq});
      at::Tensor embeds = m.Embed(ids);
      at::Tensor positions = at::arange(0, seq, at::kLong).repeat({2, 1});
      at::Tensor valid = at::ones({2, seq}, at::kBool);
      valid[1].narrow(0, 70, 20).fill_(false);  // The second row padded at its end.
      at::Tensor keep = at::tensor({5, 60, 61, 89, 0, 69, 30, 31}, at::kLong).view({2, 4});
      auto run = [&](bool kernels_on, bool kept, LayerKv* kv) {
        SetCpuKernelsEnabled(kernels_on);
        return m.Forward(embeds, positions, valid, nullptr, nullptr, kv,
                         kept ? keep : at::Tensor());
      };
      auto tolerance = [&](const at::Tensor& t) {
        const double scale = 1 + t.abs().max().item<double>();
        return dtype == at::kFloat ? 1e-5 * scale : 0.05 * scale;
      };
      for (bool kept : {false, true}) {
        LayerKv ours_kv, aten_kv;
        const at::Tensor ours = run(true, kept, &ours_kv).to(at::kFloat);
        const at::Tensor aten = run(false, kept, &aten_kv).to(at::kFloat);
        ASSERT_EQ(ours.sizes(), aten.sizes());
        EXPECT_LT(testing::MaxAbsDiff(ours, aten), tolerance(aten)) << "kept rows " << kept;
        ASSERT_EQ(ours_kv.keys.size(), static_cast<size_t>(m.config().num_layers));
        ASSERT_EQ(aten_kv.keys.size(), ours_kv.keys.size());
        for (size_t l = 0; l < ours_kv.keys.size(); ++l) {
          for (auto [a, b] : {std::pair(ours_kv.keys[l], aten_kv.keys[l]),
                              std::pair(ours_kv.values[l], aten_kv.values[l])}) {
            ASSERT_EQ(a.sizes(), b.sizes());
            EXPECT_LT(testing::MaxAbsDiff(a.to(at::kFloat), b.to(at::kFloat)),
                      tolerance(b.to(at::kFloat)))
                << "layer " << l;
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace icae
