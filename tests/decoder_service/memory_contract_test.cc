// The memory contract of Generate (docs/operations.md, "Memory per request"): the peak RSS growth
// of the real icae-decoder for one request of P context positions is at most
//     4 x request bytes + KV(P) + 4 x heads x P^2 x 4 bytes + a small request's working set
// where KV(P) = P x layers x 2 x kv_heads x head_dim x 4 bytes and the quadratic term is the
// dense prefill attention of one layer at a time (float32 scores, the masked copy, the
// probabilities and one more buffer of that size: measured 3.5 of them). The largest
// legal request fills --max_context_tokens with slots; the test fails when a change makes the
// work grow with anything else (e.g. embedding ids before counting them once cost ~2 KB per id).
#include <thread>
#include <vector>

#include "tests/decoder_service/server_fixture.h"

namespace icae::decoder {
namespace {

int64_t PeakGrowth(const ServerProcess& process, const std::function<void()>& call) {
  absl::StatusOr<int64_t> before = testing::CurrentRssBytes(process.pid());
  EXPECT_OK(before);
  EXPECT_OK(testing::ResetPeakRss(process.pid()));
  call();
  absl::StatusOr<int64_t> peak = testing::PeakRssBytes(process.pid());
  EXPECT_OK(peak);
  return before.ok() && peak.ok() ? *peak - *before : -1;
}

TEST_F(DecoderServerTest, LargestLegalGenerateStaysWithinTheContract) {
  const ModelConfig config = RandomLlamaConfig(512, 6, 8, 1376, 512, 2048);  // SlowModel()
  std::unique_ptr<Server> server =
      StartDecoder(SlowModel().model_dir, SlowModel().adapter, {"--max_running", "1"},
                   scratch_->Join("memory.log"));
  ASSERT_NE(server, nullptr);
  const std::string& id = server->info.accepted_encoder_id();
  auto request_with = [&](int rows) {
    v1::GenerateRequest request;
    *request.add_context() = SlotsPart(at::randn({rows, config.hidden_size}).mul(0.02), id);
    request.set_template_name("raw");
    request.set_max_new_tokens(1);
    return request;
  };
  ASSERT_OK(server->client->Generate(request_with(4)).status());  // Warm-up.
  const v1::GenerateRequest small = request_with(64);
  const int64_t working_set =
      PeakGrowth(server->process, [&] { ASSERT_OK(server->client->Generate(small).status()); });

  // The context limit is the model's 2048 positions: the largest multiple of mem_size (4) that
  // leaves one position to generate.
  const int rows = 2044;
  const v1::GenerateRequest largest = request_with(rows);
  int prompt_positions = 0;
  const int64_t growth = PeakGrowth(server->process, [&] {
    auto response = server->client->Generate(largest);
    ASSERT_OK(response);
    prompt_positions = response->usage().slot_tokens() + response->usage().prompt_tokens();
  });
  ASSERT_GE(prompt_positions, rows);
  const int64_t p = prompt_positions;
  const int64_t request_bytes = static_cast<int64_t>(largest.ByteSizeLong());
  const int64_t head_dim = config.head_dim;
  const int64_t kv = (p + 1) * config.num_layers * 2 * config.num_kv_heads * head_dim * 4;
  const int64_t attention = 4 * int64_t{config.num_heads} * p * p * 4;
  const int64_t bound = 4 * request_bytes + kv + attention + working_set;
  std::cout << "Generate with " << p << " context positions: request " << request_bytes
            << " B, KV " << kv << " B, prefill attention term " << attention
            << " B, a small request's working set " << working_set << " B; peak RSS growth "
            << growth << " B, bound " << bound << " B (" << (100.0 * growth / bound) << "%)\n";
  EXPECT_GT(growth, 0);
  EXPECT_LE(growth, bound);
}

// The KV pool bounds the server's memory under any load (the scheduler issue): a flood of
// requests whose contexts and outputs need 6x the pool's positions raises the peak RSS by at most
// the pool's KV bytes (every cache takes its blocks from the one pool, allocated at start-up and
// never copied) + one prefill chunk's attention buffers + a small request's working set + what
// every call in flight holds (its ids, a few KB, and the gRPC thread serving it: stack pages and
// a malloc arena; allowed 512 KiB each); every request completes. The same flood against a pool
// large enough for all of it grows past that bound, so the bound bites. (Before the pool, caches
// of their own grown by copying made this growth vary from 33 to 58 MB between runs; with it,
// 34.5-35.1 MB.)
TEST_F(DecoderServerTest, KvPoolBoundsTheMemoryOfAFlood) {
  const ModelConfig config = RandomLlamaConfig(512, 6, 8, 1376, 512, 2048);  // SlowModel()
  constexpr int kRequests = 24, kContext = 384, kNew = 32, kPool = 1536, kChunk = 128;
  const int64_t per_position = int64_t{config.num_layers} * 2 * config.num_kv_heads *
                               config.head_dim * 4;
  auto flood_growth = [&](int pool, const std::string& log) -> int64_t {
    std::unique_ptr<Server> server = StartDecoder(
        SlowModel().model_dir, SlowModel().adapter,
        {"--max_running", "16", "--max_kv_tokens", std::to_string(pool), "--prefill_chunk_tokens",
         std::to_string(kChunk), "--prefix_cache_bytes", "0"},
        scratch_->Join(log));
    EXPECT_NE(server, nullptr);
    if (server == nullptr) return -1;
    auto request_with = [&](int i, int context, int new_tokens) {
      v1::GenerateRequest request;
      v1::TokenIds* ids = request.add_context()->mutable_token_ids();
      for (int t = 0; t < context; ++t) ids->add_ids(3 + (i * 131 + t * 7) % 500);
      request.set_template_name("raw");
      request.set_max_new_tokens(new_tokens);
      request.set_ignore_eos(true);
      return request;
    };
    EXPECT_OK(server->client->Generate(request_with(0, 8, 2)).status());  // Warm-up.
    const int64_t working_set = PeakGrowth(server->process, [&] {
      EXPECT_OK(server->client->Generate(request_with(1, 64, 4)).status());
    });
    std::vector<absl::Status> status(kRequests);
    const int64_t growth = PeakGrowth(server->process, [&] {
      std::vector<std::thread> threads;
      for (int i = 0; i < kRequests; ++i) {
        threads.emplace_back([&, i] {
          auto response = server->client->Generate(request_with(i, kContext, kNew));
          status[i] = response.status();
          if (response.ok() && response->token_ids_size() != kNew) {
            status[i] = absl::InternalError("short output");
          }
        });
      }
      for (std::thread& t : threads) t.join();
    });
    for (int i = 0; i < kRequests; ++i) EXPECT_OK(status[i]) << "request " << i;
    std::cout << "pool " << pool << " positions: peak RSS growth " << growth
              << " B (a small request's working set " << working_set << " B)\n";
    return growth - working_set;
  };
  const int64_t demand = int64_t{kRequests} * (kContext + kNew) * per_position;
  const int64_t pool_bytes = int64_t{kPool} * per_position;
  const int64_t chunk_attention = 4 * int64_t{config.num_heads} * kChunk * (kContext + kNew) * 4;
  const int64_t in_flight = int64_t{kRequests} * 512 * 1024;
  const int64_t bound = pool_bytes + chunk_attention + in_flight;
  const int64_t bounded = flood_growth(kPool, "flood-bounded.log");
  std::cout << "flood of " << kRequests << " x " << kContext + kNew << " positions (" << demand
            << " B of KV): growth beyond a small request " << bounded << " B, bound " << bound
            << " B (pool " << pool_bytes << " B)\n";
  EXPECT_LE(bounded, bound);
  ASSERT_GT(demand, 2 * bound) << "the flood must need far more than the pool";
  const int64_t unbounded = flood_growth(kRequests * (kContext + kNew + 16), "flood-free.log");
  std::cout << "the same flood with room for all of it: " << unbounded << " B\n";
  EXPECT_GT(unbounded, bound) << "the bound would hold without the pool: the test cannot fail";
}

}  // namespace
}  // namespace icae::decoder
